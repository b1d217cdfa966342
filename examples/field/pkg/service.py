"""The service appends every request to the store's module-level list: the
growth is held in another module of the package (pkg.store._rows)."""
from . import store

_n = [0]


def step():
    _n[0] += 1
    store.add({"request": _n[0], "body": "q" * 80})
