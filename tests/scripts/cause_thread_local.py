"""Cause thread_local: a long-lived worker thread whose threading.local
storage grows with every task."""
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
        _local.seen.append(bytes(1024) + bytes([n % 256]))  # leak: thread_local
        _done.put(n)


threading.Thread(target=_worker, daemon=True).start()


def run():
    for i in range(50):
        _tasks.put(i)
    for _ in range(50):
        _done.get()
