"""thread_local: a long-lived worker whose threading.local storage grows
with every task it runs."""
import queue
import threading

_local = threading.local()
_tasks = queue.Queue()
_done = queue.Queue()


def _worker():
    while True:
        n = _tasks.get()
        if not hasattr(_local, "seen"):
            _local.seen = []
        _local.seen.append(bytes(700) + bytes([n % 256]))
        _done.put(n)


threading.Thread(target=_worker, name="tl-worker", daemon=True).start()


def step():
    _tasks.put(1)
    _done.get()
