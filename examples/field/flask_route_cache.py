"""A Flask app whose profile view memoizes by user id with no bound;
driven through Flask's own test client."""
import functools

import flask

app = flask.Flask(__name__)


@functools.lru_cache(maxsize=None)
def load_profile(user_id):
    return {"id": user_id, "bio": "b" * 100}


@app.route("/profile/<int:user_id>")
def profile(user_id):
    return flask.jsonify(load_profile(user_id))


client = app.test_client()
_n = [0]


def step():
    _n[0] += 1
    client.get("/profile/%d" % _n[0])
