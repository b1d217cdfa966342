"""global_state: a class-level registry that every instance joins and no
one leaves."""


class Plugin:
    instances = []

    def __init__(self, n):
        self.n = n
        self.state = bytearray(600)
        Plugin.instances.append(self)


def step():
    Plugin(len(Plugin.instances))
