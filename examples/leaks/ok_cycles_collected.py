"""Not a leak: makes reference cycles that the (enabled) collector frees."""


class Node:
    def __init__(self):
        self.other = None
        self.payload = bytearray(200)


def step():
    for _ in range(200):
        a, b = Node(), Node()
        a.other, b.other = b, a
