"""CPython's own tests of functools.lru_cache (test.test_functools.TestLRU,
shipped by Debian in libpython3.X-testsuite) run against leakguard.lru_cache:
the test's mixin with `module` a stand-in whose lru_cache is leakguard's."""
import functools
import sys
import types
import unittest

import leakguard

try:
    from test import test_functools
except ImportError as error:  # reported by the test below
    test_functools = None
    _import_error = error

# TestLRU's `self.module`: functools, with leakguard's lru_cache.
leakguard_functools = types.SimpleNamespace(**vars(functools))
leakguard_functools.lru_cache = leakguard.lru_cache


@leakguard.lru_cache()
def lg_cached_func(x, y):
    return 3 * x + y


if test_functools is not None:
    class LeakguardLRU(test_functools.TestLRU):
        """TestLRU's cases with leakguard's lru_cache (made a TestCase by the
        test below, so that it runs once)."""
        module = leakguard_functools
        cached_func = lg_cached_func,

        @module.lru_cache()
        def cached_meth(self, x, y):
            return 3 * x + y

        @staticmethod
        @module.lru_cache()
        def cached_staticmeth(x, y):
            return 3 * x + y


class CPythonTestLRUTest(unittest.TestCase):
    def test_every_cpython_lru_case_passes(self):
        if test_functools is None:
            self.fail("CPython's test package is missing (%s): install "
                      "libpython3.%d-testsuite (scripts/setup does)"
                      % (_import_error, sys.version_info[1]))
        case = type("LeakguardTestLRU", (LeakguardLRU, unittest.TestCase), {})
        suite = unittest.defaultTestLoader.loadTestsFromTestCase(case)
        expected = len([n for n in dir(test_functools.TestLRU) if n.startswith("test")])
        if sys.version_info[:2] == (3, 11):
            self.assertEqual(expected, 27)  # CPython 3.11's TestLRU
        result = unittest.TestResult()
        suite.run(result)
        problems = ["%s\n%s" % (test.id(), text)
                    for test, text in result.failures + result.errors]
        self.assertEqual(problems, [], "\n".join(problems))
        self.assertEqual(result.skipped, [])
        self.assertEqual(result.testsRun, expected)
        self.assertIs(lg_cached_func.cache_info.__self__, lg_cached_func)


if __name__ == "__main__":
    unittest.main()
