"""Runs unittest modules as `python3 -m unittest -v MODULE...` does, and
also writes a JUnit-style XML file, so scripts/test.sh counts these tests
with the GoogleTest ones.

    python3 run_tests.py [--xml OUT.xml] [--prefix NAME.] test_module...

Exit status 0 when every test passed (skips allowed), 1 otherwise.
"""
import argparse
import os
import sys
import time
import unittest
import xml.etree.ElementTree as ET


class _Result(unittest.TextTestResult):
    """Remembers each test's outcome and duration."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.records = []
        self._started = 0.0

    def startTest(self, test):
        self._started = time.monotonic()
        super().startTest(test)

    def _record(self, test, outcome, detail=""):
        self.records.append((test.id(), outcome, detail,
                             time.monotonic() - self._started))

    def addSuccess(self, test):
        super().addSuccess(test)
        self._record(test, "pass")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._record(test, "failure", self._exc_info_to_string(err, test))

    def addError(self, test, err):
        super().addError(test, err)
        self._record(test, "error", self._exc_info_to_string(err, test))

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._record(test, "skipped", reason)

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._record(test, "pass")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._record(test, "failure", "unexpected success")


def _write_xml(path, records, prefix):
    counts = {"pass": 0, "failure": 0, "error": 0, "skipped": 0}
    for _, outcome, _, _ in records:
        counts[outcome] += 1
    attrs = {"tests": str(len(records)), "failures": str(counts["failure"]),
             "errors": str(counts["error"]), "skipped": str(counts["skipped"])}
    root = ET.Element("testsuites", name="python", **attrs)
    suite = ET.SubElement(root, "testsuite", name="python", **attrs)
    for test_id, outcome, detail, seconds in records:
        classname, _, name = test_id.rpartition(".")
        case = ET.SubElement(suite, "testcase", classname=prefix + classname,
                             name=name, time=f"{seconds:.3f}")
        if outcome in ("failure", "error"):
            ET.SubElement(case, outcome, message=detail.splitlines()[-1]
                          if detail else outcome).text = detail
        elif outcome == "skipped":
            ET.SubElement(case, "skipped", message=detail)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--xml", help="write JUnit-style results here")
    parser.add_argument("--prefix", default="", help="prefix for class names")
    parser.add_argument("modules", nargs="+")
    args = parser.parse_args(argv)
    here = os.path.dirname(os.path.abspath(__file__))
    if here not in sys.path:
        sys.path.insert(0, here)
    suite = unittest.defaultTestLoader.loadTestsFromNames(args.modules)
    runner = unittest.TextTestRunner(verbosity=2, resultclass=_Result,
                                     stream=sys.stderr)
    result = runner.run(suite)
    if args.xml:
        _write_xml(args.xml, result.records, args.prefix)
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
