#!/usr/bin/env python3
"""Turns the code examples in the public headers' top comments into C++ files.

Every public header (include/leakguard/*.h and include/leakguard/python/*.h)
opens with a comment: the lines before its `#ifndef` include guard. Inside
it, a *block* is a run of consecutive lines that begin with `//` and at least
three spaces (`//   `), the indentation the headers use for both code
examples and listings.

The rule that tells code from listings: take the block's lines, drop from
each a trailing `// comment` (a `//` outside string and character literals),
and leave out the lines that are empty after that. The block is code when
its last remaining line ends in `;`, or consists of `}` alone (optionally
followed by `;`). Listings (the `EncodePprof   pprof's ...` table of
profile.h, the series of prometheus.h, the bullets of leak_check.h, the
"Modes:" of memory_guard.h) end in prose: a full stop, a comma, a word, a
`{label}` set. It is the last line that decides, not any line: a listing's
item may end in `;` (the bullets of leak_check.h do), a statement cannot end
a listing. `extract.py list` prints every block of every header with the
verdict, so a reviewer can see what the rule picked.

Each header with code blocks has a hand-written template, its path under
tests/header_examples/ with `.cc.in` for `.h` (python/interpreter.h ->
tests/header_examples/python/interpreter.cc.in). The template includes its
header, declares what the examples assume, and has one placeholder line per
block, `@EXAMPLE_1@`, `@EXAMPLE_2@`, ... in the header's order, each alone
on its line. The block replaces the placeholder verbatim: `//` becomes two
spaces, so every column is the header's, and `#line` directives make a
compiler's diagnostics name the header's line (and the template's, for the
rest of the file).

Anything that would let an example drop out silently is an error (exit
status 1, a message naming the header): a header with code blocks and no
template, a template whose header has none (or does not exist), a template
that does not include its header, a placeholder no block fills, a block no
placeholder takes, a placeholder used twice, and any other `@NAME@`.

Commands (paths are the source tree's unless given):
  generate HEADER OUT     writes OUT, the C++ file of one header
  manifest OUT            checks every header and template; writes OUT, the
                          table of examples per header, the build compiled
  check [--manifest M]    checks every header and template, prints the table,
                          and with M fails unless the build's table is the same
  list                    every block of every header, code or listing
"""

import argparse
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_ROOT = os.path.dirname(os.path.dirname(HERE))
HEADER_DIRS = ("include/leakguard", "include/leakguard/python")
BLOCK_PREFIX = "//   "
PLACEHOLDER = re.compile(r"@([A-Za-z0-9_]+)@")
EXAMPLE = re.compile(r"EXAMPLE_([1-9][0-9]*)$")


class ExampleError(Exception):
    """A header, a template or the manifest is not what the rule asks for."""


def strip_trailing_comment(line):
    """Returns `line` up to a `//` that is outside string and char literals."""
    quote = None
    i = 0
    while i < len(line):
        c = line[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = None
        elif c in "\"'":
            quote = c
        elif line.startswith("//", i):
            return line[:i]
        i += 1
    return line


def is_code(lines):
    """The rule of the module docstring, on a block's text (prefix removed)."""
    code = [strip_trailing_comment(line).rstrip() for line in lines]
    code = [line for line in code if line.strip()]
    if not code:
        return False
    last = code[-1].strip()
    return last.endswith(";") or last in ("}", "};")


class Block:
    def __init__(self, first_line, lines):
        self.first_line = first_line  # 1-based line of the header
        self.lines = lines  # the header's lines, `//` included

    @property
    def code(self):
        return is_code([line[len(BLOCK_PREFIX):] for line in self.lines])


def top_comment_blocks(header_path):
    """Every block of the header's top comment, code or not."""
    with open(header_path, encoding="utf-8") as f:
        text = f.read().splitlines()
    blocks = []
    current = None
    for number, line in enumerate(text, start=1):
        if line.startswith("#ifndef"):
            if current:
                blocks.append(current)
            return blocks
        if line.startswith(BLOCK_PREFIX):
            if current is None:
                current = Block(number, [])
            current.lines.append(line)
            continue
        if current:
            blocks.append(current)
            current = None
        if line and not line.startswith("//"):
            break
    raise ExampleError(
        "%s: no `#ifndef` include guard after the top comment" % header_path)


def code_blocks(header_path):
    blocks = top_comment_blocks(header_path)
    return [b for b in blocks if b.code], [b for b in blocks if not b.code]


def headers(root):
    found = []
    for d in HEADER_DIRS:
        full = os.path.join(root, d)
        for name in sorted(os.listdir(full)):
            if name.endswith(".h"):
                found.append(os.path.join(d, name))
    return found


def template_for(header):
    """include/leakguard/python/x.h -> python/x.cc.in (under this folder)."""
    rel = os.path.relpath(header, "include/leakguard")
    return rel[:-len(".h")] + ".cc.in"


def templates(root):
    base = os.path.join(root, os.path.relpath(HERE, DEFAULT_ROOT))
    found = []
    for d, _, names in os.walk(base):
        for name in names:
            if name.endswith(".cc.in"):
                found.append(os.path.relpath(os.path.join(d, name), base))
    return base, sorted(found)


def placeholders(template_path, text, header, blocks):
    """{block index: template line index}; raises unless they pair exactly."""
    where = {}
    for index, line in enumerate(text):
        for match in PLACEHOLDER.finditer(line):
            name = match.group(1)
            number = EXAMPLE.match(name)
            if not number:
                raise ExampleError("%s: unknown placeholder @%s@ (line %d)" %
                                   (template_path, name, index + 1))
            if line.strip() != match.group(0):
                raise ExampleError("%s: @%s@ must be alone on its line (line %d)" %
                                   (template_path, name, index + 1))
            k = int(number.group(1))
            if k in where:
                raise ExampleError("%s: @%s@ appears twice (lines %d and %d)" %
                                   (template_path, name, where[k] + 1, index + 1))
            if k > len(blocks):
                raise ExampleError(
                    "%s: placeholder @%s@ (line %d) but %s has %d code block(s); "
                    "no block fills it" %
                    (template_path, name, index + 1, header, len(blocks)))
            where[k] = index
    for k, block in enumerate(blocks, start=1):
        if k not in where:
            raise ExampleError(
                "%s: code block %d of %d (line %d) has no placeholder @EXAMPLE_%d@ in %s" %
                (header, k, len(blocks), block.first_line, k, template_path))
    return where


def render(root, header):
    """The C++ text of one header's examples; raises on any mismatch."""
    header_path = os.path.join(root, header)
    base, _ = templates(root)
    template_path = os.path.join(base, template_for(header))
    blocks, _ = code_blocks(header_path)
    if not os.path.exists(template_path):
        if blocks:
            raise ExampleError(
                "%s has %d code block(s) in its top comment but no template %s "
                "(add one that declares what the examples assume)" %
                (header, len(blocks), template_path))
        return None
    if not blocks:
        raise ExampleError("%s: template %s exists but %s has no code block "
                           "(remove the template, or fix the example)" %
                           (header, template_path, header))
    with open(template_path, encoding="utf-8") as f:
        text = f.read().splitlines()
    include = '#include "%s"' % os.path.relpath(header, "include")
    if include not in text:
        raise ExampleError("%s: does not `%s`" % (template_path, include))
    where = placeholders(template_path, text, header, blocks)
    by_line = {index: blocks[k - 1] for k, index in where.items()}
    out = ["// Generated by tests/header_examples/extract.py from %s" % header,
           "// and %s; do not edit." % os.path.relpath(template_path, root),
           '#line 1 "%s"' % template_path]
    for index, line in enumerate(text):
        block = by_line.get(index)
        if block is None:
            out.append(line)
            continue
        out.append('#line %d "%s"' % (block.first_line, header_path))
        out.extend("  " + line[2:] for line in block.lines)
        out.append('#line %d "%s"' % (index + 2, template_path))
    return "\n".join(out) + "\n"


def table(root):
    """[(header, examples, listings)] for every header; checks every template."""
    base, found = templates(root)
    rows = []
    expected = set()
    for header in headers(root):
        blocks, listings = code_blocks(os.path.join(root, header))
        render(root, header)
        expected.add(template_for(header))
        rows.append((header, len(blocks), len(listings)))
    for template in found:
        if template not in expected:
            raise ExampleError("%s: template for a header that does not exist (%s)" %
                               (os.path.join(base, template),
                                os.path.join("include/leakguard", template[:-6] + ".h")))
    return rows


def format_table(rows):
    lines = ["%-42s %8s %8s" % ("header", "examples", "listings")]
    lines += ["%-42s %8d %8d" % row for row in rows]
    lines.append("%d examples in %d headers" %
                 (sum(r[1] for r in rows), sum(1 for r in rows if r[1])))
    return "\n".join(lines) + "\n"


def write_if_changed(path, text):
    """Leaves an unchanged file alone, so make does not recompile it."""
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            if f.read() == text:
                os.utime(path)
                return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default=DEFAULT_ROOT, help="the source tree")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("generate")
    p.add_argument("header", help="e.g. include/leakguard/counters.h")
    p.add_argument("out")
    p = sub.add_parser("manifest")
    p.add_argument("out")
    p = sub.add_parser("check")
    p.add_argument("--manifest", help="the table the build wrote")
    sub.add_parser("list")
    args = parser.parse_args(argv)
    root = os.path.abspath(args.root)
    try:
        if args.command == "generate":
            text = render(root, os.path.relpath(os.path.abspath(args.header), root))
            if text is None:
                raise ExampleError("%s has no code block" % args.header)
            write_if_changed(args.out, text)
        elif args.command == "manifest":
            write_if_changed(args.out, format_table(table(root)))
        elif args.command == "check":
            text = format_table(table(root))
            sys.stdout.write(text)
            if args.manifest:
                with open(args.manifest, encoding="utf-8") as f:
                    built = f.read()
                if built != text:
                    raise ExampleError(
                        "the build compiled other examples (%s):\n%s"
                        "rebuild the header_examples target" % (args.manifest, built))
        else:
            for header in headers(root):
                for b in top_comment_blocks(os.path.join(root, header)):
                    print("%s:%d: %s" % (header, b.first_line, "code" if b.code else "listing"))
                    for line in b.lines:
                        print("    " + line)
    except (ExampleError, OSError) as e:
        sys.stderr.write("header examples: error: %s\n" % e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
