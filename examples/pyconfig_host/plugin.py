"""The plugin the PyConfig host runs once per request.

Each request makes a Session that subscribes a bound method to a module
level listener list and never unsubscribes: the list keeps every Session
(and its 1.5 KB buffer) alive. A lapsed listener.
"""
_listeners = []


class Session:
    def __init__(self, request_id):
        self.request_id = request_id
        self.buffer = bytearray(1500)  # line 13: the leak the detector names
        _listeners.append(self.on_event)

    def on_event(self, event):
        return self.request_id, event


def handle(request_id):
    Session(request_id)
    return request_id
