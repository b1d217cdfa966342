"""unbounded_cache: a module-level memo keyed by a request id that never
repeats, so it never hits and never evicts."""
_memo = {}
_next = [0]


def step():
    _next[0] += 1
    rid = _next[0]
    _memo[rid] = ("response for %d " % rid) * 20
