"""leakguard.diagnose(): the leak doctor from Python."""
import os
import unittest

import leakguard

_kept = []


def leaky():
    _kept.append(bytearray(500))  # the allocation the doctor must name


LEAK_LINE = leaky.__code__.co_firstlineno + 1


def clean():
    return [bytes(100) for _ in range(100)]


class DiagnoseTest(unittest.TestCase):
    def tearDown(self):
        _kept.clear()

    def test_leak_names_cause_holder_and_line(self):
        d = leakguard.diagnose(leaky, warmup=2, repeat=10)
        self.assertEqual(d["verdict"], "leak")
        self.assertEqual(d["iterations"], {"warmup": 2, "repeat": 10})
        top = d["causes"][0]
        self.assertEqual(top["id"], "global_state")
        self.assertEqual(top["holder"], "%s._kept" % __name__)
        self.assertTrue(any(s["file"].endswith("test_doctor.py") and s["line"] == LEAK_LINE
                            for s in top["sites"]), top["sites"])
        if not os.environ.get("LEAKGUARD_UNDER_SANITIZER"):
            # Under PYTHONMALLOC=malloc (the sanitizer run) CPython counts no blocks.
            self.assertGreaterEqual(d["growth"]["blocks_per_iter"], 1)

    def test_clean_function(self):
        d = leakguard.diagnose(clean, repeat=8)
        self.assertEqual(d["verdict"], "no_leak")
        self.assertEqual(d["causes"], [])

    def test_bad_input(self):
        with self.assertRaises(TypeError):
            leakguard.diagnose(42)
        with self.assertRaises(ValueError):
            leakguard.diagnose(clean, repeat=1)

    def test_workload_that_raises(self):
        def boom():
            raise KeyError("gone")
        with self.assertRaises(RuntimeError) as ctx:
            leakguard.diagnose(boom)
        self.assertIn("KeyError: 'gone'", str(ctx.exception))


if __name__ == "__main__":
    unittest.main()
