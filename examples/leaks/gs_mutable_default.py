"""global_state: a mutable default argument that accumulates across calls."""


def remember(item, seen=[]):
    seen.append(item)
    return len(seen)


def step():
    remember("item " * 100)
