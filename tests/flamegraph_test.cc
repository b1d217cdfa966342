// Flame graphs: collapsed stacks, speedscope JSON, the rounds plot, and the
// self-contained HTML pages rendered by headless Chromium (Debian's
// `chromium`): the DOM after the page's JS ran must hold the frames with
// the right widths, and the screenshot must show the flame graph's colours.

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "leakguard/profile.h"
#include "leakguard/python/python.h"
#include "test_util.h"

namespace leakguard {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

const ProfileFrame kMain{"main", "main.py", 1, FrameKind::kPython};
const ProfileFrame kLoad{"load", "app.py", 5, FrameKind::kPython};
const ProfileFrame kBig{"big", "app.py", 8, FrameKind::kPython};
const ProfileFrame kSmall{"small", "app.py", 9, FrameKind::kPython};
const ProfileFrame kMalloc{"malloc", "libc.so.6", 0, FrameKind::kNative};
const ProfileFrame kEvil{"evil</script><b>x & \"q\"", "", 0, FrameKind::kPython};

// 5000 bytes: main 100%, load 80%, big 60%, small 20%, evil 20%.
Profile Sample() {
  Profile p;
  p.name = "growth";
  p.is_growth = true;
  p.samples = {{{kMain, kLoad, kBig}, 3000, 3, 3000},
               {{kMain, kLoad, kSmall, kMalloc}, 1000, 10, 1000},
               {{kMain, kEvil}, 1000, 1, 1000},
               {{kMain, kLoad}, -500, -1, 0}};  // shrank: not drawn
  return p;
}

TEST(Collapsed, OneLinePerStackRootFirstSummed) {
  Profile p = Sample();
  p.samples.push_back({{kMain, kLoad, kBig}, 24, 1, 24});  // same stack again
  p.samples.push_back({{{"a;b", "x\ny.py", 3, FrameKind::kPython}}, 7, 1, 7});
  EXPECT_EQ(RenderCollapsed(p),
            "a,b (x y.py:3) 7\n"
            "main (main.py:1);evil</script><b>x & \"q\" 1000\n"
            "main (main.py:1);load (app.py:5);big (app.py:8) 3024\n"
            "main (main.py:1);load (app.py:5);small (app.py:9);malloc (libc.so.6) 1000\n");
  EXPECT_EQ(RenderCollapsed(Profile{}), "");
}

TEST(Speedscope, ParsesAsJsonWithSharedFramesAndWeights) {
  const std::string json = RenderSpeedscope(Sample());
  // Hand the JSON to Python through a str object (no quoting games).
  Ref text = Steal(PyUnicode_FromStringAndSize(json.data(), static_cast<Py_ssize_t>(json.size())));
  ASSERT_TRUE(text);
  Ref json_module = Steal(PyImport_ImportModule("json"));
  Ref d = Steal(PyObject_CallMethod(json_module.get(), "loads", "O", text.get()));
  ASSERT_TRUE(d) << "speedscope output is not JSON: " << json;
  Ref globals = Steal(PyDict_New());
  PyDict_SetItemString(globals.get(), "d", d.get());
  PyDict_SetItemString(globals.get(), "__builtins__", PyEval_GetBuiltins());
  Ref summary = Steal(PyRun_String(
      "repr((d['$schema'], [f['name'] for f in d['shared']['frames']],"
      " [f.get('line', 0) for f in d['shared']['frames']], d['profiles'][0]['type'],"
      " d['profiles'][0]['unit'], d['profiles'][0]['samples'], d['profiles'][0]['weights'],"
      " d['profiles'][0]['endValue']))",
      Py_eval_input, globals.get(), globals.get()));
  ASSERT_TRUE(summary);
  EXPECT_EQ(std::string(PyUnicode_AsUTF8(summary.get())),
            "('https://www.speedscope.app/file-format-schema.json', ['main (main.py:1)', "
            "'load (app.py:5)', 'big (app.py:8)', 'small (app.py:9)', 'malloc (libc.so.6)', "
            "'evil</script><b>x & \"q\"'], [1, 5, 8, 9, 0, 0], 'sampled', 'bytes', "
            "[[0, 1, 2], [0, 1, 3, 4], [0, 5]], [3000, 1000, 1000], 5000)");
  // Inside HTML the JSON stays inert: no raw '<' at all.
  EXPECT_THAT(json, Not(HasSubstr("<")));
}

TEST(RoundsSvg, OnePolylinePerSeries) {
  EXPECT_EQ(RenderRoundsSvg({}), "");
  EXPECT_EQ(RenderRoundsSvg({{1, 100, 50, 50}}), "");
  const std::string svg = RenderRoundsSvg(
      {{1, 0, 0, 0}, {2, 4 << 20, 1 << 20, 3 << 20}, {3, 8 << 20, 2 << 20, 6 << 20}});
  EXPECT_THAT(svg, HasSubstr("data-series=\"rss\""));
  EXPECT_THAT(svg, HasSubstr("data-series=\"traced\""));
  EXPECT_THAT(svg, HasSubstr("data-series=\"native\""));
  // x from 80 to 630 over rounds 1..3; y from 244 (0) to 16 (8 MiB).
  EXPECT_THAT(svg, HasSubstr("points=\"80.0,244.0 355.0,130.0 630.0,16.0\""));
  EXPECT_THAT(svg, HasSubstr(">8.0 MiB</text>"));
  // Untraced rounds: RSS only.
  const std::string rss_only =
      RenderRoundsSvg({{1, 0, std::nullopt, std::nullopt}, {2, 100, std::nullopt, std::nullopt}});
  EXPECT_THAT(rss_only, HasSubstr("data-series=\"rss\""));
  EXPECT_THAT(rss_only, Not(HasSubstr("data-series=\"traced\"")));
}

TEST(RoundsSvg, TwoRoundsAreLabelledWithWholeNumbers) {
  const std::string svg = RenderRoundsSvg({{7, 0, 0, 0}, {8, -2048, 0, -2048}});
  EXPECT_THAT(svg, HasSubstr(">7</text>"));
  EXPECT_THAT(svg, HasSubstr(">8</text>"));
  EXPECT_THAT(svg, HasSubstr(">-2.0 KiB</text>"));
}

TEST(FlameGraphHtml, EmptyProfileSaysSo) {
  Profile p;
  p.is_growth = true;
  const std::string html = RenderFlameGraphHtml(p);
  EXPECT_THAT(html, HasSubstr("Nothing grew: no stacks to draw."));
  EXPECT_THAT(html, Not(HasSubstr("class=\"lg-flame\"")));
  EXPECT_THAT(html, HasSubstr("<title>leakguard: growth flame graph</title>"));
}

TEST(RoundsSvg, FromDeltasSummedFromTheFirst) {
  Counters a;
  a.rss_bytes = 100;
  a.traced_bytes = 60;
  Counters b;
  b.rss_bytes = 50;
  b.traced_bytes = -10;
  Counters c;
  c.rss_bytes = 10;  // No traced reading: traced and native end here.
  const std::vector<RoundPoint> points = RoundPointsFromDeltas({a, b, c});
  ASSERT_EQ(points.size(), 3u);
  EXPECT_EQ(points[0].round, 1);
  EXPECT_EQ(points[0].rss_bytes, 100);
  EXPECT_EQ(points[0].traced_bytes, 60);
  EXPECT_EQ(points[0].native_bytes, 40);
  EXPECT_EQ(points[1].round, 2);
  EXPECT_EQ(points[1].rss_bytes, 150);
  EXPECT_EQ(points[1].traced_bytes, 50);
  EXPECT_EQ(points[1].native_bytes, 100);
  EXPECT_EQ(points[2].rss_bytes, 160);
  EXPECT_EQ(points[2].traced_bytes, std::nullopt);
  EXPECT_EQ(points[2].native_bytes, std::nullopt);
  EXPECT_TRUE(RoundPointsFromDeltas({}).empty());
  // The axis and caption name the unit.
  const std::string svg = RenderRoundsSvg(points, "iteration");
  EXPECT_THAT(svg, HasSubstr(">iteration</text>"));
  EXPECT_THAT(svg, HasSubstr("<title>Growth per iteration since the baseline</title>"));
  HtmlReportInput input;
  input.rounds = points;
  input.rounds_unit = "iteration";
  input.rounds_heading = "Iterations";
  EXPECT_THAT(RenderHtmlReport(input),
              HasSubstr("<h2>Iterations</h2>\n<p class=\"lg-note\">Growth since the baseline, per "
                        "iteration, 3 iterations.</p>"));
}

TEST(RoundsSvg, FromDetectorHistory) {
  DetectorRound a;
  a.round = 4;
  a.process.rss_bytes = 10000;
  a.traced_bytes = 3000;
  a.tracemalloc_bytes = 1000;
  a.detector_bytes = 500;
  DetectorRound b;
  b.round = 5;
  b.process.rss_bytes = 700;
  const std::vector<RoundPoint> points = RoundPointsFromHistory({a, b});
  ASSERT_EQ(points.size(), 2u);
  EXPECT_EQ(points[0].round, 4);
  EXPECT_EQ(points[0].rss_bytes, 10000);
  EXPECT_EQ(points[0].traced_bytes, 3000);
  EXPECT_EQ(points[0].native_bytes, 5500);
  EXPECT_EQ(points[1].native_bytes, std::nullopt);
}

// ------------------------------------------------------------- Chromium

std::string Chromium() {
  for (const char* name : {"chromium", "chromium-browser", "google-chrome"}) {
    if (std::system(absl::StrCat("command -v ", name, " > /dev/null 2>&1").c_str()) == 0) {
      return name;
    }
  }
  return "";
}

std::string ResultsDir() {
  const char* dir = std::getenv("LEAKGUARD_TEST_OUTPUT_DIR");
  return dir != nullptr ? dir : "/tmp";
}

// Runs headless Chromium on `html` (saved as `name`.html in the results
// directory) with networking off; returns the DOM after the page's scripts
// ran, and writes `name`.png, a screenshot.
std::string RenderInChromium(const std::string& html, const std::string& name,
                             std::string* screenshot, int height = 900) {
  std::system(absl::StrCat("mkdir -p ", ResultsDir()).c_str());
  const std::string page = absl::StrCat(ResultsDir(), "/", name, ".html");
  EXPECT_TRUE(WriteProfileFile(page, html).ok());
  const std::string profile_dir = absl::StrCat("/tmp/leakguard-chromium-", ::getpid());
  const std::string common = absl::StrCat(
      Chromium(), " --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run",
      " --no-default-browser-check --disable-extensions --user-data-dir=", profile_dir,
      " --host-resolver-rules='MAP * ~NOTFOUND' --virtual-time-budget=5000");
  std::string dom;
  {
    FILE* pipe =
        ::popen(absl::StrCat(common, " --dump-dom file://", page, " 2>/dev/null").c_str(), "r");
    EXPECT_NE(pipe, nullptr);
    char buffer[8192];
    size_t n;
    while (pipe != nullptr && (n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) {
      dom.append(buffer, n);
    }
    if (pipe != nullptr) ::pclose(pipe);
  }
  *screenshot = absl::StrCat(ResultsDir(), "/", name, ".png");
  ::unlink(screenshot->c_str());
  const int rc =
      std::system(absl::StrCat(common, " --window-size=1200,", height,
                               " --screenshot=", *screenshot, " file://", page, " > /dev/null 2>&1")
                      .c_str());
  EXPECT_EQ(rc, 0);
  std::system(absl::StrCat("rm -rf ", profile_dir).c_str());
  std::cout << "screenshot: " << *screenshot << "\n";
  ::testing::Test::RecordProperty(absl::StrCat(name, "_screenshot"), *screenshot);
  return dom;
}

// The width style of the flame frame whose text is `text` (HTML-escaped as
// the DOM serializes it), or -1.
double FrameWidth(const std::string& dom, const std::string& text) {
  const std::regex frame("<div class=\"lg-frame[^\"]*\"([^>]*)>([^<]*)</div>");
  for (auto it = std::sregex_iterator(dom.begin(), dom.end(), frame); it != std::sregex_iterator();
       ++it) {
    if ((*it)[2].str() != text) continue;
    std::smatch width;
    const std::string attributes = (*it)[1].str();
    if (std::regex_search(attributes, width, std::regex("width: ([0-9.]+)%"))) {
      return std::stod(width[1].str());
    }
  }
  return -1;
}

// Pixels of the screenshot that have the Python frames' warm colours
// (decoded with Python's zlib: PNG filters undone row by row).
long WarmPixels(const std::string& png) {
  Ref n = testing::Eval("warm(path)", absl::StrCat("path = '", png, "'\n", R"(
import struct, zlib
def warm(path):
    data = open(path, 'rb').read()
    assert data[:8] == b'\x89PNG\r\n\x1a\n'
    pos, idat, width = 8, b'', 0
    while pos < len(data):
        length, kind = struct.unpack('>I4s', data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b'IHDR':
            width, height, depth, ctype = struct.unpack('>IIBB', body[:10])
            assert depth == 8 and ctype in (2, 6)
            bpp = 3 if ctype == 2 else 4
        elif kind == b'IDAT':
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp
    prev = bytearray(stride)
    count = 0
    for row in range(height):
        f = raw[row * (stride + 1)]
        line = bytearray(raw[row * (stride + 1) + 1:(row + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1: line[i] = (line[i] + a) & 255
            elif f == 2: line[i] = (line[i] + b) & 255
            elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pr = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pr) & 255
        for x in range(0, stride, bpp):
            r, g, b2 = line[x], line[x + 1], line[x + 2]
            if r > 200 and 60 < g < 210 and b2 < 150 and r - b2 > 100:
                count += 1
        prev = line
    return count
)"));
  return n ? PyLong_AsLong(n.get()) : -1;
}

TEST(FlameGraphHtml, RendersFramesInHeadlessChromium) {
  if (Chromium().empty()) GTEST_SKIP() << "chromium is not installed (scripts/setup installs it)";
  const std::string html = RenderFlameGraphHtml(Sample(), "growth of app.py");
  // Self-contained: nothing to fetch.
  EXPECT_THAT(html, Not(HasSubstr(" src=")));
  EXPECT_THAT(html, Not(HasSubstr(" href=")));
  EXPECT_THAT(html, Not(HasSubstr("url(")));
  EXPECT_THAT(html, Not(HasSubstr("@import")));

  std::string png;
  const std::string dom = RenderInChromium(html, "flamegraph_test_flame", &png);
  ASSERT_THAT(dom, HasSubstr("<h1>growth of app.py</h1>"));
  EXPECT_DOUBLE_EQ(FrameWidth(dom, "all"), 100);
  EXPECT_DOUBLE_EQ(FrameWidth(dom, "main (main.py:1)"), 100);
  EXPECT_DOUBLE_EQ(FrameWidth(dom, "load (app.py:5)"), 80);
  EXPECT_DOUBLE_EQ(FrameWidth(dom, "big (app.py:8)"), 60);
  EXPECT_DOUBLE_EQ(FrameWidth(dom, "small (app.py:9)"), 20);
  EXPECT_DOUBLE_EQ(FrameWidth(dom, "malloc (libc.so.6)"), 20);
  // The hostile name is text, not markup.
  EXPECT_DOUBLE_EQ(FrameWidth(dom, "evil&lt;/script&gt;&lt;b&gt;x &amp; \"q\""), 20);
  EXPECT_THAT(dom, Not(HasSubstr("<b>x")));
  EXPECT_THAT(dom, HasSubstr("class=\"lg-frame lg-native\""));
  // The screenshot shows the frames' colours (1200 x 900 px, the frames are
  // 18 px rows across most of the width).
  EXPECT_GT(WarmPixels(png), 5000);
}

TEST(HtmlReport, WholeReportRendersInHeadlessChromium) {
  if (Chromium().empty()) GTEST_SKIP() << "chromium is not installed (scripts/setup installs it)";
  HtmlReportInput input;
  input.title = "leakguard doctor: app.py:handle";
  input.sections = {{"Verdict", "leak (20 iterations after 3 warm-up)"},
                    {"Causes", "1. unbounded_cache (confidence 0.90)\n   holder: app._user_cache"}};
  // A real Graphviz drawing when dot is installed, else a hand-made SVG.
  std::string svg;
  FILE* dot = ::popen(
      "printf 'digraph g { \"app._user_cache\" -> \"dict\" }' | dot -Tsvg 2>/dev/null", "r");
  if (dot != nullptr) {
    char buffer[4096];
    size_t n;
    while ((n = std::fread(buffer, 1, sizeof(buffer), dot)) > 0) svg.append(buffer, n);
    ::pclose(dot);
  }
  if (svg.find("<svg") == std::string::npos) {
    svg =
        "<?xml version=\"1.0\"?><svg xmlns=\"http://www.w3.org/2000/svg\"><g><title>"
        "app._user_cache</title></g></svg>";
  }
  input.svg = svg;
  input.profile = Sample();
  input.rounds = {{1, 0, 0, 0}, {2, 1 << 20, 1 << 19, 1 << 19}, {3, 2 << 20, 1 << 20, 1 << 20}};
  const std::string html = RenderHtmlReport(input);
  EXPECT_THAT(html, Not(HasSubstr("<?xml")));
  EXPECT_THAT(html, Not(HasSubstr("<!DOCTYPE svg")));

  std::string png;
  const std::string dom = RenderInChromium(html, "flamegraph_test_report", &png, 1400);
  EXPECT_THAT(dom, HasSubstr("<h2>Verdict</h2>"));
  EXPECT_THAT(dom, HasSubstr("1. unbounded_cache (confidence 0.90)\n   holder: app._user_cache"));
  EXPECT_THAT(dom, HasSubstr("<title>app._user_cache</title>"));
  EXPECT_THAT(dom, HasSubstr("data-series=\"rss\""));
  EXPECT_THAT(dom, HasSubstr("data-series=\"native\""));
  EXPECT_THAT(dom, HasSubstr("<h2>Growth flame graph</h2>"));
  EXPECT_DOUBLE_EQ(FrameWidth(dom, "big (app.py:8)"), 60);
  EXPECT_GT(WarmPixels(png), 5000);
}

}  // namespace
}  // namespace leakguard
