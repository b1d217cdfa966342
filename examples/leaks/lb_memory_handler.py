"""logging_buffer: a MemoryHandler whose capacity is never reached and that
never flushes, so every record stays buffered."""
import logging
import logging.handlers

_handler = logging.handlers.MemoryHandler(capacity=10**9, flushLevel=logging.CRITICAL + 1)
log = logging.getLogger("lb_memory_handler")
log.addHandler(_handler)
log.setLevel(logging.INFO)
log.propagate = False


def step():
    log.info("request done: %s", "x" * 400)
