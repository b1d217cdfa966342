"""A history that is rebound to a bigger tuple on every call instead of
growing in place."""
_history = ()


def step():
    global _history
    _history = _history + (("event", len(_history), "z" * 30),)
