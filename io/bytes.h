// A compact binary form for state too large to keep as JSON (a snapshot's jobs and its history
// of a million ended ones): unsigned integers as LEB128 varints, signed ones zigzagged, doubles
// as their 8 bytes (little-endian hosts only, checked at compile time), strings as a length and
// the bytes. ByteReader checks every read against the end and, once a read fails, stays failed
// and returns zeros: a decoder reads a whole record, then asks ok() once. A short or corrupt
// input is an error, never a read past the buffer.
// Thread-safety: plain values.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace joule::io {

static_assert(std::endian::native == std::endian::little, "the binary form is little-endian");

class ByteWriter {
 public:
  explicit ByteWriter(std::string& out) : out_(out) {}
  void U64(uint64_t v) {
    while (v >= 0x80) {
      out_.push_back(static_cast<char>((v & 0x7f) | 0x80));
      v >>= 7;
    }
    out_.push_back(static_cast<char>(v));
  }
  void I64(int64_t v) { U64((static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63)); }
  void Bool(bool v) { U64(v ? 1 : 0); }
  void F64(double v) {
    char bytes[8];
    std::memcpy(bytes, &v, 8);
    out_.append(bytes, 8);
  }
  void Str(std::string_view s) {
    U64(s.size());
    out_.append(s);
  }
  template <typename E>
  void Enum(E v) {
    U64(static_cast<uint64_t>(v));
  }
  // An optional as a presence flag and the value.
  void OptI64(const std::optional<int64_t>& v) {
    Bool(v.has_value());
    if (v) I64(*v);
  }
  void OptU64(const std::optional<uint64_t>& v) {
    Bool(v.has_value());
    if (v) U64(*v);
  }
  void OptStr(const std::optional<std::string>& v) {
    Bool(v.has_value());
    if (v) Str(*v);
  }
  template <typename T>
  void Uints(const std::vector<T>& v) {
    U64(v.size());
    for (T x : v) U64(x);
  }

 private:
  std::string& out_;
};

class ByteReader {
 public:
  explicit ByteReader(std::string_view in) : in_(in) {}
  bool ok() const { return ok_; }
  bool done() const { return ok_ && at_ == in_.size(); }
  size_t offset() const { return at_; }
  void Fail() { ok_ = false; }

  uint64_t U64() {
    uint64_t v = 0;
    for (int shift = 0; ok_ && shift < 64; shift += 7) {
      if (at_ == in_.size()) break;
      const auto byte = static_cast<uint8_t>(in_[at_++]);
      v |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) return v;
    }
    ok_ = false;
    return 0;
  }
  // An unsigned integer that must fit T (a count, an index); larger fails.
  template <typename T>
  T Uint() {
    const uint64_t v = U64();
    if (v > static_cast<uint64_t>(std::numeric_limits<T>::max())) ok_ = false;
    return ok_ ? static_cast<T>(v) : T{};
  }
  int64_t I64() {
    const uint64_t z = U64();
    return static_cast<int64_t>((z >> 1) ^ (~(z & 1) + 1));
  }
  bool Bool() {
    const uint64_t v = U64();
    if (v > 1) ok_ = false;
    return v == 1;
  }
  double F64() {
    if (!ok_ || in_.size() - at_ < 8) {
      ok_ = false;
      return 0;
    }
    double v = 0;
    std::memcpy(&v, in_.data() + at_, 8);
    at_ += 8;
    return v;
  }
  std::string_view Str() {
    const uint64_t n = U64();
    if (!ok_ || n > in_.size() - at_) {
      ok_ = false;
      return {};
    }
    std::string_view s = in_.substr(at_, n);
    at_ += n;
    return s;
  }
  // An enum whose values run from 0 to `last`.
  template <typename E>
  E Enum(E last) {
    const uint64_t v = U64();
    if (v > static_cast<uint64_t>(last)) ok_ = false;
    return ok_ ? static_cast<E>(v) : E{};
  }
  std::optional<int64_t> OptI64() {
    if (!Bool()) return std::nullopt;
    return I64();
  }
  template <typename T>
  std::optional<T> OptUint() {
    if (!Bool()) return std::nullopt;
    return Uint<T>();
  }
  std::optional<std::string> OptStr() {
    if (!Bool()) return std::nullopt;
    return std::string(Str());
  }
  // A count of items that each take at least one byte: more than the bytes left fails.
  size_t Count() {
    const uint64_t n = U64();
    if (n > in_.size() - at_) ok_ = false;
    return ok_ ? static_cast<size_t>(n) : 0;
  }
  template <typename T>
  std::vector<T> Uints() {
    std::vector<T> v(Count());
    for (T& x : v) x = Uint<T>();
    return v;
  }

 private:
  std::string_view in_;
  size_t at_ = 0;
  bool ok_ = true;
};

}  // namespace joule::io
