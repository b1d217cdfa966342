"""leakguard.LeakDetector (bindings/py_detector.cc): in an interpreter
leakguard started (the embedding host, python_embedded) it reports growth to
a callback or to logging, naming the line; in a plain python3 start() says
why it cannot run."""
import logging
import os
import queue
import time
import unittest

import leakguard

EMBEDDED = os.environ.get("LEAKGUARD_EXPECT_BUILTIN") == "1"


def grow(n):
    return [bytes(1000) for _ in range(n)]  # the line the report names


GROW_LINE = grow.__code__.co_firstlineno + 1


class DetectorTest(unittest.TestCase):
    def test_bad_options(self):
        with self.assertRaisesRegex(ValueError, "interval"):
            leakguard.LeakDetector(interval=0)
        with self.assertRaises(ValueError):
            leakguard.LeakDetector(threshold_bytes=0)
        with self.assertRaisesRegex(TypeError, "callback"):
            leakguard.LeakDetector(callback=3)
        with self.assertRaisesRegex(RuntimeError, "__init__"):
            leakguard.LeakDetector.__new__(leakguard.LeakDetector).start()

    @unittest.skipIf(EMBEDDED, "the embedding host started Python with leakguard")
    def test_plain_python_says_why(self):
        detector = leakguard.LeakDetector(interval=0.05)
        with self.assertRaisesRegex(RuntimeError, "needs an interpreter started by leakguard"):
            detector.start()
        self.assertFalse(detector.running)

    @unittest.skipUnless(EMBEDDED, "needs an interpreter started by leakguard")
    def test_reports_growth_to_the_callback(self):
        reports = queue.Queue()
        detector = leakguard.LeakDetector(interval=0.05, threshold_bytes=4 << 20,
                                          callback=reports.put, min_report_interval=3600)
        with detector:
            self.assertTrue(detector.running)
            kept = grow(10000)
            report = reports.get(timeout=120)
        self.assertFalse(detector.running)
        self.assertEqual(report["source"], "leak_detector")
        self.assertEqual(report["severity"], "warning")
        top = report["top_lines"][0]
        self.assertEqual((os.path.basename(top["file"]), top["line"]),
                         ("test_detector.py", GROW_LINE))
        # The detector may sample while grow() is still running (it takes
        # the GIL between bytecodes), so only the threshold it crossed is
        # certain; the line holds nearly all of it (list storage included).
        self.assertGreaterEqual(top["size_diff"], 3 << 20)
        self.assertLessEqual(top["size_diff"], 10000 * 1100)
        self.assertGreaterEqual(detector.reports, 1)
        self.assertEqual(len(kept), 10000)

    @unittest.skipUnless(EMBEDDED, "needs an interpreter started by leakguard")
    def test_reports_to_logging_by_default(self):
        detector = leakguard.LeakDetector(interval=0.05, threshold_bytes=4 << 20,
                                          min_report_interval=3600)
        with self.assertLogs("leakguard", "WARNING") as logs:
            with detector:
                kept = grow(10000)
                deadline = time.monotonic() + 120
                while detector.reports == 0 and time.monotonic() < deadline:
                    time.sleep(0.02)
        self.assertGreaterEqual(detector.reports, 1)
        self.assertIn("test_detector.py:%d" % GROW_LINE, "\n".join(logs.output))
        self.assertEqual(len(kept), 10000)


if __name__ == "__main__":
    logging.basicConfig()
    unittest.main()
