"""A sliding window of recent measurements, a deque with maxlen: it fills
during the run, then stays at its limit."""
import collections

_window = collections.deque(maxlen=5000)
_n = [0]


def step():
    _n[0] += 1
    for i in range(100):
        _window.append(("sample", _n[0], i))
