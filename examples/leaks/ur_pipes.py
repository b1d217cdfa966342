"""unclosed_resources: a pipe per call, both ends kept open."""
import os


def step():
    os.pipe()
