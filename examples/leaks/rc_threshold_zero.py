"""reference_cycles: gc.set_threshold(0) turns automatic collection off;
self-referencing dicts pile up."""
import gc

gc.set_threshold(0)


def step():
    d = {"blob": "x" * 500}
    d["self"] = d
