#include "io/csv.h"

#include <charconv>

#include <fmt/format.h>

namespace joule::io {
namespace {

// Splits one line in place; quoted fields lose their quotes (no escaped quotes inside).
void Split(std::string& line, std::vector<std::string_view>& out) {
  out.clear();
  if (!line.empty() && line.back() == '\r') line.pop_back();
  size_t start = 0;
  while (true) {
    size_t end;
    if (start < line.size() && line[start] == '"') {
      size_t close = line.find('"', start + 1);
      if (close == std::string::npos) close = line.size();
      out.emplace_back(std::string_view(line).substr(start + 1, close - start - 1));
      end = line.find(',', close);
    } else {
      end = line.find(',', start);
      out.emplace_back(std::string_view(line).substr(start, end == std::string::npos ? end : end - start));
    }
    if (end == std::string::npos) break;
    start = end + 1;
  }
}

}  // namespace

CsvReader::CsvReader(std::string path) : path_(std::move(path)), in_(path_) {
  if (!in_) {
    status_ = Status::Error(fmt::format("{}: cannot open file", path_));
    return;
  }
  std::vector<std::string_view> fields;
  if (!Next(fields)) {
    status_ = Status::Error(fmt::format("{}: empty file, expected a header row", path_));
    return;
  }
  for (std::string_view f : fields) header_.emplace_back(f);
}

Result<size_t> CsvReader::Column(std::string_view name) const {
  for (size_t i = 0; i < header_.size(); ++i) {
    if (header_[i] == name) return i;
  }
  return Status::Error(fmt::format("{}:1: missing column '{}'", path_, name));
}

bool CsvReader::Next(std::vector<std::string_view>& fields) {
  while (std::getline(in_, buffer_)) {
    ++line_;
    if (buffer_.empty() || buffer_ == "\r") continue;
    Split(buffer_, fields);
    if (!header_.empty() && fields.size() < header_.size()) {
      fields.resize(header_.size());  // missing trailing fields read as empty
    }
    return true;
  }
  return false;
}

Status CsvReader::Error(size_t column, std::string_view message) const {
  std::string_view name = column < header_.size() ? std::string_view(header_[column]) : "?";
  return Status::Error(fmt::format("{}:{}: {}: {}", path_, line_, name, message));
}

Result<int64_t> CsvReader::Int(const std::vector<std::string_view>& fields, size_t column) const {
  std::string_view text = fields[column];
  int64_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size()) {
    return Error(column, fmt::format("'{}' is not an integer", text));
  }
  return value;
}

Result<double> CsvReader::Double(const std::vector<std::string_view>& fields, size_t column) const {
  std::string_view text = fields[column];
  double value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size()) {
    return Error(column, fmt::format("'{}' is not a number", text));
  }
  return value;
}

}  // namespace joule::io
