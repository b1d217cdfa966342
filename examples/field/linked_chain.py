"""An undo log kept as a linked list: each entry points to the one before,
so the chain grows in depth while the module holds one object."""


class Entry:
    __slots__ = ("prev", "data")

    def __init__(self, prev, data):
        self.prev = prev
        self.data = data


_head = None


def step():
    global _head
    _head = Entry(_head, "w" * 60)
