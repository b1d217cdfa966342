"""Per-request audit trail kept in a context variable whose default list is
shared by every context that never set its own: it only grows."""
import contextvars

_trail = contextvars.ContextVar("trail")
_trail.set([])
_n = [0]


def step():
    _n[0] += 1
    _trail.get().append(("request", _n[0], "x" * 40))
