#include "io/grid_series.h"

#include <cstdio>

#include <fmt/format.h>

#include "io/csv.h"

namespace joule::io {
namespace {

// "DD/MM/YYYY HH:MM" (Electricity Maps) as hours since 2000-01-01, or nothing.
std::optional<int64_t> HourOf(std::string_view s) {
  int d = 0, m = 0, y = 0, h = 0, mi = 0;
  if (std::sscanf(std::string(s).c_str(), "%2d/%2d/%4d %2d:%2d", &d, &m, &y, &h, &mi) != 5 || mi != 0) {
    return std::nullopt;
  }
  if (m < 1 || m > 12 || d < 1 || d > 31 || h < 0 || h > 23) return std::nullopt;
  static constexpr int kDaysBefore[12] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};
  int64_t days = int64_t{y - 2000} * 365 + (y - 2000 + 3) / 4 + kDaysBefore[m - 1] + d - 1;
  if (m > 2 && y % 4 == 0) ++days;
  return days * 24 + h;
}

Result<std::vector<double>> ReadHourly(const std::string& path, const char* column, bool negative_ok) {
  CsvReader csv(path);
  if (!csv.status().ok()) return csv.status();
  Result<size_t> when = csv.Column("Datetime (UTC)");
  if (!when.ok()) return when.status();
  Result<size_t> value = csv.Column(column);
  if (!value.ok()) return value.status();
  std::vector<double> series;
  std::optional<int64_t> previous;
  std::vector<std::string_view> row;
  while (csv.Next(row)) {
    std::optional<int64_t> hour = HourOf(row[*when]);
    if (!hour) return csv.Error(*when, fmt::format("'{}' is not an hour DD/MM/YYYY HH:00", row[*when]));
    if (previous && *hour != *previous + 1) return csv.Error(*when, "is not one hour after the row before");
    previous = hour;
    if (row[*value].empty()) return csv.Error(*value, "is missing");
    Result<double> g = csv.Double(row, *value);
    if (!g.ok()) return g.status();
    if (!negative_ok && !(*g >= 0)) return csv.Error(*value, fmt::format("{} is negative", *g));
    series.push_back(*g);
  }
  if (!csv.status().ok()) return csv.status();
  if (series.empty()) return Status::Error(fmt::format("{}: no hours listed", path));
  return series;
}

}  // namespace

Result<std::vector<double>> ReadCarbonIntensity(const std::string& path) {
  return ReadHourly(path, "Carbon Intensity gCO2eq/kWh (direct)", false);
}

Result<std::vector<double>> ReadPrice(const std::string& path) { return ReadHourly(path, "Price (EUR/MWh)", true); }

}  // namespace joule::io
