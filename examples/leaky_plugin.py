"""A plugin as a host would run it: one call per request, 2,000 requests.

It memoizes rendered pages in a module-level dict keyed by request id, so
the cache never gets a hit and never evicts: every request leaves ~2 KB
behind for good. `scripts/demo.sh` runs it under `leakguard run`.
"""
import hashlib

_page_cache = {}  # request id -> rendered page; never evicted


def render(request_id):
    page = _page_cache.get(request_id)
    if page is None:
        body = hashlib.sha256(str(request_id).encode()).hexdigest() * 32
        page = f"<html><body>{body}</body></html>"  # line 16: the leak
        _page_cache[request_id] = page
    return page


def handle_requests(n):
    total = 0
    for request_id in range(n):
        scratch = [request_id] * 100  # freed at once: not a leak
        total += len(render(request_id)) + len(scratch)
    return total


_served = [0]


def serve_batch():
    """One batch of 100 requests: what `leakguard doctor` calls per iteration."""
    start = _served[0]
    _served[0] += 100
    for request_id in range(start, start + 100):
        render(request_id)


if __name__ == "__main__":
    served = handle_requests(2000)
    print(f"served 2000 requests ({served} bytes of pages)")
