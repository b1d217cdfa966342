"""logging_buffer: a BufferingHandler subclass that never decides to flush."""
import logging
import logging.handlers


class KeepEverything(logging.handlers.BufferingHandler):
    def shouldFlush(self, record):
        return False


audit = logging.getLogger("lb_buffering_handler.audit")
audit.addHandler(KeepEverything(capacity=100))
audit.setLevel(logging.INFO)
audit.propagate = False


def step():
    audit.info("audit: %s", "y" * 400)
