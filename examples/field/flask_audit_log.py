"""A Flask app whose order view appends every request's headers to an
in-memory audit log; driven in-process through WSGI with --wsgi."""
import flask

app = flask.Flask(__name__)
_audit = []


@app.route("/orders")
def orders():
    _audit.append(dict(flask.request.headers))
    return flask.jsonify({"orders": []})
