"""Cause logging_buffer: a MemoryHandler whose capacity is never reached and
whose target never flushes, so every record stays buffered."""
import logging
import logging.handlers

_handler = logging.handlers.MemoryHandler(capacity=10**9, flushLevel=logging.CRITICAL + 1)
_log = logging.getLogger("cause_logging_buffer")
_log.addHandler(_handler)
_log.setLevel(logging.INFO)
_log.propagate = False


def run():
    for i in range(100):
        _log.info("request %d payload %s", i, "x" * 200)  # leak: logging_buffer
