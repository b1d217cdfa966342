"""listener_accumulation: per-event handler lists that only ever grow."""
_handlers = {"tick": []}


def connect(event, fn):
    _handlers[event].append(fn)


class Widget:
    def __init__(self):
        self.pixels = bytearray(700)

    def redraw(self):
        return len(self.pixels)


def step():
    connect("tick", Widget().redraw)
