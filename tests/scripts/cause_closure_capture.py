"""Cause closure_capture: callbacks whose closures keep a large buffer."""
_callbacks = []


def make_callback(n):
    buffer = bytearray(2048)  # leak: closure_capture

    def callback():
        return len(buffer) + n
    return callback


def run():
    for i in range(50):
        _callbacks.append(make_callback(i))
