// Dense, typed integer identifiers. An id is an index into the owning table, so lookups are
// array accesses; distinct tag types stop a NodeId being passed where a RackId is meant.
// Thread-safety: plain values.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>

namespace joule {

template <typename Tag>
class Id {
 public:
  constexpr Id() = default;
  constexpr explicit Id(uint32_t value) : value_(value) {}
  constexpr uint32_t value() const { return value_; }
  constexpr auto operator<=>(const Id&) const = default;

 private:
  uint32_t value_ = 0;
};

// A half-open range [first, first + count) of consecutive ids, as the fleet stores children.
template <typename IdT>
struct IdRange {
  IdT first;
  uint32_t count = 0;

  struct Iterator {
    uint32_t v;
    IdT operator*() const { return IdT(v); }
    Iterator& operator++() {
      ++v;
      return *this;
    }
    bool operator==(const Iterator&) const = default;
  };
  Iterator begin() const { return {first.value()}; }
  Iterator end() const { return {first.value() + count}; }
  bool Contains(IdT id) const { return id.value() >= first.value() && id.value() < first.value() + count; }
};

}  // namespace joule

template <typename Tag>
struct std::hash<joule::Id<Tag>> {
  size_t operator()(joule::Id<Tag> id) const { return std::hash<uint32_t>()(id.value()); }
};
