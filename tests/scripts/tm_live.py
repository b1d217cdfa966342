"""Takes a leakguard snapshot and Python's right after it, with nothing
allocated in between but what the calls themselves do. The cycle collector
is off meanwhile: both takes allocate many tuples, and a collection inside
one of them would free garbage the other one still sees."""

import gc
import tracemalloc


def take_both(leakguard_take):
    gc.collect()
    gc.disable()
    try:
        leakguard_take()
        return tracemalloc.take_snapshot()
    finally:
        gc.enable()


def take_both_reversed(leakguard_take):
    gc.collect()
    gc.disable()
    try:
        snapshot = tracemalloc.take_snapshot()
        leakguard_take()
        return snapshot
    finally:
        gc.enable()
