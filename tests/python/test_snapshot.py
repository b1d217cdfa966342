"""leakguard.take_snapshot() / Snapshot: tracemalloc's answers, in
tracemalloc's own result types, grouped and compared in C++."""
import tracemalloc
import unittest

import leakguard


def allocate(n):
    return [bytes(100 + i % 7) for i in range(n)]


def nested(depth, n):
    return nested(depth - 1, n) if depth else allocate(n)


class SnapshotTest(unittest.TestCase):
    def setUp(self):
        tracemalloc.start(5)
        self.addCleanup(tracemalloc.stop)
        self.kept = [allocate(200)]
        self.old = tracemalloc.take_snapshot()
        self.kept.append(nested(3, 300))
        self.kept.append({str(i): i for i in range(500)})
        self.new = tracemalloc.take_snapshot()

    def test_statistics_equal_tracemalloc_s(self):
        ours = leakguard.Snapshot.from_tracemalloc(self.new)
        self.assertEqual(ours.trace_count, len(self.new.traces))
        self.assertEqual(ours.total_size, sum(t.size for t in self.new.traces))
        self.assertEqual(ours.traceback_limit, 5)
        for key_type, cumulative in (("lineno", False), ("filename", False),
                                     ("traceback", False), ("lineno", True),
                                     ("filename", True)):
            with self.subTest(key_type=key_type, cumulative=cumulative):
                got = ours.statistics(key_type, cumulative=cumulative)
                want = self.new.statistics(key_type, cumulative=cumulative)
                self.assertEqual(len(got), len(want))
                self.assertEqual(got, want)
                self.assertIsInstance(got[0], tracemalloc.Statistic)
                self.assertIsInstance(got[0].traceback, tracemalloc.Traceback)

    def test_compare_to_equals_tracemalloc_s(self):
        new = leakguard.Snapshot.from_tracemalloc(self.new)
        old = leakguard.Snapshot.from_tracemalloc(self.old)
        for key_type, cumulative in (("lineno", False), ("traceback", False),
                                     ("filename", True)):
            with self.subTest(key_type=key_type, cumulative=cumulative):
                got = new.compare_to(old, key_type, cumulative)
                want = self.new.compare_to(self.old, key_type, cumulative)
                self.assertEqual(got, want)
                self.assertIsInstance(got[0], tracemalloc.StatisticDiff)
        top = new.compare_to(old, "lineno")[0]
        self.assertEqual(str(top), str(self.new.compare_to(self.old, "lineno")[0]))

    def test_take_snapshot_and_round_trip(self):
        before = leakguard.take_snapshot()
        self.kept.append(allocate(400))
        line = allocate.__code__.co_firstlineno + 1
        after = leakguard.take_snapshot()
        top = after.compare_to(before, "lineno")[0]
        self.assertEqual((top.traceback[0].filename, top.traceback[0].lineno), (__file__, line))
        self.assertGreaterEqual(top.count_diff, 400)
        back = after.to_tracemalloc()
        self.assertIsInstance(back, tracemalloc.Snapshot)
        self.assertEqual(back.statistics("traceback"), after.statistics("traceback"))

    def test_errors(self):
        ours = leakguard.Snapshot.from_tracemalloc(self.new)
        with self.assertRaisesRegex(ValueError, "unknown key_type"):
            ours.statistics("bogus")
        with self.assertRaises(TypeError):
            ours.compare_to(self.old, "lineno")  # a tracemalloc.Snapshot, not ours
        with self.assertRaises(ValueError):
            ours.statistics("traceback", cumulative=True)
        with self.assertRaises(TypeError):
            leakguard.Snapshot()
        tracemalloc.stop()
        with self.assertRaisesRegex(RuntimeError, "take_snapshot"):
            leakguard.take_snapshot()


if __name__ == "__main__":
    unittest.main()
