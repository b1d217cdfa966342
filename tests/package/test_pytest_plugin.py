"""The pytest plugin (leakguard.pytest_plugin), on plugin_suite/: leaking
tests fail with the doctor's cause id and holder, healthy ones pass, the
pytest-memray markers keep their meaning; twice in a row, same outcomes."""
import os
import subprocess
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
SUITE = os.path.join(HERE, "plugin_suite", "test_suite.py")


def _line_of(marker):
    with open(SUITE) as f:
        for number, line in enumerate(f, 1):
            if marker in line:
                return number
    raise AssertionError(marker)


def run_suite(*options):
    """Runs pytest on the suite; returns {test name: (outcome, message)}."""
    with tempfile.TemporaryDirectory() as tmp:
        xml = os.path.join(tmp, "out.xml")
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "leakguard.pytest_plugin", "-q",
             "-p", "no:cacheprovider", "--junitxml", xml, "--rootdir", tmp, *options, SUITE],
            cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            timeout=600)
        if not os.path.exists(xml):
            raise AssertionError("pytest wrote no results (rc %d):\n%s"
                                 % (proc.returncode, proc.stdout))
        results = {}
        for case in ET.parse(xml).getroot().iter("testcase"):
            outcome, message = "passed", ""
            for tag in ("failure", "error", "skipped"):
                node = case.find(tag)
                if node is not None:
                    outcome = tag
                    message = (node.get("message") or "") + "\n" + (node.text or "")
            results[case.get("name")] = (outcome, message)
        return proc.returncode, results, proc.stdout


try:
    import pytest  # noqa: F401  (python3-pytest: scripts/setup installs it)
except ImportError:
    pytest = None


@unittest.skipIf(pytest is None, "python3-pytest is not installed (scripts/setup)")
class PytestPluginTest(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.checked = [run_suite("--leakguard") for _ in range(2)]
        cls.markers_only = run_suite()

    def test_leakguard_fails_each_leak_with_its_cause(self):
        for rc, results, output in self.checked:
            self.assertEqual(rc, 1, output)
            outcome, message = results["test_global_state"]
            self.assertEqual(outcome, "failure", output)
            self.assertIn("cause global_state", message)
            self.assertIn("held by test_suite._kept\n", message)
            self.assertNotIn("pytest_plugin.py", message)
            self.assertIn("test_suite.py:%d" % _line_of("# leak: global_state"), message)
            self.assertIn("3 warm-up + 10 measured runs", message)
            outcome, message = results["test_unbounded_cache"]
            self.assertEqual(outcome, "failure", output)
            self.assertIn("cause unbounded_cache", message)
            self.assertIn("held by test_suite._results\n", message)
            outcome, message = results["test_listeners"]
            self.assertEqual(outcome, "failure", output)
            self.assertIn("cause listener_accumulation", message)
            self.assertIn("held by test_suite.bus.listeners\n", message)

    def test_leakguard_passes_healthy_tests_and_ignores_fixtures(self):
        for rc, results, output in self.checked:
            self.assertEqual(results["test_healthy"], ("passed", ""), output)
            self.assertEqual(results["test_healthy_with_fixtures"], ("passed", ""), output)
            self.assertEqual(results["test_limit_memory_within"], ("passed", ""), output)

    def test_an_ordinary_failure_stays_ordinary(self):
        for rc, results, output in self.checked + [self.markers_only]:
            outcome, message = results["test_plain_failure"]
            self.assertEqual(outcome, "failure")
            self.assertIn("assert (1 + 1) == 3", message)
            self.assertNotIn("leakguard", message)

    def test_no_leaks_marker_takes_its_counts(self):
        for rc, results, output in self.checked + [self.markers_only]:
            outcome, message = results["test_marked_no_leaks"]
            self.assertEqual(outcome, "failure", output)
            self.assertIn("2 warm-up + 6 measured runs", message)
            self.assertIn("test_suite.py:%d" % _line_of("# leak: marked"), message)

    def test_limit_leaks_is_a_limit_per_location_and_run(self):
        rc, results, output = self.markers_only
        outcome, message = results["test_limit_leaks_exceeded"]
        self.assertEqual(outcome, "failure", output)
        self.assertIn("keeps more than 1.0 KiB per run at", message)
        self.assertIn("test_suite.py:%d (global_state" % _line_of("# leak: limited"), message)
        self.assertEqual(results["test_limit_leaks_within"], ("passed", ""), output)
        # Under --leakguard the same 20 KB per run is a leak all the same.
        self.assertEqual(self.checked[0][1]["test_limit_leaks_within"][0], "failure")

    def test_limit_memory_is_the_peak_of_one_run(self):
        for rc, results, output in self.checked + [self.markers_only]:
            outcome, message = results["test_limit_memory_exceeded"]
            self.assertEqual(outcome, "failure", output)
            self.assertIn("more than the limit of 1.0 MiB (limit_memory)", message)

    def test_without_the_option_unmarked_tests_are_not_checked(self):
        rc, results, output = self.markers_only
        for name in ("test_global_state", "test_unbounded_cache", "test_listeners",
                     "test_healthy", "test_healthy_with_fixtures"):
            self.assertEqual(results[name], ("passed", ""), (name, output))

    def test_same_outcomes_every_run(self):
        first, second = ({name: outcome for name, (outcome, _) in results.items()}
                         for _, results, _ in self.checked)
        self.assertEqual(first, second)
        self.assertEqual(len(first), 11)


class SizeTest(unittest.TestCase):
    def test_pytest_memray_sizes(self):
        from leakguard._sizes import format_bytes, parse_size
        self.assertEqual(parse_size("1 MB"), 1 << 20)
        self.assertEqual(parse_size("1.5KB"), 1536)
        self.assertEqual(parse_size("24mb"), 24 << 20)
        self.assertEqual(parse_size("512 B"), 512)
        self.assertEqual(parse_size(4096), 4096)
        for bad in ("1 MiB", "MB", "", "1 XB", "-1 MB"):
            with self.assertRaises(ValueError, msg=bad):
                parse_size(bad)
        self.assertEqual(format_bytes(512), "512 B")
        self.assertEqual(format_bytes(1536), "1.5 KiB")
        self.assertEqual(format_bytes(-(2 << 20)), "-2.0 MiB")


if __name__ == "__main__":
    unittest.main()
