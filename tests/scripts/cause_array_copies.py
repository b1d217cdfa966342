"""Cause array_copies: NumPy copies appended to a history list."""
import numpy as np

_base = np.arange(4096, dtype=np.float64)
_history = []


def run():
    for _ in range(10):
        _history.append(_base * 2.0)  # leak: array_copies
