"""A plugin loader that builds a module per load and registers it in
sys.modules under a fresh name: nothing ever removes them."""
import sys
import types

_n = [0]


def step():
    _n[0] += 1
    name = "plugin_%d" % _n[0]
    mod = types.ModuleType(name)
    mod.table = list(range(50))
    sys.modules[name] = mod
