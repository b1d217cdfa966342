"""array_copies: every step keeps a scaled copy of a NumPy array."""
import numpy as np

_base = np.arange(8192, dtype=np.float64)
_history = []


def step():
    _history.append(_base * 1.5)
