#include "leakguard/report.h"

#include <cstdint>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "leakguard/process.h"
#include "python/json_text.h"

namespace leakguard {
namespace {

std::string SignedMetric(const std::string& name, int64_t value) {
  const char* sign = value >= 0 ? "+" : "";
  if (absl::EndsWith(name, "_bytes")) {
    return absl::StrCat(sign, FormatBytes(value));
  }
  return absl::StrCat(sign, value);
}

std::string MetricLabel(const std::string& name) {
  absl::string_view label = name;
  if (absl::EndsWith(label, "_bytes")) label.remove_suffix(6);
  return std::string(label);
}

}  // namespace

const char* SeverityName(Severity severity) noexcept {
  return severity == Severity::kWarning ? "warning" : "info";
}

std::string RenderText(const Report& report) {
  std::string out = absl::StrCat("leakguard [", SeverityName(report.severity), "] ", report.source);
  if (!report.label.empty()) absl::StrAppend(&out, " '", report.label, "'");
  absl::StrAppend(&out, ": ", report.summary);
  if (report.elapsed > absl::ZeroDuration()) {
    absl::StrAppendFormat(&out, " (%.3f s)", absl::ToDoubleSeconds(report.elapsed));
  }
  absl::StrAppend(&out, "\n");
  if (!report.metrics.empty()) {
    absl::StrAppend(&out, " ");
    for (const auto& [name, value] : report.metrics) {
      absl::StrAppend(&out, " ", MetricLabel(name), " ", SignedMetric(name, value));
    }
    absl::StrAppend(&out, "\n");
  }
  if (!report.top_lines.empty()) {
    absl::StrAppend(&out, "  top lines:\n");
    for (const LineGrowth& line : report.top_lines) {
      absl::StrAppend(&out, "    ", line.file);
      if (line.line > 0) absl::StrAppend(&out, ":", line.line);
      absl::StrAppendFormat(&out, "  %s (%s blocks), now %s\n",
                            SignedMetric("size_bytes", line.size_diff),
                            SignedMetric("count", line.count_diff), FormatBytes(line.size));
    }
  }
  if (!report.type_growth.empty()) {
    absl::StrAppend(&out, "  type growth:\n");
    for (const TypeCountDiff& type : report.type_growth) {
      absl::StrAppend(&out, "    ", type.name, "  ", SignedMetric("count", type.count_diff),
                      " objects, now ", type.count, "\n");
    }
  }
  for (const std::string& note : report.notes) {
    absl::StrAppend(&out, "  note: ", note, "\n");
  }
  return out;
}

std::string JsonQuote(const std::string& text) {
  std::string out;
  internal::AppendJsonQuoted(&out, text);
  return out;
}

std::string RenderJson(const Report& report) {
  std::string out = absl::StrCat(
      "{\"source\":", JsonQuote(report.source), ",\"label\":", JsonQuote(report.label),
      ",\"severity\":\"", SeverityName(report.severity), "\"",
      ",\"summary\":", JsonQuote(report.summary), ",\"time\":",
      JsonQuote(absl::FormatTime(absl::RFC3339_full, report.time, absl::UTCTimeZone())),
      ",\"elapsed_s\":", absl::StrFormat("%.6f", absl::ToDoubleSeconds(report.elapsed)),
      ",\"metrics\":{");
  bool first = true;
  for (const auto& [name, value] : report.metrics) {
    absl::StrAppend(&out, first ? "" : ",", JsonQuote(name), ":", value);
    first = false;
  }
  absl::StrAppend(&out, "},\"top_lines\":[");
  first = true;
  for (const LineGrowth& line : report.top_lines) {
    absl::StrAppend(&out, first ? "" : ",", "{\"file\":", JsonQuote(line.file),
                    ",\"line\":", line.line, ",\"size_diff\":", line.size_diff,
                    ",\"count_diff\":", line.count_diff, ",\"size\":", line.size, "}");
    first = false;
  }
  absl::StrAppend(&out, "],\"type_growth\":[");
  first = true;
  for (const TypeCountDiff& type : report.type_growth) {
    absl::StrAppend(&out, first ? "" : ",", "{\"name\":", JsonQuote(type.name),
                    ",\"count\":", type.count, ",\"count_diff\":", type.count_diff, "}");
    first = false;
  }
  absl::StrAppend(&out, "],\"notes\":[");
  first = true;
  for (const std::string& note : report.notes) {
    absl::StrAppend(&out, first ? "" : ",", JsonQuote(note));
    first = false;
  }
  absl::StrAppend(&out, "]}");
  return out;
}

}  // namespace leakguard
