// libFuzzer target: leakguard's JSON string writer (JsonQuote in
// src/report/report.cc, which every report's JSON goes through) fed
// arbitrary bytes, and RenderJson() of a report whose text fields are those
// bytes.
//
// Checked on every input: the output is one JSON string literal (quotes,
// escapes, no raw control characters, \u escapes that are not lone
// surrogates) in valid UTF-8 (no overlong forms, no encoded surrogates,
// nothing above U+10FFFF); decoding it gives the input back exactly when
// the input is valid UTF-8; a whole report renders as valid UTF-8. Any
// violation aborts (a finding).

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "leakguard/report.h"

namespace {

[[noreturn]] void Fail(const char* what, std::string_view out) {
  std::fprintf(stderr, "JsonQuote: %s in output of %zu bytes\n", what, out.size());
  std::abort();
}

// Length of the valid UTF-8 sequence at s[i], or 0 (strict: RFC 3629).
std::size_t Utf8SequenceAt(std::string_view s, std::size_t i, char32_t* cp) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char b0 = b(0);
  if (b0 < 0x80) {
    *cp = b0;
    return 1;
  }
  std::size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    n = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    n = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    n = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  if (b(1) < lo || b(1) > hi) return 0;
  for (std::size_t k = 2; k < n; ++k) {
    if ((b(k) & 0xC0) != 0x80) return 0;
  }
  char32_t v = b0 & (n == 2 ? 0x1F : n == 3 ? 0x0F : 0x07);
  for (std::size_t k = 1; k < n; ++k) v = (v << 6) | (b(k) & 0x3F);
  *cp = v;
  return n;
}

bool IsValidUtf8(std::string_view s) {
  char32_t cp = 0;
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t n = Utf8SequenceAt(s, i, &cp);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

void AppendUtf8(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::optional<char32_t> Hex4(std::string_view s, std::size_t i) {
  if (i + 4 > s.size()) return std::nullopt;
  char32_t v = 0;
  for (std::size_t k = 0; k < 4; ++k) {
    const char c = s[i + k];
    int d = -1;
    if (c >= '0' && c <= '9') d = c - '0';
    if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
    if (d < 0) return std::nullopt;
    v = v * 16 + static_cast<char32_t>(d);
  }
  return v;
}

// Parses one JSON string literal (RFC 8259) that must be all of `out`;
// returns its value as UTF-8.
std::string ParseJsonString(std::string_view out) {
  if (!IsValidUtf8(out)) Fail("invalid UTF-8", out);
  if (out.size() < 2 || out.front() != '"' || out.back() != '"') Fail("no quotes", out);
  std::string value;
  for (std::size_t i = 1; i + 1 < out.size();) {
    const auto c = static_cast<unsigned char>(out[i]);
    if (c < 0x20) Fail("raw control character", out);
    if (c == '"') Fail("unescaped quote", out);
    if (c != '\\') {
      value.push_back(static_cast<char>(c));
      ++i;
      continue;
    }
    if (i + 2 >= out.size()) Fail("escape at the end", out);
    const char e = out[i + 1];
    i += 2;
    switch (e) {
      case '"':
        value.push_back('"');
        break;
      case '\\':
        value.push_back('\\');
        break;
      case '/':
        value.push_back('/');
        break;
      case 'b':
        value.push_back('\b');
        break;
      case 'f':
        value.push_back('\f');
        break;
      case 'n':
        value.push_back('\n');
        break;
      case 'r':
        value.push_back('\r');
        break;
      case 't':
        value.push_back('\t');
        break;
      case 'u': {
        std::optional<char32_t> u = Hex4(out, i);
        if (!u) Fail("bad \\u escape", out);
        i += 4;
        char32_t cp = *u;
        if (cp >= 0xDC00 && cp <= 0xDFFF) Fail("lone low surrogate escape", out);
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          std::optional<char32_t> low = (i + 6 <= out.size() && out[i] == '\\' && out[i + 1] == 'u')
                                            ? Hex4(out, i + 2)
                                            : std::nullopt;
          if (!low || *low < 0xDC00 || *low > 0xDFFF) Fail("lone high surrogate escape", out);
          cp = 0x10000 + ((cp - 0xD800) << 10) + (*low - 0xDC00);
          i += 6;
        }
        AppendUtf8(cp, &value);
        break;
      }
      default:
        Fail("unknown escape", out);
    }
  }
  return value;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const std::string quoted = leakguard::JsonQuote(input);
  const std::string value = ParseJsonString(quoted);
  if (IsValidUtf8(input) && value != input) Fail("round trip lost text", quoted);

  leakguard::Report report;
  report.source = "fuzz";
  report.label = input;
  report.summary = input;
  report.notes = {input, input.substr(0, size / 2)};
  report.metrics = {{input, 1}};
  report.top_lines.push_back({});
  report.top_lines.back().file = input;
  const std::string json = leakguard::RenderJson(report);
  if (!IsValidUtf8(json)) Fail("RenderJson wrote invalid UTF-8", json);
  return 0;
}
