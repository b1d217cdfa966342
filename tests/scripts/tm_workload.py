"""A deterministic random workload for tracemalloc_test: allocations from
several lines of two files, with recursion (frames repeated in one
traceback) and frees, so that snapshots differ in every way compare_to can
see."""

import random

import tm_workload_helpers as helpers

KEEP = []


def _alloc_here(rng):
    return bytes(rng.randrange(1, 600))


def _two_levels(rng):
    return helpers.recurse(1, rng.randrange(1, 50))


def run(seed, n, keep=KEEP):
    rng = random.Random(seed)
    for _ in range(n):
        kind = rng.randrange(7)
        if kind == 0:
            keep.append(bytes(rng.randrange(1, 300)))
        elif kind == 1:
            keep.append(helpers.recurse(rng.randrange(0, 4), rng.randrange(1, 200)))
        elif kind == 2:
            keep.append(helpers.make_list(rng.randrange(0, 12)))
        elif kind == 3:
            keep.append(_alloc_here(rng))
        elif kind == 4 and keep:
            del keep[rng.randrange(len(keep))]
        elif kind == 5:
            keep.append(_two_levels(rng))
        else:
            keep.append(helpers.nested_dict(rng.randrange(1, 4)))


def clear():
    del KEEP[:]
