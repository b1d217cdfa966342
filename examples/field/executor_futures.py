"""Submits work to a long-lived thread pool and keeps every Future "for
status queries": the futures and their results pile up."""
import concurrent.futures

_pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
_futures = []


def _work(n):
    return "r" * 200 + str(n)


def step():
    f = _pool.submit(_work, len(_futures))
    f.result()
    _futures.append(f)
