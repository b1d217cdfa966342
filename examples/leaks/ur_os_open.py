"""unclosed_resources: raw descriptors from os.open that are never closed."""
import os


def step():
    os.open(os.devnull, os.O_RDONLY)
