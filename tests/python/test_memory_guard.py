"""leakguard.memory_guard: reports, warnings through `warnings` and the
"leakguard" logger, tracemalloc restored on every exit path."""
import asyncio
import inspect
import logging
import os
import sysconfig
import threading
import time
import tracemalloc
import unittest
import warnings

import leakguard

MiB = 1024 * 1024
UNDER_SANITIZER = os.environ.get("LEAKGUARD_UNDER_SANITIZER") == "1"


def touched(n_bytes):
    """A bytearray whose pages are all resident."""
    data = bytearray(n_bytes)
    for i in range(0, n_bytes, 4096):
        data[i] = 1
    return data


class MemoryGuardTest(unittest.TestCase):
    def setUp(self):
        self.was_tracing = tracemalloc.is_tracing()

    def tearDown(self):
        self.assertEqual(tracemalloc.is_tracing(), self.was_tracing)

    def test_process_mode_reports_growth_and_warns(self):
        kept = []
        with self.assertLogs("leakguard", level="WARNING") as logs:
            with self.assertWarns(leakguard.MemoryGrowthWarning) as warned:
                with leakguard.memory_guard("load", warn_mb=10) as guard:
                    kept.append(touched(40 * MiB))
        report = guard.report
        self.assertIsInstance(report, leakguard.MemoryReport)
        self.assertEqual(report.label, "load")
        self.assertEqual(report.mode, "process")
        # Free-threaded builds allocate through mimalloc, which keeps freed
        # pages resident and reuses them: part of the 40 MiB may already be
        # in RSS. The GIL build's 40 MiB arrive as fresh pages.
        free_threaded = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
        self.assertGreaterEqual(report.rss_delta, (10 if free_threaded else 35) * MiB)
        self.assertEqual(report.rss_delta, report.rss_after - report.rss_before)
        self.assertIsNone(report.traced_delta)
        self.assertEqual(report.top, ())
        self.assertEqual(report.warn_bytes, 10 * MiB)
        self.assertTrue(report.exceeded)
        self.assertGreaterEqual(report.elapsed, 0)
        message = str(warned.warning)
        self.assertRegex(message, r"^memory_guard 'load': RSS grew by \d+\.\d MiB "
                                  r"\(limit 10\.0 MiB\)$")
        self.assertEqual(logs.records[0].getMessage(), message)
        self.assertEqual(warned.filename, __file__)

    def test_no_warning_under_the_limit(self):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with leakguard.memory_guard("small", warn_mb=100) as guard:
                x = [1, 2, 3]
        self.assertEqual(x, [1, 2, 3])
        self.assertEqual([w for w in caught
                          if issubclass(w.category, leakguard.MemoryGrowthWarning)], [])
        self.assertFalse(guard.report.exceeded)
        self.assertIsNone(leakguard.memory_guard("x").report)

    def test_no_limit_never_warns(self):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with leakguard.memory_guard("unlimited") as guard:
                kept = touched(8 * MiB)
        self.assertIsNone(guard.report.warn_bytes)
        self.assertFalse(guard.report.exceeded)
        del kept

    def test_traced_mode_names_the_line_and_restores_tracemalloc(self):
        if tracemalloc.is_tracing():
            self.skipTest("needs tracemalloc off")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with leakguard.memory_guard("traced", warn_mb=1, mode="traced", top=3) as guard:
                line = inspect.currentframe().f_lineno + 1
                kept = bytes(5 * MiB)
        self.assertFalse(tracemalloc.is_tracing())  # started and stopped again
        report = guard.report
        self.assertEqual(report.mode, "traced")
        self.assertGreaterEqual(report.traced_delta, 5 * MiB)
        self.assertLess(report.traced_delta, 5 * MiB + 256 * 1024)
        filename, lineno, size_diff, count_diff = report.top[0]
        self.assertEqual((filename, lineno), (__file__, line))
        self.assertGreaterEqual(size_diff, 5 * MiB)
        self.assertGreaterEqual(count_diff, 1)
        self.assertLessEqual(len(report.top), 3)
        self.assertTrue(report.exceeded)
        del kept

    def test_traced_mode_leaves_running_tracemalloc_alone(self):
        if tracemalloc.is_tracing():
            self.skipTest("needs tracemalloc off")
        tracemalloc.start(5)
        try:
            with leakguard.memory_guard("t", mode="traced", top=0) as guard:
                kept = [bytes(1000) for _ in range(100)]
            self.assertTrue(tracemalloc.is_tracing())
            self.assertEqual(tracemalloc.get_traceback_limit(), 5)
            self.assertGreaterEqual(guard.report.traced_delta, 100 * 1000)
            self.assertEqual(guard.report.top, ())
        finally:
            tracemalloc.stop()
        del kept

    def test_exception_in_the_block_propagates_and_restores(self):
        guard = leakguard.memory_guard("boom", mode="traced")
        with self.assertRaisesRegex(ValueError, "inside"):
            with guard:
                raise ValueError("inside")
        self.assertFalse(tracemalloc.is_tracing() and not self.was_tracing)
        self.assertEqual(guard.report.label, "boom")

    def test_warning_as_error_still_restores_tracemalloc(self):
        if tracemalloc.is_tracing():
            self.skipTest("needs tracemalloc off")
        with warnings.catch_warnings():
            warnings.simplefilter("error", leakguard.MemoryGrowthWarning)
            with self.assertLogs("leakguard", level="WARNING"):
                with self.assertRaises(leakguard.MemoryGrowthWarning):
                    with leakguard.memory_guard("strict", warn_mb=0, mode="traced"):
                        kept = bytes(MiB)
        self.assertFalse(tracemalloc.is_tracing())
        del kept

    def test_decorator_measures_each_call(self):
        guard = leakguard.memory_guard("handler", mode="traced", top=1)
        store = []

        @guard
        def handler(n, *, early=False):
            """Handler docstring."""
            if early:
                return "early"
            store.append(bytes(n))
            return "done"

        self.assertIs(handler.memory_guard, guard)
        self.assertEqual(handler.__name__, "handler")
        self.assertEqual(handler.__doc__, "Handler docstring.")
        self.assertEqual(handler(2 * MiB), "done")
        first = guard.report
        self.assertGreaterEqual(first.traced_delta, 2 * MiB)
        self.assertEqual(handler(0, early=True), "early")
        self.assertIsNot(guard.report, first)
        self.assertLess(guard.report.traced_delta, 64 * 1024)

    def test_decorated_function_exception_propagates(self):
        @leakguard.memory_guard("failing")
        def failing():
            raise LookupError("nope")

        with self.assertRaisesRegex(LookupError, "nope"):
            failing()
        self.assertEqual(failing.memory_guard.report.label, "failing")

    def test_decorated_method(self):
        class Service:
            @leakguard.memory_guard("method")
            def run(self, x):
                return (self, x)

        s = Service()
        self.assertEqual(s.run(1), (s, 1))
        self.assertEqual(Service.run.memory_guard.report.label, "method")

    def test_nested_scopes_pair_up(self):
        outer = leakguard.memory_guard("outer")
        inner = leakguard.memory_guard("inner")
        with outer:
            with inner:
                kept = touched(16 * MiB)
        self.assertGreaterEqual(inner.report.rss_delta, 12 * MiB)
        self.assertGreaterEqual(outer.report.rss_delta, inner.report.rss_delta)
        same = leakguard.memory_guard("same")
        with same:
            with same:
                pass
            self.assertEqual(same.report.label, "same")
        del kept

    def test_one_guard_shared_by_two_threads_pairs_each_threads_scopes(self):
        guard = leakguard.memory_guard("shared")
        step = [threading.Event() for _ in range(3)]
        deltas = {}
        errors = []
        files = []  # closed after both threads are done

        def first():
            try:
                with guard:  # enters first...
                    files.append(open(__file__))
                    step[0].set()
                    step[1].wait(30)
                deltas["first"] = guard.report.fds_delta  # ...exits first
                step[2].set()
            except BaseException as e:  # reported by the main thread
                errors.append(e)
                step[2].set()

        def second():
            try:
                step[0].wait(30)
                with guard:  # enters while the first scope is open
                    step[1].set()
                    step[2].wait(30)
                deltas["second"] = guard.report.fds_delta
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=first), threading.Thread(target=second)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for f in files:
            f.close()
        self.assertEqual(errors, [])
        # The first scope saw its file opened; the second opened nothing. A
        # single stack for both threads would have swapped them.
        self.assertEqual(deltas, {"first": 1, "second": 0})
        with self.assertRaisesRegex(RuntimeError,
                                    "memory_guard 'shared': __exit__ without a matching __enter__"):
            guard.__exit__(None, None, None)

    def test_two_asyncio_tasks_sharing_a_guard_each_measure_their_own_block(self):
        if tracemalloc.is_tracing():
            self.skipTest("needs tracemalloc off")
        guard = leakguard.memory_guard("shared", mode="traced", top=0)
        reports = {}
        kept = {}

        async def first(a_entered, b_entered, a_done):
            with guard:
                kept["a"] = bytearray(8 * MiB)  # before the second block began
                a_entered.set()
                await b_entered.wait()
            reports["a"] = guard.report
            a_done.set()

        async def second(a_entered, b_entered, a_done):
            await a_entered.wait()
            with guard:  # enters after the first, exits after it
                b_entered.set()
                await a_done.wait()
                kept["b"] = bytearray(2 * MiB)
            reports["b"] = guard.report

        async def main():
            a_entered, b_entered, a_done = asyncio.Event(), asyncio.Event(), asyncio.Event()
            await asyncio.gather(first(a_entered, b_entered, a_done),
                                 second(a_entered, b_entered, a_done))

        asyncio.run(main())
        # Paired per task: each block saw its own allocation. Blocks paired
        # last-in-first-out in the one thread would give the first exit the
        # second block (0 bytes) and the second exit the first (10 MiB).
        a, b = reports["a"], reports["b"]
        self.assertGreaterEqual(a.traced_delta, 8 * MiB)
        self.assertLess(a.traced_delta, 9 * MiB)
        self.assertGreaterEqual(b.traced_delta, 2 * MiB)
        self.assertLess(b.traced_delta, 3 * MiB)
        self.assertGreater(a.elapsed, 0)
        self.assertGreater(b.elapsed, 0)
        self.assertEqual((a.label, b.label), ("shared", "shared"))
        self.assertFalse(tracemalloc.is_tracing())
        del kept

    def test_traced_guard_finished_in_another_thread_restores_tracemalloc(self):
        if tracemalloc.is_tracing():
            self.skipTest("needs tracemalloc off")
        guard = leakguard.memory_guard("handed_on", mode="traced")
        guard.__enter__()
        self.assertTrue(tracemalloc.is_tracing())
        data = bytearray(3 * MiB)
        errors = []

        def finish():
            try:
                guard.__exit__(None, None, None)
            except BaseException as e:  # reported below
                errors.append(e)

        thread = threading.Thread(target=finish)
        thread.start()
        thread.join()
        self.assertEqual(errors, [])
        self.assertFalse(tracemalloc.is_tracing())
        self.assertGreaterEqual(guard.report.traced_delta, 3 * MiB)
        # The block is over in this thread too.
        with self.assertRaisesRegex(RuntimeError, "__exit__ without a matching __enter__"):
            guard.__exit__(None, None, None)
        del data

    def test_descriptors_and_threads_are_counted(self):
        # Threads of earlier tests may still be leaving the process after
        # join(); wait until the process runs only this interpreter's threads.
        deadline = time.monotonic() + 60
        while (len(os.listdir("/proc/self/task")) != threading.active_count()
               and time.monotonic() < deadline):
            time.sleep(0.01)
        release = threading.Event()
        thread = threading.Thread(target=release.wait)
        with leakguard.memory_guard("resources") as guard:
            f = open(__file__)
            thread.start()
        try:
            self.assertEqual(guard.report.fds_delta, 1)
            self.assertEqual(guard.report.threads_delta, 1)
        finally:
            release.set()
            thread.join()
            f.close()

    def test_traced_top_lists_only_lines_that_grew(self):
        if tracemalloc.is_tracing():
            self.skipTest("needs tracemalloc off")
        tracemalloc.start()
        try:
            freed = [bytes(1000) for _ in range(1000)]  # about 1 MB, freed below
            with leakguard.memory_guard("mixed", mode="traced", top=50) as guard:
                del freed
                line = inspect.currentframe().f_lineno + 1
                kept = [bytes(500) for _ in range(1000)]
        finally:
            tracemalloc.stop()
        top = guard.report.top
        self.assertEqual((top[0][0], top[0][1]), (__file__, line))
        self.assertGreaterEqual(top[0][2], 500 * 1000)
        self.assertGreaterEqual(top[0][3], 1000)
        # The line whose megabyte was freed is not among the lines that grew.
        self.assertTrue(all(size_diff > 0 for _, _, size_diff, _ in top), top)
        self.assertLess(guard.report.traced_delta, 0)
        del kept

    def test_tracemalloc_stopped_under_a_traced_scope(self):
        if tracemalloc.is_tracing():
            self.skipTest("needs tracemalloc off")
        guard = leakguard.memory_guard("stopped", mode="traced")
        with self.assertRaisesRegex(RuntimeError, "memory_guard 'stopped' could not measure") as ctx:
            with guard:
                tracemalloc.stop()
        # Python's words, not the C++ API's.
        message = str(ctx.exception)
        self.assertIn("tracemalloc.stop() was called before it ended", message)
        self.assertNotIn("::", message)
        self.assertNotIn("TracingScope", message)
        self.assertFalse(tracemalloc.is_tracing())
        with guard:  # The guard is usable again.
            pass
        self.assertEqual(guard.report.label, "stopped")

    def test_a_guard_dropped_inside_its_scope_restores_tracemalloc(self):
        if tracemalloc.is_tracing():
            self.skipTest("needs tracemalloc off")
        guard = leakguard.memory_guard("abandoned", mode="traced")
        guard.__enter__()
        self.assertTrue(tracemalloc.is_tracing())
        del guard
        self.assertFalse(tracemalloc.is_tracing())

    def test_bad_input(self):
        with self.assertRaisesRegex(ValueError, "mode must be 'process' or 'traced', got 'heap'"):
            leakguard.memory_guard("x", mode="heap")
        with self.assertRaisesRegex(ValueError, "warn_mb must be a number of MiB >= 0"):
            leakguard.memory_guard("x", warn_mb=-1)
        with self.assertRaisesRegex(TypeError, "warn_mb must be None or a number, not str"):
            leakguard.memory_guard("x", warn_mb="1")
        with self.assertRaisesRegex(TypeError, "label must be a str, not int"):
            leakguard.memory_guard(1)
        with self.assertRaisesRegex(ValueError, "top must be within 0..1000, got -1"):
            leakguard.memory_guard("x", top=-1)
        with self.assertRaisesRegex(TypeError, "decorates a callable, not int"):
            leakguard.memory_guard("x")(3)
        with self.assertRaisesRegex(RuntimeError, "__exit__ without a matching __enter__"):
            leakguard.memory_guard("x").__exit__(None, None, None)

    def test_attributes(self):
        guard = leakguard.memory_guard("attrs", warn_mb=2.5, mode="traced")
        self.assertEqual((guard.label, guard.mode, guard.warn_mb), ("attrs", "traced", 2.5))
        self.assertEqual(repr(guard), "<leakguard.memory_guard 'attrs' mode=traced>")


if __name__ == "__main__":
    unittest.main()
