#include "base/text.h"

#include <cstdint>
#include <cstring>

namespace joule {
namespace {

// The length of the UTF-8 sequence at `i` (1 to 4), or 0 when it is not well-formed.
size_t SequenceAt(std::string_view s, size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) return 1;
  size_t n = 0;  // continuation bytes
  if ((c >> 5) == 0x6) {
    n = 1;
  } else if ((c >> 4) == 0xe) {
    n = 2;
  } else if ((c >> 3) == 0x1e) {
    n = 3;
  } else {
    return 0;
  }
  if (i + n >= s.size()) return 0;
  uint32_t cp = c & (0x3f >> n);
  for (size_t k = 1; k <= n; ++k) {
    const auto d = static_cast<unsigned char>(s[i + k]);
    if ((d >> 6) != 0x2) return 0;
    cp = cp << 6 | (d & 0x3f);
  }
  // Overlong forms, surrogates and values beyond Unicode are not UTF-8.
  if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
      (cp >= 0xd800 && cp <= 0xdfff)) {
    return 0;
  }
  return n + 1;
}

bool ControlAt(std::string_view s, size_t i, size_t length) {
  const auto c = static_cast<unsigned char>(s[i]);
  if (length == 1) return c < 0x20 || c == 0x7f;
  // U+0080 to U+009F: 0xC2 0x80 to 0xC2 0x9F.
  return length == 2 && c == 0xc2 && static_cast<unsigned char>(s[i + 1]) <= 0x9f;
}

}  // namespace

std::optional<size_t> InvalidUtf8At(std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    // ASCII, eight bytes at a time: a heartbeat's 2 KB body is nearly all of it.
    if (i + 8 <= text.size()) {
      uint64_t word = 0;
      std::memcpy(&word, text.data() + i, 8);
      if ((word & 0x8080808080808080ULL) == 0) {
        i += 8;
        continue;
      }
    }
    const size_t n = SequenceAt(text, i);
    if (n == 0) return i;
    i += n;
  }
  return std::nullopt;
}

bool HasControl(std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    const size_t n = SequenceAt(text, i);
    if (n > 0 && ControlAt(text, i, n)) return true;
    i += n == 0 ? 1 : n;
  }
  return false;
}

std::string EscapeForTerminal(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size());
  auto escape = [&](unsigned char c) {
    out += "\\x";
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  };
  for (size_t i = 0; i < text.size();) {
    const size_t n = SequenceAt(text, i);
    if (n == 0) {
      escape(static_cast<unsigned char>(text[i++]));
    } else if (ControlAt(text, i, n)) {
      for (size_t k = 0; k < n; ++k) escape(static_cast<unsigned char>(text[i + k]));
      i += n;
    } else {
      out.append(text.substr(i, n));
      i += n;
    }
  }
  return out;
}

}  // namespace joule
