"""array_copies: a NumPy array that grows by concatenation every step."""
import numpy as np

_chunk = np.ones(4096, dtype=np.float64)
_state = np.zeros(0, dtype=np.float64)


def step():
    global _state
    _state = np.concatenate([_state, _chunk])
