"""Builds search patterns from user input: many distinct regular
expressions. re's own cache is bounded; nothing leaks."""
import re

_n = [0]


def step():
    _n[0] += 1
    re.search("user-%d-[a-z]+" % _n[0], "user-%d-abc" % _n[0])
