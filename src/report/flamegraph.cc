// Flame graphs: collapsed stacks, speedscope JSON, and self-contained HTML
// pages (an icicle flame graph drawn by inline JS, the rounds as inline SVG).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "leakguard/process.h"
#include "leakguard/profile.h"
#include "leakguard/report.h"
#include "leakguard/version.h"

namespace leakguard {
namespace {

// A JSON string literal (JsonQuote: valid UTF-8, control characters
// escaped) that is also safe inside an HTML <script> element: '<', '>' and
// '&' become \u escapes, as do U+2028 / U+2029 (line breaks to JavaScript).
std::string JsonString(const std::string& text) {
  const std::string json = JsonQuote(text);
  std::string out;
  out.reserve(json.size());
  for (size_t i = 0; i < json.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(json[i]);
    if (c == '<' || c == '>' || c == '&') {
      out += absl::StrFormat("\\u%04x", c);
    } else if (c == 0xE2 && i + 2 < json.size() &&
               static_cast<unsigned char>(json[i + 1]) == 0x80 &&
               (static_cast<unsigned char>(json[i + 2]) == 0xA8 ||
                static_cast<unsigned char>(json[i + 2]) == 0xA9)) {
      out += static_cast<unsigned char>(json[i + 2]) == 0xA8 ? "\\u2028" : "\\u2029";
      i += 2;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::string HtmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// A frame name for the collapsed format: ';' separates frames and a line
// break ends the record.
std::string CollapsedName(const ProfileFrame& frame) {
  std::string name = frame.DisplayName();
  for (char& c : name) {
    if (c == ';') c = ',';
    if (c == '\n' || c == '\r') c = ' ';
  }
  return name;
}

// The samples merged into a tree (a trie over display names, root first).
struct FlameNode {
  std::string name;
  bool native = false;
  int64_t value = 0;
  std::vector<std::unique_ptr<FlameNode>> children;
  std::map<std::pair<std::string, bool>, FlameNode*> index;

  FlameNode* Child(const std::string& child_name, bool child_native) {
    auto found = index.find({child_name, child_native});
    if (found != index.end()) return found->second;
    children.push_back(std::make_unique<FlameNode>());
    FlameNode* child = children.back().get();
    child->name = child_name;
    child->native = child_native;
    index[{child_name, child_native}] = child;
    return child;
  }
};

FlameNode BuildTree(const Profile& profile) {
  FlameNode root;
  root.name = "all";
  for (const ProfileSample& sample : profile.samples) {
    if (sample.bytes <= 0) continue;
    root.value += sample.bytes;
    FlameNode* node = &root;
    for (const ProfileFrame& frame : sample.stack) {
      node = node->Child(frame.DisplayName(), frame.kind == FrameKind::kNative);
      node->value += sample.bytes;
    }
  }
  return root;
}

// {"n": name, "v": bytes, "k": "native" (native only), "c": [children]},
// children largest first.
void TreeJson(const FlameNode& node, std::string* out) {
  absl::StrAppend(out, "{\"n\":", JsonString(node.name), ",\"v\":", node.value);
  if (node.native) absl::StrAppend(out, ",\"k\":\"native\"");
  if (!node.children.empty()) {
    std::vector<const FlameNode*> sorted;
    for (const auto& child : node.children) sorted.push_back(child.get());
    std::stable_sort(sorted.begin(), sorted.end(),
                     [](const FlameNode* a, const FlameNode* b) { return a->value > b->value; });
    *out += ",\"c\":[";
    for (size_t i = 0; i < sorted.size(); ++i) {
      if (i > 0) *out += ',';
      TreeJson(*sorted[i], out);
    }
    *out += ']';
  }
  *out += '}';
}

size_t CountStacks(const Profile& profile) {
  size_t n = 0;
  for (const ProfileSample& sample : profile.samples) n += sample.bytes > 0 ? 1 : 0;
  return n;
}

constexpr char kStyle[] = R"css(
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#222;background:#fff}
h1{font-size:22px;margin:0 0 16px}h2{font-size:17px;margin:24px 0 8px}
pre{background:#f6f6f6;border:1px solid #ddd;padding:8px 12px;overflow:auto;font:12px/1.45 ui-monospace,monospace}
.lg-note{color:#555;margin:4px 0 8px}
.lg-flame{position:relative;width:100%;min-height:18px;font:12px/18px ui-monospace,monospace}
.lg-frame{position:absolute;height:17px;box-sizing:border-box;border:1px solid #fff;border-width:0 1px 1px 0;
overflow:hidden;white-space:nowrap;text-overflow:ellipsis;padding:0 3px;cursor:pointer;color:#111}
.lg-frame:hover{filter:brightness(0.85)}
.lg-graph svg{max-width:100%;height:auto}
.lg-plot text{font:11px system-ui,sans-serif;fill:#333}
)css";

constexpr char kScript[] = R"js(
(function () {
  function fmt(b) {
    var u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'], i = 0, v = b;
    while (Math.abs(v) >= 1024 && i < u.length - 1) { v /= 1024; i++; }
    return (i ? v.toFixed(1) : String(v)) + ' ' + u[i];
  }
  function color(n) {
    var h = 0;
    for (var i = 0; i < n.n.length; i++) h = (h * 31 + n.n.charCodeAt(i)) >>> 0;
    if (n.k === 'native') return 'hsl(' + (190 + h % 40) + ',55%,' + (62 + h % 14) + '%)';
    return 'hsl(' + (8 + h % 42) + ',82%,' + (58 + h % 14) + '%)';
  }
  function link(n, p) { n.p = p; (n.c || []).forEach(function (c) { link(c, n); }); }
  function draw(box, all, focus) {
    var H = 18, depth = 0;
    box.textContent = '';
    function cell(n, x, w, d) {
      var e = document.createElement('div');
      e.className = 'lg-frame' + (n.k === 'native' ? ' lg-native' : '');
      e.style.left = x + '%';
      e.style.width = w + '%';
      e.style.top = (d * H) + 'px';
      e.style.background = color(n);
      e.textContent = n.n;
      e.title = n.n + '\n' + fmt(n.v) + ' (' + (100 * n.v / all.v).toFixed(2) + '% of ' +
          fmt(all.v) + ')';
      e.onclick = function () { draw(box, all, n === focus ? (n.p || all) : n); };
      box.appendChild(e);
      depth = Math.max(depth, d + 1);
    }
    function children(n, x, w, d) {
      var cx = x;
      (n.c || []).forEach(function (c) {
        var cw = w * c.v / n.v;
        if (cw >= 0.05) { cell(c, cx, cw, d); children(c, cx, cw, d + 1); }
        cx += cw;
      });
    }
    var chain = [];
    for (var p = focus; p; p = p.p) chain.unshift(p);
    chain.forEach(function (n, d) { cell(n, 0, 100, d); });
    children(focus, 0, 100, chain.length);
    box.style.height = (depth * H) + 'px';
  }
  var boxes = document.querySelectorAll('.lg-flame');
  for (var i = 0; i < boxes.length; i++) {
    var box = boxes[i];
    var data = JSON.parse(document.getElementById(box.getAttribute('data-json')).textContent);
    link(data, null);
    draw(box, data, data);
  }
})();
)js";

std::string FlameSection(const Profile& profile, const std::string& id) {
  if (CountStacks(profile) == 0) {
    return absl::StrCat("<p class=\"lg-note\">",
                        profile.is_growth ? "Nothing grew" : "Nothing is allocated",
                        ": no stacks to draw.</p>\n");
  }
  const FlameNode tree = BuildTree(profile);
  std::string json;
  TreeJson(tree, &json);
  std::string out = absl::StrCat(
      "<p class=\"lg-note\">", HtmlEscape(profile.is_growth ? "Growth" : "Live heap"), ": ",
      HtmlEscape(FormatBytes(tree.value)), " in ", CountStacks(profile),
      " stacks; the root is on top, each frame's width is its share of the bytes. Click a "
      "frame to zoom in, click it again to go back up; hover for bytes.</p>\n");
  absl::StrAppend(&out, "<div class=\"lg-flame\" id=\"", id, "\" data-json=\"", id,
                  "-data\"></div>\n<script type=\"application/json\" id=\"", id, "-data\">", json,
                  "</script>\n");
  return out;
}

std::string PageStart(const std::string& title) {
  return absl::StrCat(
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
      "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\n<title>",
      HtmlEscape(title), "</title>\n<style>", kStyle, "</style>\n</head>\n<body>\n<h1>",
      HtmlEscape(title), "</h1>\n");
}

std::string PageEnd() {
  return absl::StrCat("<p class=\"lg-note\">Written by leakguard ", Version(), ".</p>\n<script>",
                      kScript, "</script>\n</body>\n</html>\n");
}

// Everything from the first "<svg" on (drops an XML prolog, a DOCTYPE and
// comments before it); "" when there is no <svg element.
std::string SvgBody(const std::string& svg) {
  const size_t start = svg.find("<svg");
  if (start == std::string::npos) return "";
  return svg.substr(start);
}

// Ticks for [lo, hi]: about `n` round steps (1, 2, 5 times a power of ten,
// or of 1024 for bytes).
std::vector<double> Ticks(double lo, double hi, int n, bool bytes) {
  std::vector<double> ticks;
  if (hi <= lo) return {lo};
  const double raw = (hi - lo) / n;
  double base = 1;
  if (bytes) {
    while (base * 1024 <= raw) base *= 1024;
  } else {
    // Whole steps only (rounds are integers).
    base = std::max(1.0, std::pow(10.0, std::floor(std::log10(raw))));
  }
  double step = base;
  for (double m : {1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0}) {
    step = base * m;
    if (step >= raw) break;
  }
  for (double t = std::ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) {
    ticks.push_back(t);
  }
  return ticks;
}

}  // namespace

std::string RenderCollapsed(const Profile& profile) {
  std::map<std::string, int64_t> stacks;
  for (const ProfileSample& sample : profile.samples) {
    if (sample.bytes <= 0 || sample.stack.empty()) continue;
    std::string key;
    for (size_t i = 0; i < sample.stack.size(); ++i) {
      if (i > 0) key += ';';
      key += CollapsedName(sample.stack[i]);
    }
    stacks[key] += sample.bytes;
  }
  std::string out;
  for (const auto& [stack, bytes] : stacks) absl::StrAppend(&out, stack, " ", bytes, "\n");
  return out;
}

std::string RenderSpeedscope(const Profile& profile) {
  std::map<std::pair<std::string, std::pair<std::string, int64_t>>, size_t> frame_index;
  std::string frames;
  std::string samples;
  std::string weights;
  int64_t total = 0;
  size_t count = 0;
  for (const ProfileSample& sample : profile.samples) {
    if (sample.bytes <= 0 || sample.stack.empty()) continue;
    std::string stack;
    for (const ProfileFrame& frame : sample.stack) {
      const std::string name = frame.DisplayName();
      auto [it, inserted] = frame_index.emplace(
          std::make_pair(name, std::make_pair(frame.file, frame.line)), frame_index.size());
      if (inserted) {
        if (!frames.empty()) frames += ',';
        absl::StrAppend(&frames, "{\"name\":", JsonString(name));
        if (!frame.file.empty()) absl::StrAppend(&frames, ",\"file\":", JsonString(frame.file));
        if (frame.line > 0) absl::StrAppend(&frames, ",\"line\":", frame.line);
        frames += '}';
      }
      if (!stack.empty()) stack += ',';
      absl::StrAppend(&stack, it->second);
    }
    if (count++ > 0) {
      samples += ',';
      weights += ',';
    }
    absl::StrAppend(&samples, "[", stack, "]");
    absl::StrAppend(&weights, sample.bytes);
    total += sample.bytes;
  }
  const std::string name = profile.is_growth ? "leakguard growth" : "leakguard heap";
  return absl::StrCat("{\"$schema\":\"https://www.speedscope.app/file-format-schema.json\",",
                      "\"shared\":{\"frames\":[", frames, "]},",
                      "\"profiles\":[{\"type\":\"sampled\",\"name\":", JsonString(profile.name),
                      ",\"unit\":\"bytes\",\"startValue\":0,\"endValue\":", total, ",\"samples\":[",
                      samples, "],\"weights\":[", weights, "]}],", "\"name\":", JsonString(name),
                      ",\"activeProfileIndex\":0,\"exporter\":",
                      JsonString(absl::StrCat("leakguard ", Version())), "}");
}

std::string RenderRoundsSvg(const std::vector<RoundPoint>& rounds, std::string_view unit) {
  if (rounds.size() < 2) return "";
  constexpr double kWidth = 760, kHeight = 280, kLeft = 80, kRight = 130, kTop = 16, kBottom = 36;
  const double plot_w = kWidth - kLeft - kRight;
  const double plot_h = kHeight - kTop - kBottom;
  double x_lo = static_cast<double>(rounds.front().round);
  double x_hi = x_lo;
  double y_lo = 0;
  double y_hi = 0;
  for (const RoundPoint& p : rounds) {
    x_lo = std::min(x_lo, static_cast<double>(p.round));
    x_hi = std::max(x_hi, static_cast<double>(p.round));
    for (std::optional<int64_t> v :
         {std::optional<int64_t>(p.rss_bytes), p.traced_bytes, p.native_bytes}) {
      if (!v) continue;
      y_lo = std::min(y_lo, static_cast<double>(*v));
      y_hi = std::max(y_hi, static_cast<double>(*v));
    }
  }
  if (x_hi == x_lo) x_hi = x_lo + 1;
  if (y_hi == y_lo) y_hi = y_lo + 1;
  auto x_of = [&](double x) { return kLeft + (x - x_lo) / (x_hi - x_lo) * plot_w; };
  auto y_of = [&](double y) { return kTop + (1 - (y - y_lo) / (y_hi - y_lo)) * plot_h; };

  std::string out = absl::StrFormat(
      "<svg class=\"lg-plot\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" "
      "viewBox=\"0 0 %g %g\" role=\"img\"><title>Growth per %s since the baseline</title>\n",
      kWidth, kHeight, kWidth, kHeight, HtmlEscape(unit));
  for (double t : Ticks(y_lo, y_hi, 5, true)) {
    absl::StrAppendFormat(&out,
                          "<line x1=\"%g\" x2=\"%g\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>"
                          "<text x=\"%g\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
                          kLeft, kLeft + plot_w, y_of(t), y_of(t), kLeft - 6, y_of(t) + 4,
                          HtmlEscape(FormatBytes(static_cast<int64_t>(t))));
  }
  for (double t : Ticks(x_lo, x_hi, 8, false)) {
    if (t != std::floor(t)) continue;
    absl::StrAppendFormat(&out, "<text x=\"%.1f\" y=\"%g\" text-anchor=\"middle\">%d</text>\n",
                          x_of(t), kTop + plot_h + 16, static_cast<int64_t>(t));
  }
  absl::StrAppendFormat(&out,
                        "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"none\" "
                        "stroke=\"#999\"/>\n<text x=\"%g\" y=\"%g\" "
                        "text-anchor=\"middle\">%s</text>\n",
                        kLeft, kTop, plot_w, plot_h, kLeft + plot_w / 2, kHeight - 4,
                        HtmlEscape(unit));
  auto polyline = [&](const char* name, const char* color, auto get) {
    std::string points;
    for (const RoundPoint& p : rounds) {
      const std::optional<int64_t> v = get(p);
      if (!v) continue;
      absl::StrAppendFormat(&points, "%s%.1f,%.1f", points.empty() ? "" : " ",
                            x_of(static_cast<double>(p.round)), y_of(static_cast<double>(*v)));
    }
    if (points.empty()) return false;
    absl::StrAppendFormat(&out,
                          "<polyline class=\"lg-series\" data-series=\"%s\" fill=\"none\" "
                          "stroke=\"%s\" stroke-width=\"2\" points=\"%s\"/>\n",
                          name, color, points);
    return true;
  };
  int legend = 0;
  auto legend_entry = [&](const char* name, const char* color) {
    const double y = kTop + 12 + 18 * legend++;
    absl::StrAppendFormat(&out,
                          "<line x1=\"%g\" x2=\"%g\" y1=\"%g\" y2=\"%g\" stroke=\"%s\" "
                          "stroke-width=\"2\"/><text x=\"%g\" y=\"%g\">%s</text>\n",
                          kLeft + plot_w + 12, kLeft + plot_w + 32, y, y, color,
                          kLeft + plot_w + 38, y + 4, name);
  };
  if (polyline("rss", "#d62728",
               [](const RoundPoint& p) { return std::optional<int64_t>(p.rss_bytes); })) {
    legend_entry("RSS", "#d62728");
  }
  if (polyline("traced", "#1f77b4", [](const RoundPoint& p) { return p.traced_bytes; })) {
    legend_entry("Python traced", "#1f77b4");
  }
  if (polyline("native", "#2ca02c", [](const RoundPoint& p) { return p.native_bytes; })) {
    legend_entry("native", "#2ca02c");
  }
  out += "</svg>\n";
  return out;
}

std::string RenderFlameGraphHtml(const Profile& profile, const std::string& title) {
  const std::string heading = title.empty() ? (profile.is_growth ? "leakguard: growth flame graph"
                                                                 : "leakguard: heap flame graph")
                                            : title;
  return absl::StrCat(PageStart(heading), FlameSection(profile, "lg-flame-0"), PageEnd());
}

std::string RenderHtmlReport(const HtmlReportInput& input) {
  std::string out = PageStart(input.title);
  for (const HtmlSection& section : input.sections) {
    absl::StrAppend(&out, "<h2>", HtmlEscape(section.heading), "</h2>\n<pre>",
                    HtmlEscape(section.text), "</pre>\n");
  }
  const std::string plot = RenderRoundsSvg(input.rounds, input.rounds_unit);
  if (!plot.empty()) {
    absl::StrAppend(&out, "<h2>", HtmlEscape(input.rounds_heading),
                    "</h2>\n<p class=\"lg-note\">Growth since the baseline, per ",
                    HtmlEscape(input.rounds_unit), ", ", input.rounds.size(), " ",
                    HtmlEscape(input.rounds_unit), "s.</p>\n<div class=\"lg-rounds\">", plot,
                    "</div>\n");
  }
  const std::string svg = SvgBody(input.svg);
  if (!svg.empty()) {
    absl::StrAppend(&out, "<h2>", HtmlEscape(input.svg_heading), "</h2>\n<div class=\"lg-graph\">",
                    svg, "</div>\n");
  } else if (!input.svg.empty()) {
    absl::StrAppend(&out, "<h2>", HtmlEscape(input.svg_heading), "</h2>\n<pre>",
                    HtmlEscape(input.svg), "</pre>\n");
  }
  if (CountStacks(input.profile) > 0) {
    absl::StrAppend(&out, "<h2>",
                    input.profile.is_growth ? "Growth flame graph" : "Heap flame graph", "</h2>\n",
                    FlameSection(input.profile, "lg-flame-0"));
  }
  out += PageEnd();
  return out;
}

}  // namespace leakguard
