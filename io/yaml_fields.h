// Typed, located access to one YAML mapping: each value is checked for type and range, unknown
// and repeated keys are refused, and every failure carries the line, column and dotted path of
// the offending value. Failures are thrown as YamlError and must be caught by the loader that
// owns the file (exceptions stay inside parsing). Thread-safety: one instance per thread.
#pragma once

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "base/status.h"
#include "base/units.h"

namespace joule::io {

struct YamlError {
  YAML::Mark mark;
  std::string path;
  std::string message;

  // "file:line:column: path: message", with 1-based line and column.
  std::string Format(std::string_view file) const;
};

[[noreturn]] void ThrowAt(const YAML::Node& node, std::string path, std::string message);

// The Status for the exception being handled, naming `path`: an unreadable file ("cannot open
// <what>"), a YAML syntax error, a YamlError, or a Status thrown by a parser. Other exceptions
// propagate. REQUIRES: called inside a catch block.
Status CurrentParseError(const std::string& path, std::string_view what);

// Loads `path` and returns `parse(root)`, turning every parsing failure into a located Status.
template <typename T, typename Parse>
Result<T> ParseYamlFile(const std::string& path, std::string_view what, Parse&& parse) {
  try {
    return parse(YAML::LoadFile(path));
  } catch (...) {
    return CurrentParseError(path, what);
  }
}

// Where a value was written, kept for checks made after parsing. (Kept as a Mark: assigning a
// YAML::Node rebinds the document node it refers to, not the handle.)
struct Site {
  YAML::Mark mark;
  std::string path;

  [[noreturn]] void Throw(std::string message) const { throw YamlError{mark, path, std::move(message)}; }
};

class Fields {
 public:
  // REQUIRES: `allowed` lists every key this mapping may hold. Throws if `node` is not a mapping
  // or holds an unknown or repeated key.
  Fields(const YAML::Node& node, std::string path, const std::vector<std::string_view>& allowed);

  const std::string& path() const { return path_; }
  std::string PathOf(std::string_view key) const;
  bool Has(std::string_view key) const { return static_cast<bool>(node_[std::string(key)]); }
  YAML::Node Get(std::string_view key) const { return node_[std::string(key)]; }

  std::string String(std::string_view key) const;
  std::optional<std::string> OptString(std::string_view key) const;
  // Numbers are bare scalars: a quoted one ("8") is a string, refused as JSON would.
  // Whole number > 0 that fits in 32 bits.
  uint32_t Count(std::string_view key) const;
  std::optional<uint32_t> OptCount(std::string_view key) const;
  // Any number within [min, max].
  double Number(std::string_view key, double min, double max) const;
  std::optional<double> OptNumber(std::string_view key, double min, double max) const;
  // Any number > 0.
  double Positive(std::string_view key) const;
  std::optional<double> OptPositive(std::string_view key) const;
  // A duration: a number of seconds (> 0), or a Slurm time with a colon or a dash ("30:00",
  // "2-00:00:00"); a bare number is always seconds here, never Slurm's minutes. Milliseconds.
  TimeMs Duration(std::string_view key) const;
  // A non-empty sequence.
  YAML::Node List(std::string_view key) const;

  // The site of `key`'s value, or of this mapping when the key is absent.
  Site SiteOf(std::string_view key) const;
  [[noreturn]] void Fail(std::string_view key, std::string message) const;
  [[noreturn]] void FailMissing(std::string_view key) const;
  // Exactly one of the keys must be present; returns which.
  std::string_view OneOf(std::initializer_list<std::string_view> keys) const;

 private:
  YAML::Node Required(std::string_view key) const;
  void NotQuoted(std::string_view key, const YAML::Node& value) const;

  YAML::Node node_;
  std::string path_;
};

}  // namespace joule::io
