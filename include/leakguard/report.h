// leakguard/report.h
//
// Report: what every guard, tracker, detector and check hands to a sink.
// One plain value type, rendered the same way everywhere: as text for
// people (RenderText) and as one JSON object for machines (RenderJson).
//
//   Report r;
//   r.source = "memory_guard";
//   r.label = "plugin:render";
//   r.summary = "grew 12.0 MiB (threshold 10.0 MiB)";
//   r.metrics = {{"rss_bytes", 12582912}, {"fds", 0}};
//   std::fputs(RenderText(r).c_str(), stderr);
//
// Pure C++: no Python, no GIL needed. Thread-compatible (a Report is a
// value; share it read-only or copy it).

#ifndef LEAKGUARD_REPORT_H_
#define LEAKGUARD_REPORT_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "leakguard/export.h"

namespace leakguard {

/// How loud a report is.
enum class Severity {
  kInfo,     ///< Asked for (always-report mode, periodic statistics).
  kWarning,  ///< A threshold was passed or a leak was found.
};

/// "info" or "warning".
LEAKGUARD_EXPORT const char* SeverityName(Severity severity) noexcept;

/// Growth attributed to one source line (or file, when grouped by file).
struct LineGrowth {
  /// Source file as Python reports it.
  std::string file;
  /// Line number; 0 when grouped by file.
  int line = 0;
  /// Bytes gained (negative: freed) over the measured span.
  int64_t size_diff = 0;
  /// Blocks gained (negative: freed).
  int64_t count_diff = 0;
  /// Bytes held at the end of the span.
  int64_t size = 0;
};

/// Growth of the gc-tracked objects of one type (LeakDetector's on-demand
/// report: since the detector's baseline).
struct TypeCountDiff {
  /// The type, "<__module__>.<__name__>" ("builtins.dict", "app.Record"),
  /// or just the name when `__module__` is empty or missing.
  std::string name;
  /// Tracked objects of that type at the end of the span.
  int64_t count = 0;
  /// Objects gained (negative: lost) over the span.
  int64_t count_diff = 0;
};

/// A report from one of leakguard's watchers.
struct Report {
  /// Which watcher made it: "memory_guard", "request_tracker",
  /// "leak_detector", "leak_check".
  std::string source;
  /// The user's label for the work measured (may be empty).
  std::string label;
  /// Info or warning.
  Severity severity = Severity::kInfo;
  /// One line for people: what happened, in numbers.
  std::string summary;
  /// When the report was made.
  absl::Time time = absl::UnixEpoch();
  /// Length of the measured span.
  absl::Duration elapsed = absl::ZeroDuration();
  /// Named integer measurements, in the order they should be shown
  /// ("rss_bytes", "traced_bytes", "blocks", "fds", "threads", ...). Names
  /// ending in "_bytes" are rendered as sizes in text.
  std::vector<std::pair<std::string, int64_t>> metrics;
  /// Lines that grew the most, largest first.
  std::vector<LineGrowth> top_lines;
  /// Types whose gc-tracked objects grew the most in number, largest growth
  /// first (only LeakDetector's on-demand report fills it; empty elsewhere).
  std::vector<TypeCountDiff> type_growth;
  /// Further findings in words ("native growth: RSS +40 MiB while the Python
  /// heap is flat").
  std::vector<std::string> notes;
};

/// The report as a few lines of text (ending in a newline).
LEAKGUARD_EXPORT std::string RenderText(const Report& report);

/// The report as one JSON object on one line (no trailing newline), with
/// keys source, label, severity, summary, time (RFC 3339), elapsed_s,
/// metrics (object), top_lines (array of {file, line, size_diff,
/// count_diff, size}), type_growth (array of {name, count, count_diff};
/// empty but present when there is none) and notes (array of strings).
LEAKGUARD_EXPORT std::string RenderJson(const Report& report);

/// `text` as a JSON string literal, quotes included: well-formed UTF-8 is
/// passed through, control characters are escaped, and every byte that is
/// not part of a well-formed UTF-8 sequence (a Latin-1 or surrogate-escaped
/// file name, an overlong form, an encoded surrogate, a cut sequence)
/// becomes `\ufffd`, so the result is always valid UTF-8 JSON.
LEAKGUARD_EXPORT std::string JsonQuote(const std::string& text);

}  // namespace leakguard

#endif  // LEAKGUARD_REPORT_H_
