"""leakguard.RequestTracker and leakguard.rss() (bindings/py_request_tracker.cc)."""
import unittest

import leakguard


class RequestTrackerTest(unittest.TestCase):
    def test_statistics(self):
        tracker = leakguard.RequestTracker(worst_kept=3)
        for _ in range(60):
            tracker.record("GET /a", 0, 0.001)
        for _ in range(39):
            tracker.record("GET /b", 8, 0.002)
        tracker.record("POST /c", 1 << 20, 0.5)
        stats = tracker.stats()
        self.assertEqual(stats["count"], 100)
        self.assertEqual(stats["total_rss_delta"], 39 * 8 + (1 << 20))
        self.assertEqual(stats["p50_rss_delta"], 0)
        self.assertEqual(stats["p99_rss_delta"], 8)
        self.assertEqual(stats["max_rss_delta"], 1 << 20)
        self.assertEqual(stats["over_threshold"], 0)
        self.assertEqual(stats["worst"], [("POST /c", 1 << 20, 0.5), ("GET /b", 8, 0.002),
                                          ("GET /b", 8, 0.002)])
        tracker.reset()
        self.assertEqual(tracker.stats()["count"], 0)

    def test_threshold_warning_goes_to_logging(self):
        tracker = leakguard.RequestTracker(rss_threshold_bytes=4096, name="api")
        with self.assertLogs("leakguard", "WARNING") as logs:
            tracker.record("GET /export", 1 << 20, 0.25)
        self.assertIn("GET /export", "\n".join(logs.output))
        self.assertEqual(tracker.stats()["over_threshold"], 1)

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "worst_kept"):
            leakguard.RequestTracker(worst_kept=5000)
        with self.assertRaises(ValueError):
            leakguard.RequestTracker(report_every=-1)
        tracker = leakguard.RequestTracker()
        with self.assertRaisesRegex(ValueError, "elapsed must be >= 0"):
            tracker.record("x", 1, -1.0)
        with self.assertRaises(TypeError):
            tracker.record(1, 2)
        with self.assertRaisesRegex(RuntimeError, "__init__"):
            leakguard.RequestTracker.__new__(leakguard.RequestTracker).stats()

    def test_rss_reads_growth(self):
        # Fresh pages from the kernel, each touched: an allocator that keeps
        # freed memory resident (mimalloc on free-threaded builds) cannot
        # hand back pages that were already counted.
        import mmap
        before = leakguard.rss()
        blob = mmap.mmap(-1, 64 << 20)
        for offset in range(0, 64 << 20, 4096):
            blob[offset] = 120
        grown = leakguard.rss() - before
        self.assertGreaterEqual(grown, 48 << 20)
        self.assertEqual(blob[4096], 120)
        blob.close()



if __name__ == "__main__":
    unittest.main()
