"""Cause unclosed_resources: files opened and kept, never closed."""
import os

_handles = []


def run():
    for _ in range(5):
        _handles.append(open(os.devnull, "rb"))  # leak: unclosed_resources


def cleanup():
    for h in _handles:
        h.close()
    _handles.clear()
