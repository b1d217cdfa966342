"""Cause global_state: a class-level registry that every instance joins."""


class Session:
    registry = []

    def __init__(self, user):
        self.user = user
        self.payload = bytearray(512)  # leak: global_state
        Session.registry.append(self)


def run():
    for i in range(100):
        Session("user%d" % i)
