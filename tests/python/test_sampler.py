"""leakguard.Sampler (bindings/py_sampler.cc): Python and native memory by
line from Python, in an interpreter leakguard did not start."""
import ctypes
import inspect
import json
import sys
import unittest

import leakguard


def _line_of(marker):
    with open(__file__, encoding="utf-8") as f:
        for number, text in enumerate(f, 1):
            if marker in text and "_line_of" not in text:
                return number
    raise AssertionError(marker)


class SamplerTest(unittest.TestCase):
    def test_python_memory_by_line(self):
        with leakguard.Sampler(sampling_interval=64 * 1024, seed=5) as sampler:
            self.assertTrue(sampler.running)
            kept = [bytearray(1000) for _ in range(20000)]  # python site
            sites = sampler.live_by_line(0)
            stats = sampler.stats()
        self.assertFalse(sampler.running)
        line = _line_of("# python site")
        site = [s for s in sites if s["filename"] == __file__ and s["lineno"] == line]
        self.assertEqual(len(site), 1, sites[:5])
        truth = sum(sys.getsizeof(b) for b in kept)
        self.assertAlmostEqual(site[0]["bytes"], truth, delta=0.15 * truth)
        self.assertFalse(site[0]["native"])
        self.assertGreater(stats["samples"], 100)
        self.assertTrue(stats["hooked"])

    def test_native_memory_names_ctypes_and_the_line(self):
        libc = ctypes.CDLL(None)
        libc.malloc.restype = ctypes.c_void_p
        libc.malloc.argtypes = [ctypes.c_size_t]
        libc.free.argtypes = [ctypes.c_void_p]
        with leakguard.Sampler(sampling_interval=64 * 1024, native=True, seed=5) as sampler:
            blocks = [libc.malloc(65536) for _ in range(512)]  # native site
            sites = sampler.live_by_line(0)
            stacks = sampler.collapsed_stacks()
            report = json.loads(sampler.to_json(5))
            for p in blocks:
                libc.free(p)
        line = _line_of("# native site")
        site = [s for s in sites if s["native"] and s["lineno"] == line]
        self.assertEqual(len(site), 1, sites[:5])
        self.assertTrue(site[0]["library"].startswith("_ctypes"), site[0])
        truth = 512 * 65536
        self.assertAlmostEqual(site[0]["bytes"], truth, delta=0.10 * truth)
        self.assertIn(f"{__file__}:{line};_ctypes", stacks)
        self.assertGreater(report["native_live_samples"], 0)

    def test_a_file_name_python_cannot_encode_comes_back_unchanged(self):
        # A Latin-1 path as Python decodes it: a lone surrogate in the str.
        name = "caf\udce9.py"
        code = compile("kept = [bytearray(4000) for _ in range(50)]", name, "exec")
        ns = {}
        with leakguard.Sampler(sampling_interval=1) as sampler:
            exec(code, ns)
            sites = sampler.live_by_line(0)
            report = json.loads(sampler.to_json(3))
        self.assertIn((name, 1), [(s["filename"], s["lineno"]) for s in sites])
        self.assertEqual(report["lines"][0]["filename"], "caf\ufffd\ufffd\ufffd.py")

    def test_one_sampler_at_a_time_and_bad_arguments(self):
        with leakguard.Sampler():
            with self.assertRaisesRegex(RuntimeError, "another sampler"):
                leakguard.Sampler().start()
        with self.assertRaisesRegex(ValueError, "sampling_interval"):
            leakguard.Sampler(sampling_interval=0)
        with self.assertRaisesRegex(ValueError, "top must be"):
            leakguard.Sampler().live_by_line(-1)
        self.assertEqual(list(inspect.signature(leakguard.Sampler).parameters),
                         ["sampling_interval", "max_frames", "native", "seed", "max_samples"])
        self.assertTrue(leakguard.Sampler.__doc__.startswith("The sampled allocation tracker"))
        self.assertEqual(list(inspect.signature(leakguard.Sampler.live_by_line).parameters),
                         ["self", "top"])


if __name__ == "__main__":
    unittest.main()
