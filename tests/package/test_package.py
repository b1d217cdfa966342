"""The Python package leakguard: the re-exported extension, `python -m
leakguard` against the binary itself, signatures and stubs."""
import inspect
import os
import subprocess
import sys
import sysconfig
import unittest

import leakguard
import leakguard.__main__

HERE = os.path.dirname(os.path.abspath(__file__))
APP = os.path.join(HERE, "leaky_app.py")


def run(argv, **kwargs):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=600, **kwargs)


class PackageTest(unittest.TestCase):
    def test_package_re_exports_the_extension(self):
        self.assertTrue(leakguard.__file__.endswith(os.path.join("leakguard", "__init__.py")))
        self.assertTrue(leakguard._leakguard.__file__.endswith(
            "_leakguard" + sysconfig.get_config_var("EXT_SUFFIX")))
        self.assertEqual(leakguard.__version__, "0.1.0")
        for name in ("lru_cache", "EventBus", "memory_guard", "MemoryReport",
                     "MemoryGrowthWarning", "diagnose", "RequestTracker", "rss", "typestats",
                     "most_common_types", "count", "by_type", "growth"):
            self.assertIn(name, leakguard.__all__)
            self.assertIs(getattr(leakguard, name), getattr(leakguard._leakguard, name))
            self.assertEqual(getattr(leakguard, name).__module__, "leakguard", name)
        self.assertIn("show_backrefs", leakguard.__all__)

    def test_signatures(self):
        expected = {
            leakguard.lru_cache: "(maxsize=128, typed=False, ttl=None, *, weak_self=False, "
                                 "timer=None)",
            leakguard.EventBus: "(*, on_error=None)",
            leakguard.EventBus.subscribe: "(callback, *, weak=True)",
            leakguard.memory_guard: "(label, *, warn_mb=None, mode='process', top=10)",
            leakguard.RequestTracker: "(*, report_every=0, rss_threshold_bytes=0, "
                                      "worst_kept=10, name='requests')",
            leakguard.RequestTracker.record: "(self, /, label, rss_delta, elapsed=0.0)",
            leakguard.RequestTracker.stats: "(self, /)",
            leakguard.RequestTracker.reset: "(self, /)",
            leakguard.rss: "()",
            leakguard.typestats: "(shortnames=True)",
            leakguard.most_common_types: "(limit=10, shortnames=True)",
            leakguard.count: "(typename, /)",
            leakguard.by_type: "(typename, /)",
            leakguard.growth: "(limit=10, peak_stats=None, shortnames=True)",
            leakguard.find_backref_chain: "(obj, predicate=None, max_depth=20, "
                                          "extra_ignore=None)",
            leakguard.backref_path: "(obj, predicate=None, max_depth=20, extra_ignore=None)",
            leakguard.backrefs_dot: "(objs, max_depth=3, too_many=10, extra_ignore=None)",
            leakguard.take_snapshot: "()",
            leakguard.LeakDetector: "(*, interval=60.0, threshold_bytes=67108864, "
                                    "fd_threshold=16, thread_threshold=8, traced=True, "
                                    "frames=1, top=10, min_report_interval=600.0, "
                                    "callback=None)",
            leakguard.LeakDetector.start: "(self, /)",
            leakguard.Snapshot.compare_to: "(self, /, old_snapshot, key_type, cumulative=False)",
            leakguard.Snapshot.statistics: "(self, /, key_type, cumulative=False)",
            leakguard.Snapshot.from_tracemalloc: "(snapshot, /)",
            leakguard.show_backrefs: "(objs, max_depth=3, extra_ignore=(), too_many=10, "
                                     "filename=None, output=None)",
            leakguard.__main__.main: "(argv=None)",
            leakguard.__main__.command_path: "()",
        }
        for func, text in expected.items():
            if isinstance(func, type) and sys.version_info < (3, 10):
                continue  # 3.9's inspect reads no signature of a builtin class.
            self.assertEqual(str(inspect.signature(func)), text, func)

    def test_docstring_examples_run(self):
        import doctest
        runner = doctest.DocTestRunner()
        names = []
        for test in doctest.DocTestFinder().find(leakguard, extraglobs={"leakguard": leakguard}):
            if test.examples:
                names.append(test.name)
                runner.run(test)
        result = runner.summarize(verbose=False)
        self.assertEqual(result.failed, 0)
        self.assertGreaterEqual(result.attempted, 15)
        for name in ("leakguard", "leakguard.RequestTracker.record", "leakguard.growth",
                     "leakguard.most_common_types", "leakguard.rss", "leakguard.typestats"):
            self.assertIn(name, names)

    def test_stubs_are_shipped(self):
        package = os.path.dirname(leakguard.__file__)
        self.assertTrue(os.path.exists(os.path.join(package, "py.typed")))
        stubs = ""
        for name in ("__init__.pyi", "_leakguard.pyi"):
            with open(os.path.join(package, name)) as f:
                stubs += f.read()
        for name in leakguard.__all__:
            self.assertRegex(stubs, r"\n(class|def) %s\b" % name, name)

    def test_rss(self):
        self.assertGreater(leakguard.rss(), 1 << 20)


def without_gil_warning(stderr):
    """stderr without the one line a free-threaded CPython prints when it
    imports leakguard._leakguard (the module does not declare Py_mod_gil, so
    the GIL is enabled: docs/python.md). Any other difference still fails."""
    if not sysconfig.get_config_var("Py_GIL_DISABLED"):
        return stderr
    return "".join(line for line in stderr.splitlines(keepends=True)
                   if "has been enabled to load module 'leakguard._leakguard'" not in line)


class MainTest(unittest.TestCase):
    """`python -m leakguard ARGS` is `leakguard ARGS`: output and status."""

    def both(self, *args):
        binary = run([leakguard.__main__.command_path(), *args], cwd=HERE)
        module = run([sys.executable, "-m", "leakguard", *args], cwd=HERE)
        return binary, module

    def assertSame(self, binary, module, rc):
        self.assertEqual(module.returncode, rc, module.stderr)
        self.assertEqual(binary.returncode, rc, binary.stderr)
        self.assertEqual(module.stdout, binary.stdout)
        self.assertEqual(without_gil_warning(module.stderr), binary.stderr)

    def test_help_and_version(self):
        binary, module = self.both("--help")
        self.assertSame(binary, module, 0)
        self.assertIn("usage: leakguard run", module.stdout)
        binary, module = self.both("--version")
        self.assertSame(binary, module, 0)
        self.assertRegex(module.stdout, r"^leakguard 0\.1\.0 \(Python 3\.\d+")

    def test_doctor_leak_is_status_1(self):
        binary, module = self.both("doctor", "leaky_app.py:leak", "--repeat", "8")
        self.assertEqual(module.returncode, 1, module.stderr)
        self.assertEqual(binary.returncode, 1, binary.stderr)
        self.assertIn("LEAK", module.stdout)
        self.assertIn("global_state", module.stdout)
        self.assertIn("leaky_app._kept", module.stdout)

    def test_doctor_clean_is_status_0(self):
        binary, module = self.both("doctor", "leaky_app.py:clean", "--repeat", "6")
        self.assertEqual((binary.returncode, module.returncode), (0, 0), module.stderr)

    def test_usage_error_is_status_2(self):
        binary, module = self.both("doctor", "leaky_app.py")
        self.assertSame(binary, module, 2)
        self.assertIn("doctor needs SCRIPT.py:FUNC", module.stderr)

    def test_run_passes_the_script_status_and_this_interpreter(self):
        module = run([sys.executable, "-m", "leakguard", "run", "--top", "1", APP, "3"], cwd=HERE)
        self.assertEqual(module.returncode, 3, module.stderr)
        self.assertIn("prefix %s\n" % sys.prefix, module.stdout)
        self.assertIn("leakguard 0.1.0\n", module.stdout)

    def test_scripts_of_the_command_import_the_package_s_modules(self):
        # The command's module is built in; it finds the package's Python
        # modules (middleware, pytest_plugin) through the package on sys.path.
        script = os.path.join(HERE, "uses_middleware.py")
        module = run([sys.executable, "-m", "leakguard", "run", script], cwd=HERE)
        self.assertEqual(module.returncode, 0, module.stderr)
        self.assertIn("origin built-in\n", module.stdout)
        self.assertIn("middleware %s\n" % os.path.join(
            os.path.dirname(leakguard.__file__), "middleware.py"), module.stdout)
        self.assertIn("same module True\n", module.stdout)
        self.assertIn("requests 1\n", module.stdout)

    def test_missing_binary_is_a_clear_error(self):
        # A LEAKGUARD_COMMAND that does not exist: the recorded path is next.
        env = dict(os.environ, LEAKGUARD_COMMAND="/nonexistent/leakguard")
        module = run([sys.executable, "-m", "leakguard", "--version"], env=env)
        self.assertEqual(module.returncode, 0, module.stderr)
        self.assertIn("leakguard 0.1.0", module.stdout)
        # No recorded path either: status 2 and where it looked.
        code = ("import sys, leakguard.__main__ as m; sys.modules['leakguard._paths'] = None; "
                "sys.exit(m.main(['--version']))")
        module = run([sys.executable, "-c", code], env=env)
        self.assertEqual(module.returncode, 2)
        self.assertIn("the 'leakguard' binary is not installed beside the package "
                      "(looked at: /nonexistent/leakguard)", module.stderr)

if __name__ == "__main__":
    unittest.main()
