// fnmatch.fnmatch() as CPython 3.10+ has it on POSIX, for tracemalloc
// filters that run without the GIL.
//
// Python translates the pattern into a regular expression
// (Lib/fnmatch.py's translate()) and lets `re` parse it. The bracket rules
// are subtle (a leading ']' is a member, '!' negates, ranges whose ends are
// reversed are dropped, '\' is an ordinary character), so this file ports
// both steps literally: translate() builds the same set text Python builds,
// and ParseSet() reads it the way re's parser reads a set. Every other piece
// matches exactly one character, so '*' needs only the classic
// backtrack-to-the-last-star matcher. Matching is on code points.
//
// CPython 3.9's translate() differs on bracket expressions with a reversed
// range (for example "[z-a]"), where it builds a regex that `re` rejects;
// on every pattern 3.9 accepts, the randomized test in tracemalloc_test
// finds no difference. 3.10 to 3.13 agree with this file.

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "leakguard/tracemalloc.h"
#include "probes/tracemalloc_internal.h"

namespace leakguard::internal {
namespace {

using Text = std::u32string;

// UTF-8 (with surrogates allowed, as "surrogatepass" writes them) to code
// points.
absl::StatusOr<Text> DecodeUtf8(std::string_view s) {
  Text out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    const auto b0 = static_cast<unsigned char>(s[i]);
    if (b0 < 0x80) {
      out.push_back(b0);
      ++i;
      continue;
    }
    int extra = 0;
    char32_t cp = 0;
    char32_t min = 0;
    if ((b0 & 0xE0) == 0xC0) {
      extra = 1;
      cp = b0 & 0x1F;
      min = 0x80;
    } else if ((b0 & 0xF0) == 0xE0) {
      extra = 2;
      cp = b0 & 0x0F;
      min = 0x800;
    } else if ((b0 & 0xF8) == 0xF0) {
      extra = 3;
      cp = b0 & 0x07;
      min = 0x10000;
    } else {
      return absl::InvalidArgumentError("text is not valid UTF-8");
    }
    if (s.size() - i <= static_cast<std::size_t>(extra)) {
      return absl::InvalidArgumentError("text is not valid UTF-8 (truncated)");
    }
    for (int k = 1; k <= extra; ++k) {
      const auto b = static_cast<unsigned char>(s[i + static_cast<std::size_t>(k)]);
      if ((b & 0xC0) != 0x80) {
        return absl::InvalidArgumentError("text is not valid UTF-8");
      }
      cp = (cp << 6) | (b & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF) {
      return absl::InvalidArgumentError("text is not valid UTF-8");
    }
    out.push_back(cp);
    i += static_cast<std::size_t>(extra) + 1;
  }
  return out;
}

// One element of a translated pattern.
struct Token {
  enum Type : std::uint8_t { kLiteral, kAny, kStar, kSet, kNever };
  Type type;
  char32_t c = 0;       // kLiteral
  std::size_t set = 0;  // kSet: index into Pattern::sets
};

struct CharSet {
  bool negate = false;
  std::vector<std::pair<char32_t, char32_t>> ranges;  // inclusive

  bool Contains(char32_t c) const {
    bool in = false;
    for (const auto& [lo, hi] : ranges) {
      if (lo <= c && c <= hi) {
        in = true;
        break;
      }
    }
    return in != negate;
  }
};

struct Pattern {
  std::vector<Token> tokens;
  std::vector<CharSet> sets;
};

bool IsAsciiAlnum(char32_t c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// Reads the body of a regex set "[...]" (without the '[', with the ']') as
// re._parser does, for the subset of syntax translate() produces.
absl::StatusOr<CharSet> ParseSet(const Text& body) {
  CharSet set;
  std::size_t pos = 0;
  const std::size_t n = body.size();
  // One item: a literal character, or "\X" for a non-alphanumeric X.
  auto get = [&](char32_t& out, bool& is_close) -> absl::Status {
    if (pos >= n) return absl::InvalidArgumentError("unterminated character set");
    char32_t c = body[pos++];
    is_close = false;
    if (c == '\\') {
      if (pos >= n) return absl::InvalidArgumentError("bad escape");
      c = body[pos++];
      if (IsAsciiAlnum(c)) return absl::InvalidArgumentError("bad escape");
    } else if (c == ']') {
      is_close = true;
    }
    out = c;
    return absl::OkStatus();
  };
  if (pos < n && body[pos] == '^') {
    set.negate = true;
    ++pos;
  }
  bool first = true;
  while (true) {
    char32_t code1 = 0;
    bool close = false;
    if (absl::Status s = get(code1, close); !s.ok()) return s;
    if (close && !first) break;  // a ']' first is a member
    first = false;
    if (pos < n && body[pos] == '-') {
      ++pos;
      char32_t code2 = 0;
      bool close2 = false;
      if (absl::Status s = get(code2, close2); !s.ok()) return s;
      if (close2) {
        set.ranges.emplace_back(code1, code1);
        set.ranges.emplace_back(U'-', U'-');
        break;
      }
      if (code2 < code1) return absl::InvalidArgumentError("bad character range");
      set.ranges.emplace_back(code1, code2);
    } else {
      set.ranges.emplace_back(code1, code1);
    }
  }
  if (pos != n) return absl::InvalidArgumentError("bad character set");
  return set;
}

// s.replace('\\', r'\\'), optionally also .replace('-', r'\-').
Text Escape(const Text& s, bool hyphens) {
  Text out;
  for (char32_t c : s) {
    if (c == '\\' || (hyphens && c == '-')) out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

// Lib/fnmatch.py's translate(), building tokens instead of regex text.
absl::StatusOr<Pattern> Translate(const Text& pat) {
  Pattern out;
  std::size_t i = 0;
  const std::size_t n = pat.size();
  while (i < n) {
    const char32_t c = pat[i++];
    if (c == '*') {
      if (out.tokens.empty() || out.tokens.back().type != Token::kStar) {
        out.tokens.push_back(Token{Token::kStar});
      }
    } else if (c == '?') {
      out.tokens.push_back(Token{Token::kAny});
    } else if (c == '[') {
      std::size_t j = i;
      if (j < n && pat[j] == '!') ++j;
      if (j < n && pat[j] == ']') ++j;
      while (j < n && pat[j] != ']') ++j;
      if (j >= n) {
        out.tokens.push_back(Token{Token::kLiteral, U'['});
        continue;
      }
      Text stuff = pat.substr(i, j - i);
      if (stuff.find(U'-') == Text::npos) {
        stuff = Escape(stuff, false);
      } else {
        std::vector<Text> chunks;
        std::size_t k = pat[i] == '!' ? i + 2 : i + 1;
        while (true) {
          std::size_t found = Text::npos;
          for (std::size_t p = k; p < j; ++p) {
            if (pat[p] == '-') {
              found = p;
              break;
            }
          }
          if (found == Text::npos) break;
          k = found;
          chunks.push_back(pat.substr(i, k - i));
          i = k + 1;
          k = k + 3;
        }
        Text chunk = pat.substr(i, j - i);
        if (!chunk.empty()) {
          chunks.push_back(std::move(chunk));
        } else {
          chunks.back().push_back(U'-');
        }
        // Remove empty ranges -- invalid in RE.
        for (std::size_t m = chunks.size() - 1; m > 0; --m) {
          if (chunks[m - 1].empty() || chunks[m].empty()) {
            return absl::InvalidArgumentError("bad bracket expression");
          }
          if (chunks[m - 1].back() > chunks[m].front()) {
            chunks[m - 1] = chunks[m - 1].substr(0, chunks[m - 1].size() - 1) + chunks[m].substr(1);
            chunks.erase(chunks.begin() + static_cast<std::ptrdiff_t>(m));
          }
        }
        stuff.clear();
        for (std::size_t m = 0; m < chunks.size(); ++m) {
          if (m > 0) stuff.push_back(U'-');
          stuff += Escape(chunks[m], true);
        }
      }
      // Escape set operations (&&, ~~ and ||).
      Text escaped;
      for (char32_t ch : stuff) {
        if (ch == '&' || ch == '~' || ch == '|') escaped.push_back('\\');
        escaped.push_back(ch);
      }
      stuff = std::move(escaped);
      i = j + 1;
      if (stuff.empty()) {
        out.tokens.push_back(Token{Token::kNever});
      } else if (stuff == U"!") {
        out.tokens.push_back(Token{Token::kAny});
      } else {
        if (stuff[0] == '!') {
          stuff[0] = '^';
        } else if (stuff[0] == '^' || stuff[0] == '[') {
          stuff.insert(stuff.begin(), U'\\');
        }
        stuff.push_back(U']');
        absl::StatusOr<CharSet> set = ParseSet(stuff);
        if (!set.ok()) return set.status();
        out.tokens.push_back(Token{Token::kSet, 0, out.sets.size()});
        out.sets.push_back(*std::move(set));
      }
    } else {
      out.tokens.push_back(Token{Token::kLiteral, c});
    }
  }
  return out;
}

bool MatchOne(const Pattern& p, const Token& t, char32_t c) {
  switch (t.type) {
    case Token::kLiteral:
      return t.c == c;
    case Token::kAny:
      return true;
    case Token::kSet:
      return p.sets[t.set].Contains(c);
    case Token::kNever:
    case Token::kStar:
      return false;
  }
  return false;
}

// Full match; every token but kStar consumes exactly one code point.
bool Match(const Pattern& p, const Text& name) {
  const std::vector<Token>& tok = p.tokens;
  std::size_t ti = 0;
  std::size_t ni = 0;
  std::size_t star = std::string::npos;
  std::size_t star_ni = 0;
  while (ni < name.size()) {
    if (ti < tok.size() && tok[ti].type == Token::kStar) {
      star = ti++;
      star_ni = ni;
    } else if (ti < tok.size() && MatchOne(p, tok[ti], name[ni])) {
      ++ti;
      ++ni;
    } else if (star != std::string::npos) {
      ti = star + 1;
      ni = ++star_ni;
    } else {
      return false;
    }
  }
  while (ti < tok.size() && tok[ti].type == Token::kStar) ++ti;
  return ti == tok.size();
}

}  // namespace

absl::StatusOr<bool> FnMatch(std::string_view name, std::string_view pattern) {
  absl::StatusOr<Text> pat = DecodeUtf8(pattern);
  if (!pat.ok()) return pat.status();
  absl::StatusOr<Text> text = DecodeUtf8(name);
  if (!text.ok()) return text.status();
  absl::StatusOr<Pattern> compiled = Translate(*pat);
  if (!compiled.ok()) return compiled.status();
  return Match(*compiled, *text);
}

absl::StatusOr<std::vector<bool>> MatchFilenames(std::string_view pattern,
                                                 const std::vector<std::string>& filenames) {
  absl::StatusOr<Text> pat = DecodeUtf8(NormalizeFilename(pattern));
  if (!pat.ok()) return pat.status();
  absl::StatusOr<Pattern> compiled = Translate(*pat);
  if (!compiled.ok()) return compiled.status();
  std::vector<bool> out(filenames.size());
  for (std::size_t i = 0; i < filenames.size(); ++i) {
    absl::StatusOr<Text> text = DecodeUtf8(NormalizeFilename(filenames[i]));
    // Names come from Python str objects: never invalid, but be safe.
    out[i] = text.ok() && Match(*compiled, *text);
  }
  return out;
}

}  // namespace leakguard::internal
