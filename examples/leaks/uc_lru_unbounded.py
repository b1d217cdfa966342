"""unbounded_cache: functools.lru_cache(maxsize=None) on an argument that
keeps changing."""
import functools

_counter = [0]


@functools.lru_cache(maxsize=None)
def render(page):
    return "<p>%d</p>" % page * 40


def step():
    _counter[0] += 1
    return render(_counter[0])
