"""Cause reference_cycles: parent/child cycles made while the collector is
disabled (a host that turned gc off "for latency" without a plan)."""
import gc


class Node:
    def __init__(self):
        self.children = []
        self.parent = None
        self.blob = bytes(256)


def run():
    gc.disable()
    for _ in range(100):
        parent = Node()
        child = Node()  # leak: reference_cycles
        child.parent = parent
        parent.children.append(child)
