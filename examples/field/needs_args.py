"""A handler that takes arguments; driven with --call. It records every
session it sees in a module-level index that nothing prunes."""
_sessions = {}


def handle(user_id, payload):
    key = "%s:%d" % (user_id, len(_sessions))
    _sessions[key] = {"payload": payload, "seen": [user_id] * 8}
    return key
