"""Small workloads for leak_check_test.cc, one leak shape per function.
Line numbers of the allocations are asserted by the tests."""
import functools
import os

_kept = []
_files = []


def leak_list():
    _kept.append(bytes(1000))  # line 11: one block kept per call


def clean():
    scratch = [bytes(100) for _ in range(50)]
    return len(scratch)


def leak_fd():
    _files.append(open(os.devnull))  # line 20: one descriptor per call


@functools.lru_cache(maxsize=2)
def _cached(n):
    return bytes(64) * n


def cache_fill():
    # Fills its 2 slots during warmup, then only hits: not a leak.
    for n in (1, 2):
        _cached(n)


def cyclic_churn():
    a = {}
    b = {"a": a}
    a["b"] = b  # a cycle the collector frees


def raises():
    raise RuntimeError("workload failed")  # line 42


class Record:
    pass


def leak_records():
    _kept.append(Record())  # one tracked Record per call


def reset():
    _kept.clear()
    for f in _files:
        f.close()
    _files.clear()
