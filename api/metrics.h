// Prometheus metrics (text exposition format 0.0.4): request counts and latencies by route, jobs
// by state, accelerators and nodes by state, tenants' use, power budgets, journal and engine
// timings. Names follow Prometheus' conventions (joule_ prefix, base units, _total counters);
// `promtool check metrics` passes on the output (tested). Thread-safe.
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "api/http_server.h"
#include "control/control_plane.h"

namespace joule::api {

class HttpMetrics {
 public:
  void Observe(const std::string& method, const std::string& route, int status, double seconds);
  // The connections' counters of the server answering (set once, before it serves).
  void set_connections(const HttpCounters* counters) { connections_ = counters; }

 private:
  friend std::string RenderMetrics(const control::ControlPlane& plane, const HttpMetrics& metrics,
                                   const std::optional<control::Principal>& reader);
  struct Histogram {
    std::vector<uint64_t> buckets;  // cumulative counts per bound
    uint64_t count = 0;
    double sum = 0;
  };
  const HttpCounters* connections_ = nullptr;
  mutable std::mutex mu_;
  std::map<std::tuple<std::string, std::string, int>, uint64_t> requests_;  // method, route, code
  std::map<std::pair<std::string, std::string>, Histogram> latency_;        // method, route
};

// The page for `reader` (nullopt: a scrape without a token): tenant-labelled series
// (joule_tenant_*) for an operator every tenant's, for a tenant its own, without a token none.
std::string RenderMetrics(const control::ControlPlane& plane, const HttpMetrics& metrics,
                          const std::optional<control::Principal>& reader);

}  // namespace joule::api
