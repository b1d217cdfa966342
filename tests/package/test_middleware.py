"""leakguard.middleware: per-request tracking under Flask (WSGI) and an ASGI
app driven in-process; the route and the line of a per-request leak.
leakguard.RequestTracker itself: tests/python/test_request_tracker.py."""
import asyncio
import logging
import os
import unittest

from leakguard.middleware import ASGIMiddleware, RequestMonitor, WSGIMiddleware

try:
    import flask
except ImportError:  # python3-flask: scripts/setup installs it
    flask = None

_sessions = []


def remember_session(user):
    _sessions.append({"user": user, "blob": bytearray(2048)})  # leak: per request


LEAK_LINE = remember_session.__code__.co_firstlineno + 1


def make_flask_app():
    app = flask.Flask(__name__)

    @app.route("/users/<int:user>")
    def user_page(user):
        remember_session(user)
        return "user %d" % user

    @app.route("/health")
    def health():
        return "ok"

    return app


@unittest.skipIf(flask is None, "python3-flask is not installed")
class FlaskTest(unittest.TestCase):
    def setUp(self):
        _sessions.clear()
        self.app = make_flask_app()
        # trace_budget=1: every 10th request, whatever the traced ones cost.
        self.monitor = WSGIMiddleware(self.app.wsgi_app, trace_every=10, rss_threshold="64 MB",
                                      trace_budget=1)
        self.app.wsgi_app = self.monitor
        self.client = self.app.test_client()

    def tearDown(self):
        _sessions.clear()

    def test_names_the_route_and_the_line_of_the_leak(self):
        with self.assertLogs("leakguard", "WARNING") as logs:
            for i in range(60):
                self.assertEqual(self.client.get("/health", buffered=True).data, b"ok")
                self.assertEqual(self.client.get("/users/%d" % i, buffered=True).data, b"user %d" % i)
        report = self.monitor.report()
        self.assertEqual(report["requests"], 120)
        self.assertEqual(report["paths"]["GET /users/<int:user>"]["requests"], 60)
        self.assertEqual(report["paths"]["GET /health"]["requests"], 60)
        leak = report["leaks"][0]
        self.assertEqual(leak["route"], "GET /users/<int:user>")
        self.assertEqual((os.path.basename(leak["file"]), leak["line"]),
                         ("test_middleware.py", LEAK_LINE))
        # Every 10th request is traced: the 10th, 20th, ... are all /users/N.
        self.assertEqual(leak["traced_requests"], 12)
        self.assertGreaterEqual(leak["size_diff"], 12 * 2048)
        # Nothing of werkzeug's or flask's own.
        for found in report["leaks"]:
            self.assertNotIn("werkzeug", found["file"])
            self.assertNotIn("flask", found["file"])
        self.assertTrue(any("GET /users/<int:user> kept" in line and
                            "test_middleware.py:%d" % LEAK_LINE in line
                            for line in logs.output), logs.output)

    def test_statistics_come_from_the_request_tracker(self):
        for _ in range(20):
            self.client.get("/health", buffered=True)
        report = self.monitor.report()
        stats = self.monitor.tracker.stats()
        self.assertEqual(report["requests"], stats["count"])
        self.assertEqual(report["requests"], 20)
        self.assertEqual(len(report["worst"]), 10)
        self.assertEqual({label for label, _, _ in report["worst"]}, {"GET /health"})
        self.assertLessEqual(report["p50_rss_delta"], report["p99_rss_delta"])
        self.assertLessEqual(report["p99_rss_delta"], report["max_rss_delta"])

    def test_a_request_over_the_threshold_gets_the_next_one_traced(self):
        monitor = RequestMonitor(trace_every=0, rss_threshold="1 KB")
        token = monitor.begin("GET /big")
        monitor.end(token)
        # Fake growth past the threshold: record()'s numbers are the host's.
        label, rss_before, started, snapshot, _ = monitor.begin("GET /big")
        self.assertIsNone(snapshot)
        with self.assertLogs("leakguard", "WARNING") as logs:
            monitor.end((label, rss_before - 4096, started, None, None))
            token = monitor.begin("GET /big")
            self.assertIsNotNone(token[3], "the request after one over the threshold is traced")
            remember_session(1)
            monitor.end(token)
        self.assertIn("request_tracker 'GET /big'", logs.output[0])
        self.assertIn("GET /big kept", logs.output[-1])
        self.assertEqual(monitor.report()["leaks"][0]["line"], LEAK_LINE)
        self.assertEqual(monitor.report()["over_threshold"], 1)


class TraceBudgetTest(unittest.TestCase):
    def drive(self, monitor, requests, traced_seconds, plain_seconds):
        """Runs `requests` requests on a fake clock: a traced one takes
        traced_seconds, another plain_seconds."""
        for _ in range(requests):
            token = monitor.begin("GET /")
            self.now += traced_seconds if token[3] is not None else plain_seconds
            monitor.end(token)

    def setUp(self):
        self.now = 0.0

    def test_traced_requests_keep_to_their_share_of_the_time(self):
        # Due every request, traced ones 4x as long as the others, 10%:
        # traced when the traced time so far is at most a tenth of it all.
        monitor = RequestMonitor(trace_every=1, rss_threshold=0, trace_budget=0.1,
                                 clock=lambda: self.now)
        self.drive(monitor, 1000, traced_seconds=4.0, plain_seconds=1.0)
        report = monitor.report()
        self.assertEqual(report["requests"], 1000)
        # t traced of 1000 keep 4t close to 0.1 (4t + 1000 - t), one traced
        # request past it at most: t = 28, 112 s of 1084 s (10.3%).
        self.assertEqual(report["traced_requests"], 28)
        self.assertLessEqual(report["traced_time_share"], 0.1 + 4.0 / 1084)
        self.assertGreater(report["traced_time_share"], 0.1 - 4.0 / 1084)

    def test_a_budget_of_one_traces_every_due_request_and_zero_none(self):
        every = RequestMonitor(trace_every=10, rss_threshold=0, trace_budget=1,
                               clock=lambda: self.now)
        self.drive(every, 100, traced_seconds=50.0, plain_seconds=1.0)
        self.assertEqual(every.report()["traced_requests"], 10)
        never = RequestMonitor(trace_every=10, rss_threshold=0, trace_budget=0,
                               clock=lambda: self.now)
        self.drive(never, 100, traced_seconds=50.0, plain_seconds=1.0)
        self.assertEqual(never.report()["traced_requests"], 0)
        self.assertEqual(never.report()["traced_time_share"], 0.0)

    def test_budget_out_of_range(self):
        for bad in (-0.1, 1.5):
            with self.assertRaisesRegex(ValueError, "trace_budget must be between 0 and 1"):
                RequestMonitor(trace_budget=bad)


class AsgiTest(unittest.TestCase):
    def tearDown(self):
        _sessions.clear()

    def test_asgi_app_in_process(self):
        async def app(scope, receive, send):
            if scope["type"] == "lifespan":
                return
            if scope["path"].startswith("/users/"):
                remember_session(scope["path"])
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

        monitor = ASGIMiddleware(app, trace_every=5, trace_budget=1)
        sent = []

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            sent.append(message["type"])

        async def drive():
            await monitor({"type": "lifespan"}, receive, send)
            for i in range(20):
                for path in ("/users/%d" % i, "/health"):
                    await monitor({"type": "http", "method": "GET", "path": path},
                                  receive, send)

        logging.getLogger("leakguard").setLevel(logging.ERROR)
        try:
            asyncio.run(drive())
        finally:
            logging.getLogger("leakguard").setLevel(logging.NOTSET)
        report = monitor.report()
        self.assertEqual(report["requests"], 40)  # lifespan is not a request
        self.assertEqual(sent.count("http.response.body"), 40)
        leak = report["leaks"][0]
        self.assertTrue(leak["route"].startswith("GET /users/"), leak)
        self.assertEqual((os.path.basename(leak["file"]), leak["line"]),
                         ("test_middleware.py", LEAK_LINE))
        self.assertEqual(len(_sessions), 20)


if __name__ == "__main__":
    unittest.main()
