"""Back-reference chains from Python (find_backref_chain, backref_path,
backrefs_dot, show_backrefs): objgraph's answers, readable paths."""
import inspect
import os
import shutil
import sys
import tempfile
import unittest

import leakguard

try:
    import objgraph
except ImportError:  # python3-objgraph: scripts/setup installs it
    objgraph = None


class Session:
    def __init__(self, user):
        self.user = user
        self.payload = bytearray(64)


_registry = {"sessions": []}


class BackrefTest(unittest.TestCase):
    def setUp(self):
        self.target = Session(7)
        _registry["sessions"].append(self.target)

    def tearDown(self):
        _registry["sessions"].clear()

    def test_chain_from_the_module(self):
        chain = leakguard.find_backref_chain(self.target)
        self.assertIs(chain[0], sys.modules[__name__])
        self.assertIs(chain[-1], self.target)
        self.assertIs(chain[-2], _registry["sessions"])
        self.assertEqual(len(chain), 5)  # module, its dict, _registry, the list, target
        self.assertEqual(
            leakguard.backref_path(self.target),
            "module %s .__dict__['_registry'] -> dict['sessions'] -> list[0]" % __name__)

    @unittest.skipIf(objgraph is None, "python3-objgraph is not installed")
    def test_same_chain_as_objgraph(self):
        ours = leakguard.find_backref_chain(self.target)
        theirs = objgraph.find_backref_chain(self.target, objgraph.is_proper_module)
        self.assertEqual([id(o) for o in ours], [id(o) for o in theirs])

    def test_predicate_and_depth(self):
        # A class as the root: the module's dict is reached from a class
        # through one of its functions' __globals__.
        chain = leakguard.find_backref_chain(self.target, inspect.isclass)
        self.assertTrue(inspect.isclass(chain[0]), chain[0])
        self.assertIs(chain[-1], self.target)
        if objgraph is not None:
            # As short as objgraph's (which class wins a tie may differ: each
            # query's own result list is on the heap when the other runs).
            theirs = objgraph.find_backref_chain(self.target, inspect.isclass)
            self.assertEqual(len(chain), len(theirs))
            self.assertTrue(inspect.isclass(theirs[0]))
        # The list is a root when the predicate says so.
        chain = leakguard.find_backref_chain(self.target, lambda o: o is _registry["sessions"])
        self.assertEqual([id(o) for o in chain], [id(_registry["sessions"]), id(self.target)])
        # No root within one reference: objgraph's [obj].
        self.assertEqual(leakguard.find_backref_chain(self.target, max_depth=1), [self.target])
        self.assertIsNone(leakguard.backref_path(self.target, max_depth=1))

    def test_extra_ignore(self):
        other = [self.target]  # a second holder, reachable from the module too
        globals()["_other_holder"] = other
        try:
            chain = leakguard.find_backref_chain(self.target,
                                                 extra_ignore=[_registry["sessions"]])
            self.assertIs(chain[-2], other)
        finally:
            del globals()["_other_holder"]

    def test_predicate_errors_propagate(self):
        def boom(candidate):
            raise KeyError("predicate failed")
        with self.assertRaisesRegex(KeyError, "predicate failed"):
            leakguard.find_backref_chain(self.target, boom)
        with self.assertRaises(ValueError):
            leakguard.find_backref_chain(self.target, max_depth=-1)

    def test_backrefs_dot(self):
        dot = leakguard.backrefs_dot(self.target, max_depth=2)
        self.assertTrue(dot.startswith("digraph"), dot[:40])
        self.assertIn("o%d" % id(self.target), dot)
        self.assertIn("o%d" % id(_registry["sessions"]), dot)
        both = leakguard.backrefs_dot([self.target, _registry], max_depth=1)
        self.assertIn("o%d" % id(_registry), both)

    @unittest.skipUnless(hasattr(leakguard, "show_backrefs"), "the package's show_backrefs")
    def test_show_backrefs_writes_dot_and_renders(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "refs.dot")
            self.assertIsNone(leakguard.show_backrefs(self.target, filename=path))
            with open(path) as f:
                self.assertIn("o%d" % id(self.target), f.read())
            if shutil.which("dot"):
                png = os.path.join(tmp, "refs.png")
                leakguard.show_backrefs([self.target], max_depth=2, filename=png)
                with open(png, "rb") as f:
                    self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")


if __name__ == "__main__":
    unittest.main()
