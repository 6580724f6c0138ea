#include "control/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "base/check.h"

namespace joule::control {

Digest Sha256(std::string_view data) {
  Digest out{};
  unsigned int size = 0;
  JOULE_CHECK(EVP_Digest(data.data(), data.size(), out.data(), &size, EVP_sha256(), nullptr) == 1);
  JOULE_CHECK(size == out.size());
  return out;
}

std::string Hex(const Digest& digest) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(digest.size() * 2);
  for (unsigned char c : digest) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

Digest FromHex(std::string_view hex) {
  JOULE_CHECK(hex.size() == 64);
  auto nibble = [](char c) { return static_cast<unsigned char>(c <= '9' ? c - '0' : c - 'a' + 10); };
  Digest out{};
  for (size_t i = 0; i < out.size(); ++i)
    out[i] = static_cast<unsigned char>(nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]));
  return out;
}

std::string NewToken() {
  Digest bytes{};
  JOULE_CHECK(RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) == 1);
  return Hex(bytes);
}

namespace {
constexpr std::string_view kNodePrefix = "jn1.";
}

std::string NodeToken(std::string_view key, std::string_view node) {
  const std::string message = "joule node credential\n" + std::string(node);
  Digest mac{};
  unsigned int size = 0;
  JOULE_CHECK(HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
                   reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac.data(),
                   &size) != nullptr);
  JOULE_CHECK(size == mac.size());
  return std::string(kNodePrefix) + std::string(node) + "." + Hex(mac);
}

std::optional<Principal> Authenticator::Check(std::string_view authorization) const {
  constexpr std::string_view kScheme = "Bearer ";
  if (authorization.size() <= kScheme.size() || authorization.substr(0, kScheme.size()) != kScheme) return std::nullopt;
  const std::string_view token = authorization.substr(kScheme.size());
  if (token.starts_with(kNodePrefix)) {
    // "jn1.NODE.MAC": the node is what the MAC covers; a name with dots ends at the last one.
    const size_t dot = token.rfind('.');
    if (node_key_.empty() || dot <= kNodePrefix.size()) return std::nullopt;
    const std::string_view node = token.substr(kNodePrefix.size(), dot - kNodePrefix.size());
    const std::string expected = NodeToken(node_key_, node);
    if (expected.size() != token.size() || CRYPTO_memcmp(expected.data(), token.data(), token.size()) != 0) {
      return std::nullopt;
    }
    return Principal{.name = "node:" + std::string(node), .tenant = std::nullopt, .node = std::string(node)};
  }
  const Digest presented = Sha256(token);
  // Every digest is compared, whichever matches.
  const Entry* match = nullptr;
  for (const Entry& e : entries_) {
    if (CRYPTO_memcmp(presented.data(), e.digest.data(), presented.size()) == 0) match = &e;
  }
  if (match == nullptr) return std::nullopt;
  return match->principal;
}

}  // namespace joule::control
