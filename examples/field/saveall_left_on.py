"""Debugging code left in: gc.set_debug(gc.DEBUG_SAVEALL) makes the collector
keep every unreachable object in gc.garbage instead of freeing it, while
automatic collection stays on."""
import gc

gc.set_debug(gc.DEBUG_SAVEALL)


class Node:
    def __init__(self):
        self.other = self
        self.data = [0] * 10


def step():
    Node()
