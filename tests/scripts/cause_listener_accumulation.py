"""Cause listener_accumulation: handlers registered per request, never
removed; each holds its request's data."""


class Bus:
    def __init__(self):
        self.listeners = []

    def subscribe(self, fn):
        self.listeners.append(fn)


bus = Bus()


class Request:
    def __init__(self):
        self.body = bytearray(1024)  # leak: listener_accumulation

    def on_event(self, event):
        return len(self.body)


def run():
    for _ in range(50):
        bus.subscribe(Request().on_event)
