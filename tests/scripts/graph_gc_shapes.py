"""Garbage shapes for gc_test: cycles with and without __del__.

Every class uses __slots__ so that an instance is exactly one gc-tracked
object on every CPython version (no instance __dict__), which keeps the
collected counts exact.
"""
import weakref

deleted = 0


class WithDel:
    __slots__ = ('other', '__weakref__')

    def __del__(self):
        global deleted
        deleted += 1


class Plain:
    __slots__ = ('other', '__weakref__')

    def __repr__(self):
        return '<Plain>'


def make_del_cycles(n):
    """n two-object cycles whose objects define __del__ (2n objects)."""
    for _ in range(n):
        a, b = WithDel(), WithDel()
        a.other, b.other = b, a


def make_list_cycles(n):
    """n lists that contain themselves."""
    for _ in range(n):
        cell = []
        cell.append(cell)


def make_dict_cycles(n):
    """n dicts that contain themselves."""
    for _ in range(n):
        d = {}
        d['self'] = d


def make_plain_cycle():
    """One Plain that refers to itself; returns a weakref to it."""
    p = Plain()
    p.other = p
    return weakref.ref(p)
