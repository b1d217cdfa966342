"""Allocation sites in a second file for tracemalloc_test (tm_workload.py
calls them), so snapshots hold several file names, deep and recursive
tracebacks."""


def recurse(depth, size):
    if depth <= 0:
        return bytearray(size)
    return [recurse(depth - 1, size)]


def make_list(n):
    return [str(i) * 3 for i in range(n)]


def nested_dict(n):
    return {str(i): {"v": [i] * i} for i in range(n)}
