"""A Flask app with a per-request leak, watched by leakguard's WSGI middleware.

    PYTHONPATH=build/gcc/python python3 examples/flask_app.py     # a build tree
    python3 examples/flask_app.py                                 # pip-installed
    python3 examples/flask_app.py --serve                         # a real server on :8000

Without --serve it sends 300 requests through Flask's test client and prints
what the middleware found: the route and the line that keeps memory.
"""
import sys

from flask import Flask, jsonify

from leakguard.middleware import WSGIMiddleware

app = Flask(__name__)
_audit_log = []  # grows by one entry per /orders request: the leak


@app.route("/orders/<int:order_id>")
def order(order_id):
    payload = {"id": order_id, "items": list(range(50))}
    _audit_log.append(repr(payload) * 4)  # kept forever
    return jsonify(payload)


@app.route("/health")
def health():
    return "ok"


# A short demo: every 25th request traced, whatever that costs. A server
# leaves trace_budget at its default, 1% of the serving time.
app.wsgi_app = WSGIMiddleware(app.wsgi_app, trace_every=25, rss_threshold="4 MB",
                              trace_budget=1)


def main():
    if "--serve" in sys.argv:
        app.run(port=8000)
        return 0
    client = app.test_client()
    for i in range(150):
        client.get("/health", buffered=True)
        client.get("/orders/%d" % i, buffered=True)
    report = app.wsgi_app.report()
    print("requests %d, RSS growth per request p50 %d B, p99 %d B" % (
        report["requests"], report["p50_rss_delta"], report["p99_rss_delta"]))
    for route, stats in sorted(report["paths"].items()):
        print("  %-24s %4d requests, RSS %+d B in total" % (
            route, stats["requests"], stats["total_rss_delta"]))
    for leak in report["leaks"][:3]:
        print("kept after %s: %s:%d, %+d B over %d traced requests" % (
            leak["route"], leak["file"], leak["line"], leak["size_diff"],
            leak["traced_requests"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
