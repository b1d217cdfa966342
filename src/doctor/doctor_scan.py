"""The Python side of the doctor's investigation (leakguard).

Small inspections that are clearer in Python than through the C API, run a
few times per investigation (never in a hot path). The doctor compiles this
file under its own name and runs it in a private namespace; nothing is
imported into sys.modules, and its frames are left out of every list of
allocation sites (OwnFrameFilters in leakguard/counters.h).

Defines scan(module), thread_locals(module), gc_automatic() and
saveall_collect().
"""
import collections
import gc
import threading
import types

_CONTAINERS = (list, dict, set, frozenset, collections.deque)
_SEQUENCES = (list, tuple, collections.deque)


def _is_ndarray(obj):
    return type(obj).__name__ == "ndarray" and hasattr(obj, "nbytes")


def _describe_item(item):
    if item is None:
        return ""
    if isinstance(item, types.MethodType):
        return "bound_method"
    if isinstance(item, types.FunctionType):
        return "closure" if item.__closure__ else "function"
    if _is_ndarray(item):
        return "ndarray"
    t = type(item)
    if getattr(t, "__module__", "") == "logging" and t.__name__ == "LogRecord":
        return "log_record"
    if callable(item) and not isinstance(item, type):
        return "callable"
    return t.__name__


def _type_attr(obj, name):
    """An attribute of obj's type: never runs the object's own __getattr__
    (a ctypes library, a proxy) the way getattr(obj, name) would."""
    for klass in type(obj).__mro__:
        if name in klass.__dict__:
            return klass.__dict__[name]
    return None


def _instance_dict(obj):
    try:
        d = object.__getattribute__(obj, "__dict__")
    except Exception:
        return None
    return d if isinstance(d, dict) else None


def _measure(obj):
    if _type_attr(obj, "cache_info") is not None and _type_attr(obj, "cache_clear") is not None:
        try:
            return ("lru_cache", int(obj.cache_info().currsize), None)
        except Exception:
            return None
    if _is_ndarray(obj):
        return ("ndarray", int(obj.nbytes), None)
    if isinstance(obj, _CONTAINERS):
        n = len(obj)
        item = None
        if n:
            try:
                if isinstance(obj, dict):
                    item = next(reversed(obj.values()))
                elif isinstance(obj, (set, frozenset)):
                    item = next(iter(obj))
                else:
                    item = obj[-1]
            except Exception:
                item = None
        if isinstance(obj, list) and n and all(_is_ndarray(x) for x in obj[-3:]):
            return ("ndarray_list", sum(int(x.nbytes) for x in obj if _is_ndarray(x)), item)
        return (type(obj).__name__, n, item)
    return None


def _children(path, obj, module_name, via):
    out = []
    if isinstance(obj, types.ModuleType):
        return out
    if isinstance(obj, type):
        if getattr(obj, "__module__", None) != module_name:
            return out
        for k, v in list(vars(obj).items()):
            if not k.startswith("__"):
                out.append(("%s.%s" % (path, k), v, via | {"class"}))
        return out
    if isinstance(obj, types.FunctionType):
        if obj.__defaults__:
            for i, v in enumerate(obj.__defaults__):
                out.append(("%s.__defaults__[%d]" % (path, i), v, via | {"defaults"}))
        if obj.__kwdefaults__:
            for k, v in obj.__kwdefaults__.items():
                out.append(("%s.__kwdefaults__[%r]" % (path, k), v, via | {"defaults"}))
        return out
    if isinstance(obj, dict):
        if len(obj) <= 32:
            for k, v in list(obj.items()):
                if isinstance(k, str):
                    out.append(("%s[%r]" % (path, k), v, via))
        return out
    if isinstance(obj, _SEQUENCES):
        if len(obj) <= 4:
            for i, v in enumerate(list(obj)):
                out.append(("%s[%d]" % (path, i), v, via))
        return out
    if isinstance(obj, (set, frozenset, str, bytes, bytearray, int, float, complex)):
        return out
    d = _instance_dict(obj)
    if d is not None:
        for k, v in list(d.items()):
            if not k.startswith("__"):
                out.append(("%s.%s" % (path, k), v, via))
    return out


def scan(module, max_depth=5, max_nodes=5000):
    """{path: (kind, measure, item_tag, via_class, via_defaults)} for every
    container reachable from the module's globals within max_depth."""
    name = module.__name__
    result = {}
    seen = set()
    queue = collections.deque()
    for k, v in list(vars(module).items()):
        if not k.startswith("__"):
            queue.append(("%s.%s" % (name, k), v, 1, frozenset()))
    nodes = 0
    while queue and nodes < max_nodes:
        path, obj, depth, via = queue.popleft()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        nodes += 1
        m = _measure(obj)
        if m is not None:
            kind, measure, item = m
            result[path] = (kind, measure, _describe_item(item),
                            "class" in via, "defaults" in via)
        if depth < max_depth:
            for child_path, child, child_via in _children(path, obj, name, via):
                queue.append((child_path, child, depth + 1, child_via))
    return result


def thread_locals(module):
    name = module.__name__
    return ["%s.%s" % (name, k) for k, v in list(vars(module).items())
            if isinstance(v, threading.local)]


def gc_automatic():
    return gc.isenabled() and gc.get_threshold()[0] > 0


def saveall_collect():
    """Collects with DEBUG_SAVEALL: what only the cycle collector frees.
    Returns (count, [(type name, count), ...] most first); removes what it
    added from gc.garbage, restores the debug flags, and frees it."""
    flags = gc.get_debug()
    before = len(gc.garbage)
    gc.set_debug(flags | gc.DEBUG_SAVEALL)
    try:
        gc.collect()
    finally:
        gc.set_debug(flags)
    added = gc.garbage[before:]
    del gc.garbage[before:]
    counts = {}
    for o in added:
        name = type(o).__name__
        counts[name] = counts.get(name, 0) + 1
    n = len(added)
    del added
    gc.collect()
    return n, sorted(counts.items(), key=lambda kv: -kv[1])[:5]
