"""An lru_cache with a limit, still filling while it is measured."""
import functools


@functools.lru_cache(maxsize=2048)
def lookup(key):
    return ("value for %d" % key) * 4


_n = [0]


def step():
    for _ in range(50):
        _n[0] += 1
        lookup(_n[0])
