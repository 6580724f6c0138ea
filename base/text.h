// Text checks shared by every edge that takes or shows untrusted text: UTF-8 validity, and the
// control characters that must never reach an operator's terminal (escape sequences). Thread-safe
// (pure functions).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace joule {

// The offset of the first byte that is not part of well-formed UTF-8 (RFC 3629: no overlong
// forms, no surrogates, nothing past U+10FFFF), or nullopt when all of `text` is.
std::optional<size_t> InvalidUtf8At(std::string_view text);
inline bool IsUtf8(std::string_view text) { return !InvalidUtf8At(text).has_value(); }

// Whether `text` (UTF-8) holds a control character: C0 (below U+0020), DEL, or C1 (U+0080 to
// U+009F, which some terminals obey as escapes).
bool HasControl(std::string_view text);

// `text` made safe to print on a terminal: control characters (C0, DEL, C1) and bytes that are
// not UTF-8 become \xNN escapes; everything else passes unchanged.
std::string EscapeForTerminal(std::string_view text);

}  // namespace joule
