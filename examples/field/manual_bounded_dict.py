"""A hand-written cache that evicts its oldest entry past 100 entries: large
steps while it fills, then none."""
_cache = {}
_n = [0]


def step():
    for _ in range(10):
        _n[0] += 1
        _cache[_n[0]] = "v" * 50
        if len(_cache) > 100:
            del _cache[next(iter(_cache))]
