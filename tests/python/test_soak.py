"""A million cache and bus operations, and many memory_guard scopes, leave
Python's heap, reference counts, tracemalloc's traced memory and RSS flat
(after a warm-up).

Measured between two quiet points (after a warm-up and a clear, and after a
million operations and a clear):

- sys.getallocatedblocks(): objects Python's allocator holds. Free lists
  (tuples, floats, frames) keep a bounded number of blocks that may differ
  by a few hundred between two such points; a leak of one object per
  thousand operations would be a thousand blocks, so the tolerance is 500.
- sys.getrefcount() of an object passed as argument and returned as result
  on every call: must be exactly equal (a leaked reference per call would
  show a million).
- RSS: within 4 MiB. A leak of 8 bytes per operation would be 8 MB; pymalloc
  and glibc keep freed arenas, so small shifts are allocator noise. Skipped
  under sanitizers (their quarantine holds freed memory on purpose).

Environment: LEAKGUARD_SOAK_OPS (default 1000000).
"""
import gc
import os
import sys
import unittest

import leakguard

OPS = int(os.environ.get("LEAKGUARD_SOAK_OPS", "1000000"))
UNDER_SANITIZER = os.environ.get("LEAKGUARD_UNDER_SANITIZER") == "1"
BLOCKS_TOLERANCE = 500
RSS_TOLERANCE = 4 * 1024 * 1024


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Sentinel:
    pass


class SoakTest(unittest.TestCase):
    def measure(self, run, reset):
        run(OPS // 20)  # warm-up: caches, free lists and dicts reach size
        reset()
        gc.collect()
        blocks, rss = sys.getallocatedblocks(), rss_bytes()
        run(OPS)
        reset()
        gc.collect()
        grown_blocks = sys.getallocatedblocks() - blocks
        grown_rss = rss_bytes() - rss
        self.assertLess(grown_blocks, BLOCKS_TOLERANCE)
        if not UNDER_SANITIZER:
            self.assertLess(grown_rss, RSS_TOLERANCE)

    def test_lru_cache_million_calls(self):
        sentinel = Sentinel()

        @leakguard.lru_cache(maxsize=256)
        def f(key, obj):
            return (key, obj)

        def run(n):
            for i in range(n):
                f(i & 1023, sentinel)  # hits, misses and evictions

        refs = sys.getrefcount(sentinel)
        self.measure(run, f.cache_clear)
        self.assertEqual(sys.getrefcount(sentinel), refs)

    def test_lru_cache_with_ttl_and_kwargs(self):
        sentinel = Sentinel()
        clock = [0.0]

        @leakguard.lru_cache(maxsize=None, ttl=0.5, timer=lambda: clock[0])
        def f(key, *, obj):
            return obj

        def run(n):
            for i in range(n):
                clock[0] += 0.001
                f(i & 255, obj=sentinel)  # entries expire and are swept

        refs = sys.getrefcount(sentinel)
        self.measure(run, f.cache_clear)
        self.assertEqual(sys.getrefcount(sentinel), refs)
        self.assertLessEqual(f.cache_info().currsize, 256)

    def test_weak_self_instances_come_and_go(self):
        class Service:
            @leakguard.lru_cache(maxsize=64, weak_self=True)
            def get(self, key):
                return key * 2

        def run(n):
            for i in range(n // 4):
                s = Service()
                s.get(i & 7)
                s.get(i & 7)
                s.get(1)
                del s  # three operations and one death per round

        self.measure(run, Service.get.cache_clear)
        self.assertEqual(Service.get.cache_info().currsize, 0)

    def test_event_bus_million_operations(self):
        bus = leakguard.EventBus()
        total = [0]

        class Listener:
            def on(self, n):
                total[0] += n

        keep = Listener()
        bus.subscribe(keep.on)

        def run(n):
            for i in range(n // 4):
                tmp = Listener()
                bus.subscribe(tmp.on)
                bus.emit(1)
                if i & 1:
                    bus.unsubscribe(tmp.on)
                del tmp  # the other half leaves by dying
                bus.emit(0)

        self.measure(run, lambda: None)
        self.assertEqual(len(bus), 1)
        self.assertEqual(total[0], (OPS // 20 // 4 + OPS // 4) * 2)

    def test_lru_cache_with_keys_whose_eq_reenters(self):
        # Colliding keys whose __eq__ calls the cache again: lookups restart,
        # insertions push entries out while others are being compared.
        class Key:
            __slots__ = ("n",)

            def __init__(self, n):
                self.n = n

            def __hash__(self):
                return self.n & 3

            def __eq__(self, other):
                if self.n & 7 == 0:
                    g(self.n + 1)
                return isinstance(other, Key) and other.n == self.n

        @leakguard.lru_cache(maxsize=16)
        def g(n):
            return n

        @leakguard.lru_cache(maxsize=32)
        def f(key):
            return key.n

        def run(n):
            for i in range(n // 10):
                f(Key(i & 63))

        self.measure(run, lambda: (f.cache_clear(), g.cache_clear()))

    def test_memory_guard_scopes_decorated_calls_and_tasks(self):
        import asyncio
        import tracemalloc

        guard = leakguard.memory_guard("soak")
        traced = leakguard.memory_guard("soak_traced", mode="traced", top=0)

        @leakguard.memory_guard("soak_call")
        def call(x):
            return x

        async def task(i):
            with guard:
                await asyncio.sleep(0)
            return i

        async def tasks(n):
            return sum(await asyncio.gather(*(task(i) for i in range(n))))

        def run(n):
            rounds = max(1, n // 200)  # each sample reads /proc: keep it short
            for i in range(rounds):
                with guard:
                    pass
                with traced:
                    pass
                call(i)
            asyncio.run(tasks(rounds // 10 + 1))

        was_tracing = tracemalloc.is_tracing()
        self.measure(run, lambda: None)
        self.assertEqual(tracemalloc.is_tracing(), was_tracing)
        self.assertEqual(guard.report.label, "soak")
        self.assertEqual(traced.report.mode, "traced")

    def test_traced_memory_stays_flat_across_all_three(self):
        import tracemalloc

        if tracemalloc.is_tracing():
            self.skipTest("needs tracemalloc off")
        sentinel = Sentinel()

        @leakguard.lru_cache(maxsize=64)
        def f(key, obj):
            return obj

        class Listener:
            def on(self, n):
                pass

        bus = leakguard.EventBus()
        guard = leakguard.memory_guard("flat", mode="traced", top=0)

        def run(n):
            for i in range(n // 40):
                f(i & 127, sentinel)
                tmp = Listener()
                bus.subscribe(tmp.on)
                bus.emit(i)
                del tmp
                if i & 63 == 0:
                    with guard:
                        f(i, sentinel)

        tracemalloc.start()
        try:
            run(OPS // 20)
            f.cache_clear()
            gc.collect()
            before = tracemalloc.get_traced_memory()[0]
            run(OPS)
            f.cache_clear()
            gc.collect()
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        # A leak of one 16-byte block per thousand operations would be
        # about 16 KB over a million; free lists shift a few KB.
        self.assertLess(grown, 64 * 1024)
        self.assertEqual(len(bus), 0)


if __name__ == "__main__":
    unittest.main()
