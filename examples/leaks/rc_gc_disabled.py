"""reference_cycles: the host disabled the cycle collector "for latency"
without a plan; every request leaves a parent/child cycle behind."""
import gc

gc.disable()


class Node:
    def __init__(self, parent=None):
        self.parent = parent
        self.children = []
        self.payload = bytearray(300)


def step():
    root = Node()
    root.children.append(Node(root))
