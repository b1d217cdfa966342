"""A request handler that makes a logger per request id for "context":
logging keeps every logger it ever made in its manager's dict."""
import logging

_request = [0]


def step():
    _request[0] += 1
    log = logging.getLogger("app.request.%d" % _request[0])
    log.debug("handling")
