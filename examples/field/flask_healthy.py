"""A Flask app that keeps nothing between requests, driven through its test
client: werkzeug's and Flask's own caches must not look like a leak."""
import flask

app = flask.Flask(__name__)


@app.route("/items/<int:item_id>")
def item(item_id):
    return flask.jsonify({"id": item_id, "tags": ["a", "b"], "name": "n%d" % item_id})


client = app.test_client()
_n = [0]


def step():
    _n[0] += 1
    client.get("/items/%d" % _n[0])
