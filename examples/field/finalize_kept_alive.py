"""weakref.finalize with the object itself among the callback's arguments
(the documented mistake): the finalizer registry keeps every object alive,
so none is ever finalized."""
import weakref


class Session:
    def __init__(self):
        self.data = [0] * 20


def _close(session):
    session.data = None


def step():
    s = Session()
    weakref.finalize(s, _close, s)
