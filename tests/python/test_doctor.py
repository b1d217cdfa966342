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

    def test_heap_is_frozen_while_measuring_and_thawed_after(self):
        import gc
        self.assertEqual(gc.get_freeze_count(), 0)
        seen = []
        leakguard.diagnose(lambda: seen.append(gc.get_freeze_count()), warmup=2, repeat=6)
        # The measured calls see the heap alive after the baseline in the
        # permanent generation.
        self.assertGreater(min(seen[-6:]), 1000)
        self.assertEqual(gc.get_freeze_count(), 0)

    def test_a_heap_the_caller_froze_stays_frozen(self):
        import gc
        gc.freeze()
        try:
            frozen = gc.get_freeze_count()
            self.assertGreater(frozen, 1000)
            seen = []
            leakguard.diagnose(lambda: seen.append(gc.get_freeze_count()), repeat=4)
            self.assertTrue(all(n >= frozen * 0.9 for n in seen), (frozen, seen))
            self.assertGreaterEqual(gc.get_freeze_count(), frozen * 0.9)
        finally:
            gc.unfreeze()

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
        cause = ctx.exception.__cause__
        self.assertIs(type(cause), KeyError)
        self.assertEqual(cause.args, ("gone",))
        # The workload's own frame is on the cause's traceback.
        frames = []
        tb = cause.__traceback__
        while tb is not None:
            frames.append(tb.tb_frame.f_code.co_name)
            tb = tb.tb_next
        self.assertEqual(frames[-1], "boom")

    def test_keyboard_interrupt_and_system_exit_propagate_unchanged(self):
        raised = []

        def interrupted():
            raised.append(KeyboardInterrupt("stop"))
            raise raised[-1]

        def exits():
            raised.append(SystemExit(3))
            raise raised[-1]

        with self.assertRaises(KeyboardInterrupt) as ctx:
            leakguard.diagnose(interrupted)
        self.assertIs(ctx.exception, raised[0])
        self.assertEqual(ctx.exception.args, ("stop",))
        with self.assertRaises(SystemExit) as ctx:
            leakguard.diagnose(exits)
        self.assertIs(ctx.exception, raised[1])
        self.assertEqual(ctx.exception.code, 3)
        self.assertEqual(len(raised), 2)  # the first call ended each run


if __name__ == "__main__":
    unittest.main()
