"""listener_accumulation: a bus holding bound methods strongly; every request
subscribes and never unsubscribes."""


class Bus:
    def __init__(self):
        self.listeners = []

    def subscribe(self, fn):
        self.listeners.append(fn)


bus = Bus()


class Request:
    def __init__(self):
        self.body = bytearray(800)

    def on_event(self, event):
        return len(self.body)


def step():
    bus.subscribe(Request().on_event)
