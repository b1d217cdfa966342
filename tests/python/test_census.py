"""The type census from Python (typestats, most_common_types, count,
by_type, growth): objgraph's names, objgraph's answers."""
import gc
import unittest

import leakguard

try:
    import objgraph
except ImportError:  # python3-objgraph: scripts/setup installs it
    objgraph = None


class CensusMarker:
    pass


class GrowthNode:
    pass


class CensusTest(unittest.TestCase):
    def setUp(self):
        self.markers = [CensusMarker() for _ in range(1234)]

    def test_counts_by_short_and_full_name(self):
        self.assertEqual(leakguard.count("CensusMarker"), 1234)
        self.assertEqual(leakguard.count("%s.CensusMarker" % __name__), 1234)
        self.assertEqual(leakguard.count("NoSuchTypeAnywhere"), 0)
        self.assertEqual(leakguard.typestats()["CensusMarker"], 1234)
        self.assertEqual(leakguard.typestats(shortnames=False)["%s.CensusMarker" % __name__],
                         1234)
        self.assertIn(("CensusMarker", 1234), leakguard.most_common_types(limit=0))
        top = leakguard.most_common_types(limit=3)
        self.assertEqual(len(top), 3)
        self.assertEqual(top, sorted(top, key=lambda row: -row[1]))

    def test_by_type_returns_the_objects(self):
        found = leakguard.by_type("CensusMarker")
        self.assertEqual(len(found), 1234)
        self.assertEqual({id(o) for o in found}, {id(o) for o in self.markers})
        with self.assertRaises(ValueError):
            leakguard.by_type("")
        with self.assertRaises(TypeError):
            leakguard.count(3)

    @unittest.skipIf(objgraph is None, "python3-objgraph is not installed")
    def test_same_answers_as_objgraph(self):
        self.assertEqual(leakguard.count("CensusMarker"), objgraph.count("CensusMarker"))
        self.assertEqual({id(o) for o in leakguard.by_type("CensusMarker")},
                         {id(o) for o in objgraph.by_type("CensusMarker")})
        ours = dict(leakguard.most_common_types(limit=0))
        theirs = dict(objgraph.most_common_types(limit=0))
        self.assertEqual(ours["CensusMarker"], theirs["CensusMarker"])

    def test_growth_keeps_peaks(self):
        peaks = {}
        first = leakguard.growth(limit=0, peak_stats=peaks)
        self.assertIn("CensusMarker", peaks)
        self.assertIn(("CensusMarker", 1234, 1234), first)
        nodes = [GrowthNode() for _ in range(700)]
        self.assertEqual(leakguard.growth(limit=1, peak_stats=peaks), [("GrowthNode", 700, 700)])
        self.assertEqual(peaks["GrowthNode"], 700)
        del nodes[:200]
        gc.collect()
        # Below the peak: nothing, and a later rise reports only what passes it.
        self.assertNotIn("GrowthNode", [row[0] for row in leakguard.growth(peak_stats=peaks)])
        nodes.extend(GrowthNode() for _ in range(300))
        rows = {row[0]: row for row in leakguard.growth(limit=0, peak_stats=peaks)}
        self.assertEqual(rows["GrowthNode"], ("GrowthNode", 800, 100))
        with self.assertRaises(TypeError):
            leakguard.growth(peak_stats=[])
        with self.assertRaises(ValueError):
            leakguard.growth(limit=-1)

    def test_growth_without_peaks_uses_the_module_s(self):
        leakguard.growth(limit=0)
        nodes = [GrowthNode() for _ in range(50)]
        rows = {row[0]: row for row in leakguard.growth(limit=0)}
        self.assertEqual(rows["GrowthNode"][2], 50)
        self.assertEqual(len(nodes), 50)


if __name__ == "__main__":
    unittest.main()
