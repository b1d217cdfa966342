"""Not a leak: an lru_cache(maxsize=64) fills during the first calls and then
only evicts (the growth stops: a plateau)."""
import functools

_n = [0]


@functools.lru_cache(maxsize=64)
def fetch(key):
    return "value %d" % key * 30


def step():
    for _ in range(16):
        _n[0] += 1
        fetch(_n[0])
