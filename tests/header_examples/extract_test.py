#!/usr/bin/env python3
"""Tests of extract.py on small made-up trees: what the rule picks, what the
generated file holds, and every way an example could drop out of the build,
each of which must fail naming the header."""

import contextlib
import io
import os
import sys
import tempfile
import textwrap
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import extract  # noqa: E402

HEADER = """\
// leakguard/thing.h
//
// A thing. Its parts:
//   Part     one part; see Other();
//   Other    another, {label}
//
//   auto thing = Thing::Make();  // StatusOr
//   if (!thing.ok()) return thing.status();
//
//   {
//     Use(*thing);
//   }  // done
//
// Prose after the examples.

#ifndef LEAKGUARD_THING_H_
#define LEAKGUARD_THING_H_
#endif  // LEAKGUARD_THING_H_
"""

TEMPLATE = """\
#include "leakguard/thing.h"

absl::Status First() {
@EXAMPLE_1@
  return absl::OkStatus();
}

void Second() {
  @EXAMPLE_2@
}
"""


class ExtractTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.root = self.dir.name
        for d in ("include/leakguard/python", "tests/header_examples"):
            os.makedirs(os.path.join(self.root, d))
        self.write("include/leakguard/thing.h", HEADER)
        self.write("include/leakguard/plain.h", "// leakguard/plain.h\n//\n// No code.\n\n"
                   "#ifndef LEAKGUARD_PLAIN_H_\n#endif\n")
        self.write("tests/header_examples/thing.cc.in", TEMPLATE)

    def tearDown(self):
        self.dir.cleanup()

    def write(self, path, text):
        with open(os.path.join(self.root, path), "w", encoding="utf-8") as f:
            f.write(text)

    def run_tool(self, *args):
        err = io.StringIO()
        out = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            rc = extract.main(["--root", self.root] + list(args))
        return rc, out.getvalue(), err.getvalue()

    def generate(self):
        out = os.path.join(self.root, "out", "thing.cc")
        rc, _, err = self.run_tool("generate", os.path.join(self.root, "include/leakguard/thing.h"),
                                   out)
        if rc != 0:
            return rc, err
        with open(out, encoding="utf-8") as f:
            return rc, f.read()

    def test_the_rule_keeps_listings_out(self):
        blocks = extract.top_comment_blocks(os.path.join(self.root, "include/leakguard/thing.h"))
        self.assertEqual([(b.first_line, b.code) for b in blocks],
                         [(4, False), (7, True), (10, True)])

    def test_blocks_go_in_verbatim_with_line_directives(self):
        rc, text = self.generate()
        self.assertEqual(rc, 0, text)
        header = os.path.join(self.root, "include/leakguard/thing.h")
        template = os.path.join(self.root, "tests/header_examples/thing.cc.in")
        self.assertIn(textwrap.dedent("""\
            absl::Status First() {
            #line 7 "%s"
                 auto thing = Thing::Make();  // StatusOr
                 if (!thing.ok()) return thing.status();
            #line 5 "%s"
              return absl::OkStatus();
            """) % (header, template), text)
        self.assertIn('#line 10 "%s"\n     {\n       Use(*thing);\n     }  // done\n' % header,
                      text)

    def test_table_counts_examples_and_listings(self):
        rc, out, err = self.run_tool("check")
        self.assertEqual(rc, 0, err)
        self.assertIn("include/leakguard/thing.h", out)
        self.assertRegex(out, r"include/leakguard/thing\.h +2 +1\n")
        self.assertRegex(out, r"include/leakguard/plain\.h +0 +0\n")
        self.assertIn("2 examples in 1 headers", out)

    def assert_fails(self, *needles):
        for args in (("check",), ("manifest", os.path.join(self.root, "m.txt"))):
            rc, _, err = self.run_tool(*args)
            self.assertEqual(rc, 1, args)
            for needle in needles:
                self.assertIn(needle, err)

    def test_a_header_with_code_and_no_template_fails(self):
        os.remove(os.path.join(self.root, "tests/header_examples/thing.cc.in"))
        self.assert_fails("include/leakguard/thing.h has 2 code block(s)", "no template")

    def test_a_placeholder_no_block_fills_fails(self):
        self.write("tests/header_examples/thing.cc.in", TEMPLATE + "@EXAMPLE_3@\n")
        self.assert_fails("@EXAMPLE_3@", "include/leakguard/thing.h has 2 code block(s)")

    def test_a_block_without_placeholder_fails(self):
        self.write("tests/header_examples/thing.cc.in", TEMPLATE.replace("  @EXAMPLE_2@\n", ""))
        self.assert_fails("include/leakguard/thing.h: code block 2 of 2 (line 10)")

    def test_an_example_that_became_prose_fails(self):
        self.write("include/leakguard/thing.h", HEADER.replace("//   }  // done", "//   } done."))
        self.assert_fails("@EXAMPLE_2@", "include/leakguard/thing.h has 1 code block(s)")

    def test_a_template_without_code_in_its_header_fails(self):
        self.write("tests/header_examples/plain.cc.in", '#include "leakguard/plain.h"\n')
        self.assert_fails("include/leakguard/plain.h: template", "has no code block")

    def test_a_template_without_a_header_fails(self):
        self.write("tests/header_examples/gone.cc.in", '#include "leakguard/gone.h"\n')
        self.assert_fails("include/leakguard/gone.h")

    def test_a_template_must_include_its_header(self):
        self.write("tests/header_examples/thing.cc.in", TEMPLATE.replace("thing.h", "other.h"))
        self.assert_fails('does not `#include "leakguard/thing.h"`')

    def test_odd_placeholders_fail(self):
        self.write("tests/header_examples/thing.cc.in", TEMPLATE + "@EXAMPLE_1@\n")
        self.assert_fails("@EXAMPLE_1@ appears twice")
        self.write("tests/header_examples/thing.cc.in", TEMPLATE + "@EXAMPLES@\n")
        self.assert_fails("unknown placeholder @EXAMPLES@")
        self.write("tests/header_examples/thing.cc.in",
                   TEMPLATE.replace("  @EXAMPLE_2@", "  f(); @EXAMPLE_2@"))
        self.assert_fails("@EXAMPLE_2@ must be alone on its line")

    def test_a_stale_build_fails_the_check(self):
        manifest = os.path.join(self.root, "m.txt")
        self.assertEqual(self.run_tool("manifest", manifest)[0], 0)
        self.assertEqual(self.run_tool("check", "--manifest", manifest)[0], 0)
        self.write("include/leakguard/thing.h",
                   HEADER.replace("// Prose after", "//   Use(*thing);\n//\n// Prose after"))
        self.write("tests/header_examples/thing.cc.in", TEMPLATE + "@EXAMPLE_3@\n")
        self.assertEqual(self.run_tool("check")[0], 0)
        rc, _, err = self.run_tool("check", "--manifest", manifest)
        self.assertEqual(rc, 1)
        self.assertIn("rebuild the header_examples target", err)

    def test_comments_inside_strings_are_code(self):
        self.assertEqual(extract.strip_trailing_comment('f("a // b");  // c'), 'f("a // b");  ')
        self.assertTrue(extract.is_code(['Print("http://x");']))
        self.assertFalse(extract.is_code(["kTraced   also tracemalloc;", "  the lines."]))


if __name__ == "__main__":
    unittest.main()
