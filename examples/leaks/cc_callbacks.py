"""closure_capture: callbacks kept for later whose closures hold a whole
request body although they use only its length."""
_callbacks = []


def make_callback(body):
    def done():
        return len(body)
    return done


def step():
    body = bytearray(2000)
    _callbacks.append(make_callback(body))
