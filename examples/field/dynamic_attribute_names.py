"""Reads attributes whose names are built at run time: CPython's method cache
keeps the name strings of recent lookups, bounded; nothing leaks."""


class Record:
    pass


_r = Record()
_n = [0]


def step():
    _n[0] += 1
    getattr(_r, "field_%d" % _n[0], None)
