// A small CSV reader for the traces and node lists Joule reads: comma-separated, a header row,
// optional double quotes around a field. Errors name file:line and the column.
// Thread-safety: one reader per thread.
#pragma once

#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace joule::io {

class CsvReader {
 public:
  // Opens `path` and reads its header. Check status() before reading rows.
  explicit CsvReader(std::string path);

  const Status& status() const { return status_; }
  const std::string& path() const { return path_; }
  int line() const { return line_; }

  // Index of a header column, or an error naming the file and the missing column.
  Result<size_t> Column(std::string_view name) const;

  // Reads the next row into fields; false at end of file. Blank lines are skipped.
  bool Next(std::vector<std::string_view>& fields);

  // "file:line: column: message", for the row just read.
  Status Error(size_t column, std::string_view message) const;

  Result<int64_t> Int(const std::vector<std::string_view>& fields, size_t column) const;
  Result<double> Double(const std::vector<std::string_view>& fields, size_t column) const;

 private:
  std::string path_;
  std::ifstream in_;
  Status status_ = Status::Ok();
  std::vector<std::string> header_;
  std::string buffer_;
  int line_ = 0;
};

}  // namespace joule::io
