#include "api/metrics.h"

#include <fmt/format.h>

namespace joule::api {
namespace {

// Request latency buckets, seconds: the API's targets are in milliseconds.
constexpr double kBounds[] = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};

// A label value escaped as the exposition format requires.
std::string Escape(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') out.push_back('\\');
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out.push_back(c);
  }
  return out;
}

void Header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

// A metric without labels: its header and its one sample.
template <typename T>
void Single(std::string& out, std::string_view name, std::string_view type, std::string_view help, T value) {
  Header(out, name, type, help);
  out += fmt::format("{} {}\n", name, value);
}

}  // namespace

void HttpMetrics::Observe(const std::string& method, const std::string& route, int status, double seconds) {
  std::lock_guard lock(mu_);
  requests_[{method, route, status}]++;
  Histogram& h = latency_[{method, route}];
  if (h.buckets.empty()) h.buckets.assign(std::size(kBounds), 0);
  for (size_t i = 0; i < std::size(kBounds); ++i) {
    if (seconds <= kBounds[i]) h.buckets[i]++;
  }
  h.count++;
  h.sum += seconds;
}

std::string RenderMetrics(const control::ControlPlane& plane, const HttpMetrics& metrics,
                          const std::optional<control::Principal>& reader) {
  std::string out;
  if (const HttpCounters* c = metrics.connections_) {
    Single(out, "joule_http_connections_open", "gauge", "Client connections open now.", c->open.load());
    Single(out, "joule_http_connections_accepted_total", "counter", "Client connections accepted.", c->accepted.load());
    Single(out, "joule_http_connections_refused_total", "counter",
           "Connections closed at once: http.max_connections were open.", c->refused_connections.load());
    Single(out, "joule_http_timeouts_total", "counter",
           "Connections closed for a request head or body that took too long, or for idling too long.",
           c->timed_out.load());
    Single(out, "joule_http_requests_refused_total", "counter",
           "Requests refused on their head or while read (401, 403, 404, 405, 408, 413, 415, 431).",
           c->refused_requests.load());
  }
  {
    std::lock_guard lock(metrics.mu_);
    Header(out, "joule_http_requests_total", "counter", "HTTP requests answered, by method, route and status code.");
    for (const auto& [key, n] : metrics.requests_) {
      const auto& [method, route, code] = key;
      out += fmt::format("joule_http_requests_total{{method=\"{}\",route=\"{}\",code=\"{}\"}} {}\n", method,
                         Escape(route), code, n);
    }
    Header(out, "joule_http_request_duration_seconds", "histogram",
           "Time to answer HTTP requests, by method and route.");
    for (const auto& [key, h] : metrics.latency_) {
      const std::string labels = fmt::format("method=\"{}\",route=\"{}\"", key.first, Escape(key.second));
      for (size_t i = 0; i < std::size(kBounds); ++i) {
        out += fmt::format("joule_http_request_duration_seconds_bucket{{{},le=\"{}\"}} {}\n", labels, kBounds[i],
                           h.buckets[i]);
      }
      out += fmt::format("joule_http_request_duration_seconds_bucket{{{},le=\"+Inf\"}} {}\n", labels, h.count);
      out += fmt::format("joule_http_request_duration_seconds_sum{{{}}} {}\n", labels, h.sum);
      out += fmt::format("joule_http_request_duration_seconds_count{{{}}} {}\n", labels, h.count);
    }
  }
  const control::ControlPlane::FleetStatus s = plane.Snapshot();
  Header(out, "joule_jobs", "gauge", "Jobs known to the server, by state.");
  for (const auto& [state, n] : s.jobs_by_state) out += fmt::format("joule_jobs{{state=\"{}\"}} {}\n", state, n);
  Single(out, "joule_jobs_retired", "gauge", "Ended jobs retired from the view to the history (job_retention_seconds).",
         s.retired);
  Single(out, "joule_accelerators", "gauge", "Accelerators of the fleet, in all.", s.accelerators);
  Single(out, "joule_accelerators_allocated", "gauge", "Accelerators with work placed on them.", s.accelerators_used);
  Single(out, "joule_accelerators_out_of_service", "gauge", "Accelerators on nodes that are not healthy.",
         s.accelerators_out);
  Header(out, "joule_nodes", "gauge", "Nodes, by health.");
  for (const auto& [health, n] : s.nodes_by_health) out += fmt::format("joule_nodes{{health=\"{}\"}} {}\n", health, n);
  Header(out, "joule_tenant_accelerators_in_use", "gauge", "Accelerators held by each tenant's running jobs.");
  const Catalog& catalog = plane.fleet().catalog();
  plane.VisitTenants([&](TenantId id, const TenantSpec& t, const std::vector<uint64_t>& use) {
    // Who rents how much is the tenants' business: an operator's page has every tenant, a
    // tenant's its own, the open page none.
    if (!reader || (!reader->operator_role() && reader->tenant != id)) return;
    for (size_t type = 0; type < use.size(); ++type) {
      out += fmt::format("joule_tenant_accelerators_in_use{{tenant=\"{}\",type=\"{}\"}} {}\n", Escape(t.name),
                         Escape(catalog.accelerator(AcceleratorTypeId(static_cast<uint32_t>(type))).name), use[type]);
    }
  });
  Header(out, "joule_power_budget_watts", "gauge", "Power budgets of the campus, halls, rows and racks.");
  for (const PowerGovernor::Budget& b : s.budgets) {
    out += fmt::format("joule_power_budget_watts{{level=\"{}\",index=\"{}\"}} {}\n", PowerLevelName(b.level), b.index,
                       b.budget_w);
  }
  Header(out, "joule_power_expected_draw_watts", "gauge",
         "Expected IT draw under each budget: idle draw plus running work at its power limits.");
  for (const PowerGovernor::Budget& b : s.budgets) {
    out += fmt::format("joule_power_expected_draw_watts{{level=\"{}\",index=\"{}\"}} {}\n", PowerLevelName(b.level),
                       b.index, b.used_w);
  }
  const control::Counters c = plane.counters();
  Single(out, "joule_agents", "gauge", "Nodes whose agent is heard.", s.agents);
  Single(out, "joule_gpus_measured", "gauge", "Accelerators whose telemetry the agents report.", s.gpus_measured);
  Single(out, "joule_gpu_measured_power_watts", "gauge",
         "Power drawn by the accelerators the agents report, from their last readings.", s.measured_gpu_power_w);
  Single(out, "joule_jobs_submitted_total", "counter", "Jobs accepted since the server started.", c.submits);
  Single(out, "joule_journal_records_total", "counter", "Records made durable in the journal since the server started.",
         c.journal_records);
  Single(out, "joule_journal_commits_total", "counter", "Journal transactions (fsyncs) since the server started.",
         c.journal_commits);
  Single(out, "joule_journal_commit_seconds_total", "counter", "Time spent committing journal transactions.",
         c.commit_seconds_sum);
  Single(out, "joule_journal_up", "gauge",
         "1 while the journal takes appends, 0 while it fails and changes are refused.", plane.journal_error() ? 0 : 1);
  Single(out, "joule_journal_failures_total", "counter", "Journal appends that failed since the server started.",
         c.journal_failures);
  Single(out, "joule_journal_recoveries_total", "counter",
         "Times the journal answered again after a failure and the view was rebuilt from it.", c.journal_recoveries);
  Single(out, "joule_snapshots_total", "counter", "Snapshots of the state kept since the server started.", c.snapshots);
  Single(out, "joule_snapshot_sequence", "gauge", "The journal record the newest snapshot is as of.", c.snapshot_seq);
  Single(out, "joule_snapshot_bytes", "gauge", "Size of the newest snapshot.", c.snapshot_bytes);
  Single(out, "joule_snapshot_seconds_total", "counter", "Time spent encoding and keeping snapshots.",
         c.snapshot_seconds);
  Single(out, "joule_elections_won_total", "counter", "Times this server became the leader.", c.elections_won);
  Single(out, "joule_journal_last_sequence", "gauge", "Sequence number of the last durable journal record.",
         s.journal_seq);
  Single(out, "joule_engine_steps_total", "counter", "Engine steps run since the server started.", c.steps);
  Single(out, "joule_engine_passes_total", "counter",
         "Steps that ran a scheduling pass (the others had nothing new to decide).", c.passes);
  Single(out, "joule_engine_step_seconds_total", "counter", "Time spent in scheduling passes.", c.step_seconds_sum);
  Single(out, "joule_engine_step_max_seconds", "gauge", "Longest scheduling pass since the server started.",
         c.step_seconds_max);
  Single(out, "joule_engine_last_step_timestamp_seconds", "gauge", "When the last scheduling pass ran (Unix time).",
         static_cast<double>(s.last_step) / 1000.0);
  return out;
}

}  // namespace joule::api
