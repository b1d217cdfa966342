"""The plugin the pybind11 host runs once per request.

It remembers every request's payload in a module-level list "for
auditing" and never drops it: each run leaves 2 KB behind for good.
"""
_audit = []


def run(request_id):
    _audit.append(bytes(2000))  # line 10: the leak the detector names
    return request_id % 7
