"""Per-request memory tracking for web apps: WSGI and ASGI middleware.

Each request costs two RSS readings (``leakguard.rss()``: one pread) and one
``RequestTracker.record()``; the statistics (p50/p99 growth per request, the
worst requests, totals per path) are kept in constant memory. A traced diff
(tracemalloc snapshots before and after, ``gc.collect()`` before the
second) runs only for every ``trace_every``-th request, as long as traced
requests have taken at most ``trace_budget`` (default 1%) of the time spent
serving (a traced request runs under tracemalloc, which slows what it
allocates several times over), and for the next request of a path whose
last request grew RSS by ``rss_threshold`` or more. The diff keeps the
application's own lines (frames in the standard library, site-packages and
dist-packages, like werkzeug's, are left out unless
``include_libraries=True``), so a per-request leak is named by its route
and its line::

    from flask import Flask
    from leakguard.middleware import WSGIMiddleware

    app = Flask(__name__)
    app.wsgi_app = WSGIMiddleware(app.wsgi_app, trace_every=100)
    ...
    app.wsgi_app.report()   # {'requests': ..., 'p99_rss_delta': ..., 'leaks': [...]}

Findings are logged as warnings on the ``leakguard`` logger. RSS is
process-wide: with concurrent requests (threads, or an ASGI server's
tasks) each delta and each traced diff also contains the others' growth.
"""

import gc
import logging
import os
import sys
import sysconfig
import threading
import time
import tracemalloc

import leakguard
from leakguard._sizes import parse_size

__all__ = ["WSGIMiddleware", "ASGIMiddleware", "RequestMonitor"]

_logger = logging.getLogger("leakguard")


def _library_roots():
    roots = set()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            roots.add(os.path.realpath(path))
    for path in sys.path:
        if path.endswith(("site-packages", "dist-packages")):
            roots.add(os.path.realpath(path))
    roots.add(os.path.realpath(os.path.dirname(os.path.abspath(__file__))))
    return tuple(sorted(r.rstrip(os.sep) + os.sep for r in roots))


class RequestMonitor:
    """RequestMonitor(*, trace_every=100, rss_threshold=1 << 20, top=5, worst_kept=10, include_libraries=False, frames=1, trace_budget=0.01, clock=None)

    The framework-free core of both middlewares: ``begin(label)`` before a
    request, ``end(token)`` after it. ``report()`` says what was found.
    ``trace_budget``: the share of the serving time (0 to 1) the periodic
    traced requests may take; one is traced when it is due and the traced
    requests so far took at most that share (1: every ``trace_every``-th,
    0: none; a path flagged by ``rss_threshold`` is traced either way).
    ``clock``: seconds for the budget's accounting (``time.perf_counter``).
    """

    def __init__(self, *, trace_every=100, rss_threshold=1 << 20, top=5, worst_kept=10,
                 include_libraries=False, frames=1, trace_budget=0.01, clock=None):
        if trace_every < 0:
            raise ValueError("trace_every must be >= 0 (0: never trace)")
        if not 0 <= trace_budget <= 1:
            raise ValueError("trace_budget must be between 0 and 1 (a share of the serving time)")
        self.trace_every = int(trace_every)
        self.trace_budget = float(trace_budget)
        self._clock = time.perf_counter if clock is None else clock
        self.rss_threshold = parse_size(rss_threshold)
        self.top = int(top)
        self.frames = int(frames)
        self.include_libraries = include_libraries
        self.tracker = leakguard.RequestTracker(rss_threshold_bytes=self.rss_threshold,
                                                worst_kept=worst_kept, name="requests")
        self._roots = _library_roots()
        self._lock = threading.Lock()
        self._count = 0
        self._paths = {}       # label -> [requests, total rss delta, max rss delta]
        self._retrace = set()  # labels whose next request is traced
        self._leaks = {}       # (label, file, line) -> [traced requests, bytes, blocks]
        self._tracing = False  # a traced request is running
        self._served = 0.0     # seconds spent in requests
        self._traced = 0.0     # seconds spent in traced requests
        self._traced_count = 0

    def begin(self, label):
        """begin(label) -> token: call before the request; pass the token to end()."""
        with self._lock:
            self._count += 1
            due = (self.trace_every and self._count % self.trace_every == 0 and
                   self.trace_budget > 0 and self._traced <= self.trace_budget * self._served)
            trace = not self._tracing and (due or label in self._retrace)
            if trace:
                self._tracing = True
                self._retrace.discard(label)
        snapshot = started = None
        if trace:
            # No collection first: what the request frees shows as negative
            # and is left out; only what it keeps counts.
            started = not tracemalloc.is_tracing()
            if started:
                tracemalloc.start(self.frames)
            snapshot = tracemalloc.take_snapshot()
        return (label, leakguard.rss(), self._clock(), snapshot, started)

    def end(self, token, label=None):
        """end(token, label=None): call after the request (its body sent);
        label, when given, replaces the one given to begin() (e.g. the route
        the framework matched)."""
        hint, rss_before, started_at, snapshot, started = token
        label = hint if label is None else label
        rss_delta = leakguard.rss() - rss_before
        self.tracker.record(label, rss_delta, self._clock() - started_at)
        lines = None
        if snapshot is not None:
            try:
                gc.collect()
                after = tracemalloc.take_snapshot()
                lines = self._user_lines(after.compare_to(snapshot, "lineno"))
            finally:
                if started:
                    tracemalloc.stop()
        elapsed = self._clock() - started_at  # the traced diff's own work included
        with self._lock:
            self._served += elapsed
            if snapshot is not None:
                self._traced += elapsed
                self._traced_count += 1
            entry = self._paths.get(label)
            if entry is None:
                entry = self._paths[label] = [0, 0, 0]
            entry[0] += 1
            entry[1] += rss_delta
            entry[2] = max(entry[2], rss_delta)
            if self.rss_threshold and rss_delta >= self.rss_threshold:
                self._retrace.add(hint)
            if snapshot is not None:
                self._tracing = False
                for stat in lines:
                    frame = stat.traceback[0]
                    key = (label, frame.filename, frame.lineno)
                    leak = self._leaks.setdefault(key, [0, 0, 0])
                    leak[0] += 1
                    leak[1] += stat.size_diff
                    leak[2] += stat.count_diff
        if lines:
            frame = lines[0].traceback[0]
            _logger.warning("leakguard: %s kept %+d B in %d blocks at %s:%d after the request",
                            label, lines[0].size_diff, lines[0].count_diff, frame.filename,
                            frame.lineno)

    def _user_lines(self, stats):
        kept = []
        for stat in stats:
            if stat.size_diff <= 0:
                continue
            filename = stat.traceback[0].filename
            if filename == tracemalloc.__file__ or filename.startswith("<"):
                continue
            if not self.include_libraries and os.path.realpath(filename).startswith(self._roots):
                continue
            kept.append(stat)
            if len(kept) >= self.top:
                break
        return kept

    def report(self):
        """report() -> dict

        requests, p50_rss_delta, p99_rss_delta, max_rss_delta,
        total_rss_delta, over_threshold (from the RequestTracker); worst:
        [(label, rss_delta, seconds)] largest first; paths: {label:
        {'requests', 'total_rss_delta', 'max_rss_delta'}}; leaks: the lines
        that kept memory after traced requests, [{'route', 'file', 'line',
        'traced_requests', 'size_diff', 'count_diff'}], largest first;
        traced_requests and traced_time_share: how many requests were traced
        and their share of the serving time (see trace_budget).
        """
        stats = self.tracker.stats()
        with self._lock:
            paths = {label: {"requests": n, "total_rss_delta": total, "max_rss_delta": worst}
                     for label, (n, total, worst) in self._paths.items()}
            traced_requests = self._traced_count
            share = self._traced / self._served if self._served > 0 else 0.0
            leaks = [{"route": label, "file": filename, "line": line,
                      "traced_requests": n, "size_diff": size, "count_diff": count}
                     for (label, filename, line), (n, size, count) in self._leaks.items()]
        leaks.sort(key=lambda leak: -leak["size_diff"])
        return {
            "requests": stats["count"], "p50_rss_delta": stats["p50_rss_delta"],
            "p99_rss_delta": stats["p99_rss_delta"], "max_rss_delta": stats["max_rss_delta"],
            "total_rss_delta": stats["total_rss_delta"],
            "over_threshold": stats["over_threshold"], "worst": stats["worst"],
            "paths": paths, "leaks": leaks,
            "traced_requests": traced_requests, "traced_time_share": share,
        }


class _ClosingBody:
    """The WSGI body, passed through; the request ends at close()."""

    def __init__(self, body, monitor, token, label, environ):
        self._body = body
        self._monitor = monitor
        self._token = token
        self._label = label  # [label] once start_response ran
        self._environ = environ
        self._iterator = iter(body)

    def __iter__(self):
        return self

    def __next__(self):
        return next(self._iterator)

    def close(self):
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            token, self._token = self._token, None
            if token is not None:
                label = self._label[0] if self._label else self._monitor._label(self._environ)
                self._monitor.end(token, label)


class WSGIMiddleware(RequestMonitor):
    """WSGIMiddleware(app, *, route=None, **options)

    Wraps a WSGI app. ``route(environ) -> str`` names a request, once the
    app has run; by default the route werkzeug matched (Flask:
    ``"GET /users/<int:user>"``), else ``"METHOD /path"``. Options are
    RequestMonitor's. The request ends when the server closes the body
    (PEP 3333), so streamed bodies are counted.
    """

    def __init__(self, app, *, route=None, **options):
        super().__init__(**options)
        self.app = app
        self.route = route

    def _label(self, environ):
        if self.route is not None:
            return self.route(environ)
        method = environ.get("REQUEST_METHOD", "GET")
        # werkzeug's request object (Flask's): its matched rule. Flask drops
        # it when the request context ends, so it is read at start_response.
        rule = getattr(environ.get("werkzeug.request"), "url_rule", None)
        if rule is not None and getattr(rule, "rule", None):
            return "%s %s" % (method, rule.rule)
        return "%s %s" % (method, environ.get("PATH_INFO", "") or "/")

    def __call__(self, environ, start_response):
        path = "%s %s" % (environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "") or "/")
        token = self.begin(path)
        label = []

        def named_start_response(status, headers, exc_info=None):
            if not label:
                label.append(self._label(environ))
            if exc_info is None:
                return start_response(status, headers)
            return start_response(status, headers, exc_info)

        try:
            body = self.app(environ, named_start_response)
        except BaseException:
            self.end(token, label[0] if label else self._label(environ))
            raise
        return _ClosingBody(body, self, token, label, environ)


class ASGIMiddleware(RequestMonitor):
    """ASGIMiddleware(app, *, route=None, **options)

    Wraps an ASGI 3 app; measures "http" and "websocket" scopes (lifespan
    passes through). ``route(scope) -> str`` names a request once the app
    has run; by default the route the framework left in the scope
    (``scope["route"].path``, Starlette), else ``"METHOD /path"``. Options
    are RequestMonitor's.
    """

    def __init__(self, app, *, route=None, **options):
        super().__init__(**options)
        self.app = app
        self.route = route

    async def __call__(self, scope, receive, send):
        if scope.get("type") not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        method = scope.get("method", "WEBSOCKET")
        token = self.begin("%s %s" % (method, scope.get("path", "/")))
        try:
            await self.app(scope, receive, send)
        finally:
            if self.route is not None:
                label = self.route(scope)
            else:
                route = getattr(scope.get("route"), "path", None)
                label = "%s %s" % (method, route) if route else None
            self.end(token, label)
