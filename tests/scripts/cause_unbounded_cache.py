"""Cause unbounded_cache: a memo dict keyed by a value that never repeats."""
_results = {}
_counter = [0]


def run():
    for _ in range(200):
        _counter[0] += 1
        key = _counter[0]
        _results[key] = "result-%08d" % key * 4  # leak: unbounded_cache
