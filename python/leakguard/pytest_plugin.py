"""pytest plugin: fail the tests that leak, with the leak doctor's diagnosis.

Registered through the ``pytest11`` entry point, so an installed leakguard
adds it to every pytest run (``-p no:leakguard`` turns it off). Without
``pip install``, load it with ``-p leakguard.pytest_plugin``.

``pytest --leakguard``
    Every test function's body runs warm-up + repeat times (regrtest's rule;
    ``--leakguard-warmup`` / ``--leakguard-repeat``, default 3 + 10) through
    ``leakguard.diagnose``; a ``leak`` verdict fails the test with the cause
    id, the holder, the growing lines and the fix. The first run is an
    ordinary call, so a failing test fails with its own assertion; fixtures
    are set up once, before, and are not counted.

Markers (active with or without ``--leakguard``):

``@pytest.mark.no_leaks(warmup=3, repeat=10)``
    this test is checked as under ``--leakguard``, with these counts.
``@pytest.mark.limit_leaks("1 MB", filter_fn=None)``
    pytest-memray's marker: fail when one source location keeps more than
    the limit per run of the test. leakguard measures the growth per run
    after the warm-up runs (one-time caches and imports are not a leak);
    ``filter_fn(stack)`` gets an object with ``.frames``, a list of
    ``(function, filename, lineno)``, and drops the locations it returns
    False for.
``@pytest.mark.limit_memory("24 MB")``
    pytest-memray's marker: fail when one run of the test body allocates
    more than the limit at its peak (Python's traced heap, tracemalloc).

Sizes are pytest-memray's: a number and B, KB, MB, GB, TB (powers of 1024).

Example::

    @pytest.mark.limit_leaks("1 MB")
    def test_handler():
        handle_request({"user": 7})
"""

import functools
import gc
import inspect
import os
import tracemalloc

import pytest

import leakguard
from leakguard._sizes import format_bytes as _format_bytes
from leakguard._sizes import parse_size

__all__ = ["parse_size", "format_diagnosis"]

_DEFAULT_WARMUP = 3
_DEFAULT_REPEAT = 10


def format_diagnosis(diagnosis):
    """format_diagnosis(diagnosis) -> str

    The failure text for one ``leakguard.diagnose`` result: verdict, growth
    per iteration, then each cause (id, holder, sites, fix).
    """
    iterations = diagnosis.get("iterations") or {}
    growth = diagnosis.get("growth") or {}
    lines = ["leakguard: %s [%s warm-up + %s measured runs of the test body]" % (
        str(diagnosis.get("verdict", "?")).upper(), iterations.get("warmup", "?"),
        iterations.get("repeat", "?"))]
    if growth:
        lines.append("growth per run: RSS %s, Python heap %s, %s blocks" % (
            _format_bytes(growth.get("rss_bytes_per_iter", 0)),
            _format_bytes(growth.get("traced_bytes_per_iter", 0)),
            growth.get("blocks_per_iter", 0)))
    for cause in diagnosis.get("causes") or []:
        lines.append("cause %s (confidence %s), held by %s" % (
            cause.get("id"), cause.get("confidence"), cause.get("holder") or "no named holder"))
        for site in cause.get("sites") or []:
            lines.append("  %s:%s  %s per run" % (site.get("file"), site.get("line"),
                                                 _format_bytes(site.get("bytes_per_iter", 0))))
        for evidence in (cause.get("evidence") or [])[:3]:
            lines.append("  evidence: %s" % (evidence,))
        if cause.get("fix"):
            lines.append("  fix: %s" % (cause["fix"],))
    if diagnosis.get("note"):
        lines.append("note: %s" % (diagnosis["note"],))
    return "\n".join(lines)


class _Stack:
    """What limit_leaks' filter_fn receives (pytest-memray's Stack)."""

    def __init__(self, frames):
        self.frames = frames

    def __repr__(self):
        return "Stack(frames=%r)" % (self.frames,)


def pytest_addoption(parser):
    group = parser.getgroup("leakguard", "leak checks (leakguard)")
    group.addoption("--leakguard", action="store_true", default=False,
                    help="run each test body warm-up + repeat times and fail the ones "
                         "that leak, with leakguard's diagnosis")
    group.addoption("--leakguard-warmup", type=int, default=_DEFAULT_WARMUP, metavar="N",
                    help="runs before measuring (default %d)" % _DEFAULT_WARMUP)
    group.addoption("--leakguard-repeat", type=int, default=_DEFAULT_REPEAT, metavar="N",
                    help="measured runs, at least 2 (default %d)" % _DEFAULT_REPEAT)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "no_leaks(warmup=3, repeat=10): fail if the test body leaks (leakguard)")
    config.addinivalue_line(
        "markers", "limit_leaks(location_limit, filter_fn=None): fail if one location keeps "
                   "more than location_limit per run of the test (pytest-memray's marker)")
    config.addinivalue_line(
        "markers", "limit_memory(memory_limit): fail if one run of the test allocates more "
                   "than memory_limit at its peak (pytest-memray's marker)")


def _marker_kwargs(marker, names):
    values = dict(zip(names, marker.args))
    values.update(marker.kwargs)
    unknown = set(values) - set(names)
    if unknown or len(marker.args) > len(names):
        raise pytest.UsageError("leakguard: @pytest.mark.%s takes %s, got %r %r"
                                % (marker.name, ", ".join(names), marker.args, marker.kwargs))
    return values


def _peak_traced(body):
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        gc.collect()
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        body()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        if started:
            tracemalloc.stop()


_OWN_FILES = {os.path.abspath(__file__), os.path.abspath(__file__.replace(".pyc", ".py"))}


def _drop_own_sites(diagnosis):
    """The doctor's own bookkeeping is traced at the plugin's call line."""
    for cause in diagnosis.get("causes") or []:
        cause["sites"] = [site for site in cause.get("sites") or []
                          if os.path.abspath(str(site.get("file"))) not in _OWN_FILES]


def _leaking_sites(diagnosis, limit, filter_fn):
    found = []
    for cause in diagnosis.get("causes") or []:
        for site in cause.get("sites") or []:
            frames = [("???", site.get("file"), site.get("line"))]
            if filter_fn is not None and not filter_fn(_Stack(frames)):
                continue
            if site.get("bytes_per_iter", 0) > limit:
                found.append((cause.get("id"), site))
    return found


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    no_leaks = pyfuncitem.get_closest_marker("no_leaks")
    limit_leaks = pyfuncitem.get_closest_marker("limit_leaks")
    limit_memory = pyfuncitem.get_closest_marker("limit_memory")
    check_all = pyfuncitem.config.getoption("leakguard")
    if not (check_all or no_leaks or limit_leaks or limit_memory):
        return None
    function = pyfuncitem.obj
    if inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function):
        return None  # async tests: left to pytest and its async plugins
    args = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}

    # No frame of the plugin's own between the doctor and the test, and the
    # test's module as the namespace the doctor searches for the holder.
    body = functools.partial(function, **args)
    body.__module__ = getattr(function, "__module__", None)

    warmup = pyfuncitem.config.getoption("leakguard_warmup")
    repeat = pyfuncitem.config.getoption("leakguard_repeat")
    if no_leaks is not None:
        options = _marker_kwargs(no_leaks, ("warmup", "repeat"))
        warmup = options.get("warmup", warmup)
        repeat = options.get("repeat", repeat)
    memory_limit = None
    if limit_memory is not None:
        memory_limit = parse_size(_marker_kwargs(limit_memory, ("memory_limit",))["memory_limit"])
    leak_limit = filter_fn = None
    if limit_leaks is not None:
        options = _marker_kwargs(limit_leaks, ("location_limit", "filter_fn"))
        leak_limit = parse_size(options["location_limit"])
        filter_fn = options.get("filter_fn")

    # The first run is an ordinary call: a failing test fails as usual, and
    # the call counts as the first warm-up run.
    if memory_limit is not None:
        peak = _peak_traced(body)
        if peak > memory_limit:
            pytest.fail("leakguard: the test allocated %s at its peak, more than the limit "
                        "of %s (limit_memory)" % (_format_bytes(peak),
                                                  _format_bytes(memory_limit)), pytrace=False)
    else:
        body()
    if not (check_all or no_leaks or limit_leaks):
        return True

    diagnosis = leakguard.diagnose(body, warmup=max(warmup - 1, 0), repeat=repeat)
    _drop_own_sites(diagnosis)
    # The first, ordinary call counts as a warm-up run.
    diagnosis.setdefault("iterations", {})["warmup"] = max(warmup, 1)
    pyfuncitem.user_properties.append(("leakguard_verdict", diagnosis.get("verdict")))
    if leak_limit is not None:
        sites = _leaking_sites(diagnosis, leak_limit, filter_fn)
        traced = (diagnosis.get("growth") or {}).get("traced_bytes_per_iter", 0)
        if sites or (diagnosis.get("verdict") == "leak" and not diagnosis.get("causes")
                     and traced > leak_limit):
            where = ", ".join("%s:%s (%s, %s per run)" % (
                site.get("file"), site.get("line"), cause_id,
                _format_bytes(site.get("bytes_per_iter", 0))) for cause_id, site in sites)
            pytest.fail("leakguard: the test keeps more than %s per run at %s (limit_leaks)\n%s"
                        % (_format_bytes(leak_limit), where or "untracked locations",
                           format_diagnosis(diagnosis)), pytrace=False)
        if not (check_all or no_leaks):
            return True
    if diagnosis.get("verdict") == "leak":
        pytest.fail(format_diagnosis(diagnosis), pytrace=False)
    return True
