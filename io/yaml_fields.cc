#include "io/yaml_fields.h"

#include "io/sbatch.h"

#include <cmath>
#include <limits>
#include <set>

#include <fmt/format.h>

namespace joule::io {

std::string YamlError::Format(std::string_view file) const {
  return fmt::format("{}:{}:{}: {}: {}", file, mark.line + 1, mark.column + 1, path.empty() ? "(top)" : path, message);
}

Status CurrentParseError(const std::string& path, std::string_view what) {
  try {
    throw;
  } catch (const YAML::BadFile&) {
    return Status::Error(fmt::format("{}: cannot open {}", path, what));
  } catch (const YAML::ParserException& e) {
    return Status::Error(fmt::format("{}:{}:{}: syntax: {}", path, e.mark.line + 1, e.mark.column + 1, e.msg));
  } catch (const YamlError& e) {
    return Status::Error(e.Format(path));
  } catch (const Status& s) {
    return s;
  }
}

void ThrowAt(const YAML::Node& node, std::string path, std::string message) {
  throw YamlError{node.Mark(), std::move(path), std::move(message)};
}

Fields::Fields(const YAML::Node& node, std::string path, const std::vector<std::string_view>& allowed)
    : node_(node), path_(std::move(path)) {
  if (!node.IsMap()) ThrowAt(node, path_, "must be a mapping of key: value");
  std::set<std::string> seen;
  for (auto it = node.begin(); it != node.end(); ++it) {
    std::string key = it->first.Scalar();
    if (!seen.insert(key).second) ThrowAt(it->first, PathOf(key), "key appears twice");
    bool known = false;
    for (std::string_view a : allowed) known = known || a == key;
    if (!known) {
      std::string list;
      for (std::string_view a : allowed) list += fmt::format("{}{}", list.empty() ? "" : ", ", a);
      ThrowAt(it->first, PathOf(key), fmt::format("unknown key (allowed: {})", list));
    }
  }
}

std::string Fields::PathOf(std::string_view key) const {
  return path_.empty() ? std::string(key) : fmt::format("{}.{}", path_, key);
}

void Fields::Fail(std::string_view key, std::string message) const {
  YAML::Node value = Get(key);
  ThrowAt(value ? value : node_, PathOf(key), std::move(message));
}

Site Fields::SiteOf(std::string_view key) const {
  YAML::Node value = Get(key);
  return Site{value ? value.Mark() : node_.Mark(), PathOf(key)};
}

void Fields::FailMissing(std::string_view key) const { ThrowAt(node_, PathOf(key), "is required"); }

YAML::Node Fields::Required(std::string_view key) const {
  YAML::Node value = Get(key);
  if (!value) FailMissing(key);
  if (value.IsNull()) Fail(key, "is empty");
  return value;
}

std::string Fields::String(std::string_view key) const {
  YAML::Node value = Required(key);
  if (!value.IsScalar()) Fail(key, "must be a string");
  if (value.Scalar().empty()) Fail(key, "must not be empty");
  return value.Scalar();
}

std::optional<std::string> Fields::OptString(std::string_view key) const {
  if (!Has(key)) return std::nullopt;
  return String(key);
}

// A quoted scalar ("8") is a string, as in JSON: numbers are written bare.
void Fields::NotQuoted(std::string_view key, const YAML::Node& value) const {
  if (value.IsScalar() && value.Tag() == "!") {
    Fail(key, fmt::format("must be a number, not the string \"{}\"", value.Scalar()));
  }
}

uint32_t Fields::Count(std::string_view key) const {
  YAML::Node value = Required(key);
  NotQuoted(key, value);
  int64_t n = 0;
  if (!value.IsScalar() || !YAML::convert<int64_t>::decode(value, n)) {
    Fail(key, fmt::format("must be a whole number, got '{}'", value.IsScalar() ? value.Scalar() : "a collection"));
  }
  if (n <= 0) Fail(key, "must be > 0");
  if (n > std::numeric_limits<uint32_t>::max()) Fail(key, "is too large");
  return static_cast<uint32_t>(n);
}

std::optional<uint32_t> Fields::OptCount(std::string_view key) const {
  if (!Has(key)) return std::nullopt;
  return Count(key);
}

double Fields::Number(std::string_view key, double min, double max) const {
  YAML::Node value = Required(key);
  NotQuoted(key, value);
  double x = 0;
  if (!value.IsScalar() || !YAML::convert<double>::decode(value, x) || !std::isfinite(x)) {
    Fail(key, fmt::format("must be a number, got '{}'", value.IsScalar() ? value.Scalar() : "a collection"));
  }
  if (x < min || x > max) Fail(key, fmt::format("must be between {} and {}", min, max));
  return x;
}

TimeMs Fields::Duration(std::string_view key) const {
  const YAML::Node value = Required(key);
  if (value.IsScalar()) {
    double seconds = 0;
    if (YAML::convert<double>::decode(value, seconds)) {
      if (!(seconds > 0) || seconds > 1e9) Fail(key, "must be > 0 seconds");
      return std::llround(seconds * 1000);
    }
    if (value.Scalar().find_first_of(":-") != std::string::npos) {
      if (std::optional<TimeMs> t = ParseSlurmTime(value.Scalar())) return *t;
    }
  }
  Fail(key, "must be seconds or a Slurm time (minutes, HH:MM:SS, D-HH:MM:SS, ...)");
}

double Fields::Positive(std::string_view key) const {
  double x = Number(key, -std::numeric_limits<double>::max(), std::numeric_limits<double>::max());
  if (x <= 0) Fail(key, "must be > 0");
  return x;
}

std::optional<double> Fields::OptPositive(std::string_view key) const {
  if (!Has(key)) return std::nullopt;
  return Positive(key);
}

std::optional<double> Fields::OptNumber(std::string_view key, double min, double max) const {
  if (!Has(key)) return std::nullopt;
  return Number(key, min, max);
}

YAML::Node Fields::List(std::string_view key) const {
  YAML::Node value = Required(key);
  if (!value.IsSequence()) Fail(key, "must be a list");
  if (value.size() == 0) Fail(key, "must not be empty");
  return value;
}

std::string_view Fields::OneOf(std::initializer_list<std::string_view> keys) const {
  std::optional<std::string_view> found;
  std::string names;
  for (std::string_view k : keys) {
    names += fmt::format("{}'{}'", names.empty() ? "" : " or ", k);
    if (!Has(k)) continue;
    if (found) Fail(k, fmt::format("give only one of {}", names));
    found = k;
  }
  if (!found) ThrowAt(node_, path_, fmt::format("needs one of {}", names));
  return *found;
}

}  // namespace joule::io
