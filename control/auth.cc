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
constexpr std::string_view kNodeDomain = "joule node credential\n";  // what the MAC covers, before the name
}  // namespace

std::string NodeToken(std::string_view key, std::string_view node) {
  const std::string message = std::string(kNodeDomain) + std::string(node);
  Digest mac{};
  unsigned int size = 0;
  JOULE_CHECK(HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
                   reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac.data(),
                   &size) != nullptr);
  JOULE_CHECK(size == mac.size());
  return std::string(kNodePrefix) + std::string(node) + "." + Hex(mac);
}

struct Authenticator::NodeMac {
  EVP_MD_CTX* inner = nullptr;  // SHA-256 after the key XOR ipad block
  EVP_MD_CTX* outer = nullptr;  // SHA-256 after the key XOR opad block
  NodeMac() = default;
  NodeMac(const NodeMac&) = delete;
  NodeMac& operator=(const NodeMac&) = delete;
  ~NodeMac() {
    EVP_MD_CTX_free(inner);
    EVP_MD_CTX_free(outer);
  }
  // "jn1." + node + "." + hex MAC, as NodeToken makes it (RFC 2104 over SHA-256).
  std::string Token(std::string_view node) const {
    thread_local struct Scratch {
      EVP_MD_CTX* ctx = EVP_MD_CTX_new();
      ~Scratch() { EVP_MD_CTX_free(ctx); }
    } scratch;
    Digest inside{}, mac{};
    JOULE_CHECK(EVP_MD_CTX_copy_ex(scratch.ctx, inner) == 1);
    JOULE_CHECK(EVP_DigestUpdate(scratch.ctx, kNodeDomain.data(), kNodeDomain.size()) == 1);
    JOULE_CHECK(EVP_DigestUpdate(scratch.ctx, node.data(), node.size()) == 1);
    JOULE_CHECK(EVP_DigestFinal_ex(scratch.ctx, inside.data(), nullptr) == 1);
    JOULE_CHECK(EVP_MD_CTX_copy_ex(scratch.ctx, outer) == 1);
    JOULE_CHECK(EVP_DigestUpdate(scratch.ctx, inside.data(), inside.size()) == 1);
    JOULE_CHECK(EVP_DigestFinal_ex(scratch.ctx, mac.data(), nullptr) == 1);
    return std::string(kNodePrefix) + std::string(node) + "." + Hex(mac);
  }
};

void Authenticator::SetNodeKey(std::string_view key) {
  if (key.empty()) {
    node_mac_.reset();
    return;
  }
  std::array<unsigned char, 64> block{};  // SHA-256's block: a longer key is hashed first
  if (key.size() > block.size()) {
    const Digest hashed = Sha256(key);
    std::copy(hashed.begin(), hashed.end(), block.begin());
  } else {
    std::copy(key.begin(), key.end(), block.begin());
  }
  auto mac = std::make_shared<NodeMac>();
  for (auto [ctx, pad] : {std::pair{&mac->inner, 0x36}, std::pair{&mac->outer, 0x5c}}) {
    std::array<unsigned char, 64> padded{};
    for (size_t i = 0; i < block.size(); ++i) padded[i] = static_cast<unsigned char>(block[i] ^ pad);
    *ctx = EVP_MD_CTX_new();
    JOULE_CHECK(*ctx != nullptr && EVP_DigestInit_ex(*ctx, EVP_sha256(), nullptr) == 1);
    JOULE_CHECK(EVP_DigestUpdate(*ctx, padded.data(), padded.size()) == 1);
  }
  node_mac_ = std::move(mac);
}

std::optional<Principal> Authenticator::Check(std::string_view authorization) const {
  constexpr std::string_view kScheme = "Bearer ";
  if (authorization.size() <= kScheme.size() || authorization.substr(0, kScheme.size()) != kScheme) return std::nullopt;
  const std::string_view token = authorization.substr(kScheme.size());
  if (token.starts_with(kNodePrefix)) {
    // "jn1.NODE.MAC": the node is what the MAC covers; a name with dots ends at the last one.
    const size_t dot = token.rfind('.');
    if (!node_mac_ || dot <= kNodePrefix.size()) return std::nullopt;
    const std::string_view node = token.substr(kNodePrefix.size(), dot - kNodePrefix.size());
    const std::string expected = node_mac_->Token(node);
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
