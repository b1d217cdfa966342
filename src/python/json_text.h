// Internal: a JSON string literal from bytes that may not be UTF-8 (file
// names, native symbols). The one writer behind leakguard::JsonQuote
// (report.h) and the JSON the probes write themselves (the sampler's), so
// that every JSON leakguard prints is valid UTF-8. Not installed.

#ifndef LEAKGUARD_SRC_PYTHON_JSON_TEXT_H_
#define LEAKGUARD_SRC_PYTHON_JSON_TEXT_H_

#include <string>
#include <string_view>

namespace leakguard::internal {

// Appends `text` to *out as a JSON string literal, quotes included:
// well-formed UTF-8 (RFC 3629) is copied, `"` and `\` and control
// characters are escaped, and every byte that is not part of a well-formed
// sequence (Latin-1, a surrogate-escaped path, an overlong form, an encoded
// surrogate, a cut sequence) becomes `\ufffd`.
void AppendJsonQuoted(std::string* out, std::string_view text);

}  // namespace leakguard::internal

#endif  // LEAKGUARD_SRC_PYTHON_JSON_TEXT_H_
