"""The Python side of the doctor's investigation (leakguard).

Small inspections that are clearer in Python than through the C API, run a
few times per investigation (never in a hot path). The doctor compiles this
file under its own name and runs it in a private namespace; nothing is
imported into sys.modules, and its frames are left out of every list of
allocation sites (OwnFrameFilters in leakguard/counters.h).

Defines scan(module), thread_locals(module), gc_automatic() and
saveall_collect().
"""
import atexit
import collections
import contextvars
import gc
import os
import sys
import threading
import types
import weakref

_CONTAINERS = (list, dict, set, frozenset, collections.deque, tuple)
# Instance attributes that state an object's own size limit (a cache's
# capacity): the containers inside it inherit the limit.
_LIMIT_NAMES = ("capacity", "maxsize", "max_size", "maxlen", "max_entries", "limit")
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
    if getattr(t, "__module__", "").startswith("asyncio") and t.__name__ in ("TimerHandle", "Handle"):
        return "callback"
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


def _lru_limit(obj):
    try:
        maxsize = obj.cache_info().maxsize
    except Exception:
        return -1
    return -1 if maxsize is None else int(maxsize)


def _is_pandas(obj):
    t = type(obj)
    return getattr(t, "__module__", "").startswith("pandas.") and t.__name__ in ("DataFrame", "Series")


def _slot_names(t):
    names = []
    for klass in t.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        names.extend([slots] if isinstance(slots, str) else slots)
    return names


def _link(obj):
    """The attribute of obj that refers to another object of its own type (a
    linked list's next or prev), or None."""
    t = type(obj)
    if t.__module__ == "builtins":
        return None
    for name in _slot_names(t):
        descr = _type_attr(obj, name)
        try:
            value = descr.__get__(obj, t)
        except Exception:
            continue
        if type(value) is t:
            return lambda o, d=descr: d.__get__(o, t)
    d = _instance_dict(obj)
    if d is not None:
        for name, value in d.items():
            if type(value) is t:
                return lambda o, n=name: (_instance_dict(o) or {}).get(n)
    return None


def _chain_depth(obj, step, cap=100000):
    seen = set()
    n = 0
    while obj is not None and n < cap and id(obj) not in seen:
        seen.add(id(obj))
        n += 1
        try:
            obj = step(obj)
        except Exception:
            break
    return n


def _measure(obj):
    if _type_attr(obj, "cache_info") is not None and _type_attr(obj, "cache_clear") is not None:
        try:
            return ("lru_cache", int(obj.cache_info().currsize), None)
        except Exception:
            return None
    if _is_ndarray(obj):
        return ("ndarray", int(obj.nbytes), None)
    if _is_pandas(obj):
        return ("dataframe", len(obj), None)
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
    if not isinstance(obj, (type, types.FunctionType, types.ModuleType)):
        step = _link(obj)
        if step is not None:
            return ("chain", _chain_depth(obj, step), obj)
    return None


def _own_limit(obj):
    """The size limit an object states for itself, or -1."""
    if isinstance(obj, collections.deque) and obj.maxlen is not None:
        return obj.maxlen
    if _type_attr(obj, "cache_info") is not None and _type_attr(obj, "cache_clear") is not None:
        return _lru_limit(obj)
    d = _instance_dict(obj)
    if d is not None:
        for name in _LIMIT_NAMES:
            v = d.get(name)
            if type(v) is int and v > 0:
                return v
    return -1


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
    if isinstance(obj, contextvars.ContextVar):
        # The value this context sees (ContextVar.get runs no user code).
        out.append(("%s.get()" % path, obj.get(None), via | {"contextvar"}))
        return out
    d = _instance_dict(obj)
    if d is not None:
        for k, v in list(d.items()):
            if not k.startswith("__"):
                out.append(("%s.%s" % (path, k), v, via))
    return out


def _project_modules(module):
    """The other modules of the script's project: loaded from the directory
    tree the script (or its top-level package) lives in."""
    f = getattr(module, "__file__", None)
    if not f:
        return []
    root = os.path.dirname(os.path.abspath(f))
    for _ in range((module.__name__.count(".")) if getattr(module, "__package__", None) else 0):
        root = os.path.dirname(root)
    prefix = root + os.sep
    out = []
    for m in list(sys.modules.values()):
        mf = getattr(m, "__file__", None)
        if m is module or not isinstance(mf, str) or not isinstance(m, types.ModuleType):
            continue
        if os.path.abspath(mf).startswith(prefix) and "site-packages" not in mf and "dist-packages" not in mf:
            out.append(m)
    return sorted(out, key=lambda m: m.__name__)


def _registries():
    """The standard library's own registries, named in Python terms:
    path -> (kind, measure, item, tag, limit)."""
    out = {
        "sys.modules": ("dict", len(sys.modules), "", "registry", -1),
        "gc.garbage": ("list", len(gc.garbage), "", "registry:gc.garbage", -1),
        "weakref.finalize._registry": ("dict", len(weakref.finalize._registry), "callable",
                                       "registry:callbacks", -1),
    }
    ncallbacks = getattr(atexit, "_ncallbacks", None)
    if ncallbacks is not None:
        out["atexit (registered callbacks)"] = ("callbacks", ncallbacks(), "callable",
                                                "registry:callbacks", -1)
    logging = sys.modules.get("logging")
    manager = getattr(getattr(logging, "Logger", None), "manager", None)
    logger_dict = getattr(manager, "loggerDict", None)
    if isinstance(logger_dict, dict):
        out["logging.Logger.manager.loggerDict"] = ("dict", len(logger_dict), "Logger", "registry", -1)
    return out


def bounded_internals():
    """Caches of the standard library and of installed packages that state
    their own limit (functools caches with a maxsize, re's pattern cache):
    path -> object, measured by scan() like the script's own containers."""
    out = {}
    re = sys.modules.get("re")
    if re is not None and isinstance(getattr(re, "_cache", None), dict):
        out["re._cache"] = (re._cache, int(getattr(re, "_MAXCACHE", 512)))
    for name, m in list(sys.modules.items()):
        if not isinstance(m, types.ModuleType) or name.startswith("__"):
            continue
        try:
            items = list(vars(m).items())
        except Exception:
            continue
        for k, v in items:
            if _type_attr(v, "cache_info") is None or _type_attr(v, "cache_clear") is None:
                continue
            if getattr(v, "__module__", None) != name:
                continue
            limit = _lru_limit(v)
            if limit > 0:
                out["%s.%s" % (name, k)] = (v, limit)
    return out


def scan(module, internals=None, max_depth=5, max_nodes=5000):
    """{path: (kind, measure, item_tag, tags, limit)} for every container
    reachable within max_depth from the globals of the script's module and of
    the other modules of its project, the standard library's registries, and
    `internals` (bounded_internals()). tags: "class", "defaults",
    "contextvar", "registry[:what]", "internal", comma-separated; limit: the
    size the container (or the object holding it) says it stops at, or -1."""
    result = _registries()
    if internals:
        for path, (obj, limit) in internals.items():
            m = _measure(obj)
            if m is not None:
                result[path] = (m[0], m[1], _describe_item(m[2]), "internal", limit)
    seen = set()
    queue = collections.deque()
    for mod in ([module] + _project_modules(module)) if module is not None else []:
        name = mod.__name__
        for k, v in list(vars(mod).items()):
            if not k.startswith("__") and not isinstance(v, types.ModuleType):
                queue.append(("%s.%s" % (name, k), v, 1, frozenset(), -1, name))
    nodes = 0
    while queue and nodes < max_nodes:
        path, obj, depth, via, limit, name = queue.popleft()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        nodes += 1
        own = _own_limit(obj)
        if own > 0:
            limit = own
        m = _measure(obj)
        if m is not None:
            kind, measure, item = m
            result[path] = (kind, measure, _describe_item(item), ",".join(sorted(via)), limit)
        if depth < max_depth:
            for child_path, child, child_via in _children(path, obj, name, via):
                queue.append((child_path, child, depth + 1, child_via, limit, name))
    return result


def thread_locals(module):
    name = module.__name__
    return ["%s.%s" % (name, k) for k, v in list(vars(module).items())
            if isinstance(v, threading.local)]


def gc_automatic():
    return gc.isenabled() and gc.get_threshold()[0] > 0


_frozen = [False]


def freeze_heap():
    """Moves every tracked object to the permanent generation (gc.freeze()),
    so that the collections of the measured iterations walk only what the
    workload made since, not the whole heap. Only when nothing else froze
    objects (a host that froze its heap before forking keeps it frozen):
    returns whether the heap is frozen by the doctor."""
    if not _frozen[0] and gc.get_freeze_count():
        return False
    gc.freeze()
    _frozen[0] = True
    return True


def thaw_heap():
    """Undoes freeze_heap(): the frozen objects go back to the oldest
    generation, where the census, the object mark and gc.get_objects() see
    them again."""
    if _frozen[0]:
        gc.unfreeze()
        _frozen[0] = False


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
