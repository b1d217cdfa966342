"""Heap shapes for object_graph_test: objects kept alive by known chains.

Every Payload below is reachable from this module through one known path;
the tests compare leakguard's chains (and their rendered paths) with
objgraph's on the same heap. Keep line numbers stable: the frame test
asserts the line of the `raise` in fail_with().
"""


class Payload:
    """What the chains lead to."""

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return '<Payload %s>' % self.name


class Registry:
    pass


class Slotted:
    __slots__ = ('value',)


class Config:
    entries = []


def make_closure(value):
    captured = value

    def inner():
        return captured
    return inner


def fail_with(value):
    local_ref = value
    raise RuntimeError('kept in a traceback')


def keep_traceback():
    """Keeps fail_with's frame alive in saved_tb; returns its Payload."""
    global saved_tb
    try:
        fail_with(Payload('in-frame'))
    except RuntimeError as e:
        saved_tb = e.__traceback__
    return saved_tb.tb_next.tb_frame.f_locals['value']


def make_deep(n, leaf):
    node = leaf
    for _ in range(n):
        node = [node]
    return node


_cache = {}
_volatile = {}
_names = {}
_atoms = {}
registry = Registry()
materialized = Registry()
holder = Slotted()
handler = None
saved_tb = None
deep_head = None
cycle_holder = None
dot_root = None
census_heap = []
grown = []
fresh = []


def setup():
    """Builds every chain; returns the targets by name.

    keep_traceback() is called separately, from C: the frames a traceback
    keeps have their callers' frames as f_back, and setup's frame holds
    every target.
    """
    global handler, deep_head, cycle_holder, dot_root
    targets = {}
    targets['cache'] = Payload('cached')
    _cache['key'] = [0, 1, 2, targets['cache']]
    targets['volatile'] = Payload('volatile')
    _volatile['key'] = [targets['volatile']]
    targets['registry'] = Payload('registered')
    registry.items = [targets['registry']]
    targets['table'] = Payload('tabled')
    registry.table = {'k': targets['table']}
    targets['materialized'] = Payload('materialized')
    materialized.items = [targets['materialized']]
    vars(materialized)  # Its __dict__ now exists (3.11+ keep it inline).
    targets['slotted'] = Payload('slotted')
    holder.value = targets['slotted']
    targets['closure'] = Payload('captured')
    handler = make_closure(targets['closure'])
    targets['class'] = Payload('class-level')
    Config.entries.append(targets['class'])
    targets['deep'] = Payload('deep')
    deep_head = make_deep(300, targets['deep'])
    a, b = [], []
    a.append(b)
    b.append(a)
    targets['cycle'] = Payload('in-cycle')
    b.append(targets['cycle'])
    cycle_holder = {'a': a}
    # A str is not tracked; its chain ends at a tracked dict (the list
    # value makes the dict tracked) ...
    targets['string'] = ''.join(['untracked-'] * 5)
    _names['n'] = targets['string']
    _names['tracked'] = []
    # ... but a dict of atoms only is untracked too, so no chain goes
    # through it (as gc.get_referrers, and objgraph, cannot see it).
    targets['hidden'] = ''.join(['hidden-'] * 5)
    _atoms['n'] = targets['hidden']
    targets['dot'] = Payload('drawn')
    dot_root = {'a': [targets['dot']], 'b': (targets['dot'], 1)}
    return targets


def make_census_heap(n):
    """About 4n tracked objects of a few known types."""
    for i in range(n):
        census_heap.append({'payload': Payload(i), 'items': [i, (i, [])]})


def grow(payloads, dicts):
    for i in range(payloads):
        grown.append(Payload(i))
    for i in range(dicts):
        grown.append({'list': [i]})


def make_fresh():
    for i in range(5):
        fresh.append(Payload(i))
    for i in range(3):
        fresh.append({'p': fresh[i]})
