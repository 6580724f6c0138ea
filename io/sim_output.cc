#include "io/sim_output.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

namespace joule::io {
namespace {

using nlohmann::ordered_json;

// Rounded to 6 significant decimals so the JSON is stable and readable.
double Round(double x) { return std::round(x * 1e6) / 1e6; }

ordered_json DistributionJson(const sim::Distribution& d) {
  return {{"count", d.count},    {"mean", Round(d.mean)}, {"p50", Round(d.p50)},
          {"p95", Round(d.p95)}, {"p99", Round(d.p99)},   {"max", Round(d.max)}};
}

ordered_json GroupJson(const sim::GroupFigures& g) {
  return {{"submitted", g.submitted},
          {"started", g.started},
          {"completed", g.completed},
          {"killed_at_time_limit", g.time_limit},
          {"rejected", g.rejected},
          {"wait_s", DistributionJson(g.wait_s)},
          {"jct_s", DistributionJson(g.jct_s)},
          {"mean_bounded_slowdown", Round(g.mean_bounded_slowdown)}};
}

std::string Escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// ---- SVG charts: fixed size, data scaled into a plot area, axes with a few labels ----

constexpr double kW = 880, kH = 260, kLeft = 70, kRight = 190, kTop = 12, kBottom = 34;
constexpr const char* kColors[] = {"#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2",
                                   "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};

struct Axes {
  double x0, x1, y0, y1;
  double X(double x) const { return kLeft + (x - x0) / std::max(x1 - x0, 1e-9) * (kW - kLeft - kRight); }
  double Y(double y) const { return kH - kBottom - (y - y0) / std::max(y1 - y0, 1e-9) * (kH - kTop - kBottom); }
};

// A tick label a person reads at a glance: whole numbers with thousands separators from 100 up,
// three significant digits below.
std::string Human(double v) {
  if (std::fabs(v) < 100) return fmt::format("{:.3g}", v);
  std::string digits = fmt::format("{:.0f}", std::fabs(v)), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return v < 0 ? "-" + out : out;
}

// Axes with five ticks on y; on x five ticks, or with log_x one per power of ten (x in log10).
std::string AxesSvg(const Axes& a, const std::string& x_label, const std::string& y_label, bool log_x = false) {
  std::string s = fmt::format(
      R"svg(<line x1="{0}" y1="{1}" x2="{2}" y2="{1}" stroke="#333"/><line x1="{0}" y1="{3}" x2="{0}" y2="{1}" stroke="#333"/>)svg",
      kLeft, kH - kBottom, kW - kRight, kTop);
  auto x_tick = [&](double x, double shown) {
    s += fmt::format(R"svg(<text x="{}" y="{}" font-size="11" text-anchor="middle">{}</text>)svg", a.X(x),
                     kH - kBottom + 14, Human(shown));
  };
  for (int i = 0; i <= 4; ++i) {
    const double y = a.y0 + (a.y1 - a.y0) * i / 4;
    s += fmt::format(R"svg(<text x="{}" y="{}" font-size="11" text-anchor="end">{}</text>)svg", kLeft - 4, a.Y(y) + 4,
                     Human(y));
    if (!log_x) x_tick(a.x0 + (a.x1 - a.x0) * i / 4, a.x0 + (a.x1 - a.x0) * i / 4);
  }
  if (log_x) {
    for (int k = static_cast<int>(std::ceil(a.x0)); k <= static_cast<int>(std::floor(a.x1)); ++k) {
      x_tick(k, std::pow(10.0, k));
    }
  }
  s += fmt::format(R"svg(<text x="{}" y="{}" font-size="12" text-anchor="middle">{}</text>)svg",
                   (kLeft + kW - kRight) / 2, kH - 4, Escape(x_label));
  s += fmt::format(
      R"svg(<text x="12" y="{}" font-size="12" transform="rotate(-90 12 {})" text-anchor="middle">{}</text>)svg",
      (kTop + kH - kBottom) / 2, (kTop + kH - kBottom) / 2, Escape(y_label));
  return s;
}

std::string Legend(const std::vector<std::string>& names) {
  std::string s;
  for (size_t i = 0; i < names.size(); ++i) {
    const double y = kTop + 14 * static_cast<double>(i);
    s += fmt::format(
        R"svg(<rect x="{}" y="{}" width="10" height="10" fill="{}"/><text x="{}" y="{}" font-size="11">{}</text>)svg",
        kW - kRight + 10, y, kColors[i % 10], kW - kRight + 24, y + 9, Escape(names[i]));
  }
  return s;
}

std::string Svg(const std::string& body) {
  return fmt::format(
      R"svg(<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" viewBox="0 0 {} {}">{}</svg>)svg", kW, kH,
      kW, kH, body);
}

double Days(TimeMs t) { return static_cast<double>(t) / static_cast<double>(kMsPerDay); }

std::string AllocationChart(const sim::SimResult& r) {
  if (r.samples.empty()) return "<p>No samples.</p>";
  Axes a{0, Days(r.samples.back().at), 0, static_cast<double>(r.capacity)};
  std::string body = AxesSvg(a, "simulated days", "accelerators allocated");
  std::vector<double> base(r.samples.size(), 0.0);
  for (size_t t = 0; t < r.tenant_names.size(); ++t) {
    std::string top, bottom;
    for (size_t i = 0; i < r.samples.size(); ++i) {
      base[i] += static_cast<double>(r.samples[i].tenant_milli[t]) / 1000.0;
      top += fmt::format("{:.1f},{:.1f} ", a.X(Days(r.samples[i].at)), a.Y(base[i]));
    }
    for (size_t i = r.samples.size(); i-- > 0;) {
      const double lo = base[i] - static_cast<double>(r.samples[i].tenant_milli[t]) / 1000.0;
      bottom += fmt::format("{:.1f},{:.1f} ", a.X(Days(r.samples[i].at)), a.Y(lo));
    }
    body +=
        fmt::format(R"svg(<polygon points="{}{}" fill="{}" fill-opacity="0.85"/>)svg", top, bottom, kColors[t % 10]);
  }
  return Svg(body + Legend(r.tenant_names));
}

std::string QueueChart(const sim::SimResult& r) {
  if (r.samples.empty()) return "<p>No samples.</p>";
  double most = 1;
  for (const sim::Sample& s : r.samples) most = std::max(most, static_cast<double>(s.pending_jobs));
  Axes a{0, Days(r.samples.back().at), 0, most};
  std::string points;
  for (const sim::Sample& s : r.samples) points += fmt::format("{:.1f},{:.1f} ", a.X(Days(s.at)), a.Y(s.pending_jobs));
  return Svg(
      AxesSvg(a, "simulated days", "jobs queued") +
      fmt::format(R"svg(<polyline points="{}" fill="none" stroke="{}" stroke-width="1.5"/>)svg", points, kColors[0]));
}

// Empirical CDF of wait (log10 seconds, waits under 1 s drawn at 1 s) per size class.
std::string WaitCdfChart(const sim::SimResult& r) {
  std::array<std::vector<double>, sim::kSizeClasses> waits;
  double most = 1;
  for (const sim::JobRecord& j : r.jobs) {
    if (!j.first_start) continue;
    const double w = std::log10(std::max(1.0, static_cast<double>(*j.first_start - j.submit) / 1000.0));
    waits[sim::SizeClass(j.accelerators)].push_back(w);
    most = std::max(most, w);
  }
  Axes a{0, std::ceil(most), 0, 1};
  std::string body = AxesSvg(a, "wait in seconds (log scale), by accelerators asked", "share of started jobs",
                             /*log_x=*/true);
  std::vector<std::string> names;
  for (int c = 0; c < sim::kSizeClasses; ++c) {
    std::vector<double>& v = waits[c];
    names.push_back(fmt::format("{}: {} jobs", sim::SizeClassName(c), Human(static_cast<double>(v.size()))));
    if (v.empty()) continue;
    std::sort(v.begin(), v.end());
    std::string points;
    const size_t step = std::max<size_t>(1, v.size() / 400);  // at most ~400 points a curve
    for (size_t i = 0; i < v.size(); i += step) {
      points +=
          fmt::format("{:.1f},{:.1f} ", a.X(v[i]), a.Y(static_cast<double>(i + 1) / static_cast<double>(v.size())));
    }
    points += fmt::format("{:.1f},{:.1f}", a.X(v.back()), a.Y(1.0));
    body +=
        fmt::format(R"svg(<polyline points="{}" fill="none" stroke="{}" stroke-width="1.8"/>)svg", points, kColors[c]);
  }
  // Legend colours follow the size classes.
  return Svg(body + Legend(names));
}

std::string FiguresTable(const sim::Summary& s, const sim::SimResult& r) {
  std::string rows;
  auto row = [&](const std::string& name, const sim::GroupFigures& g) {
    rows += fmt::format(
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.0f}</td><td>{:.0f}</td><td>{:.0f}</td><td>{:.0f}</"
        "td><td>{:.2f}</td></tr>",
        Escape(name), g.submitted, g.started, g.completed, g.wait_s.mean, g.wait_s.p95, g.jct_s.mean, g.jct_s.p95,
        g.mean_bounded_slowdown);
  };
  row("all jobs", s.all);
  for (int c = 0; c < sim::kSizeClasses; ++c) row(fmt::format("{} accelerators", sim::SizeClassName(c)), s.by_size[c]);
  for (size_t t = 0; t < r.tenant_names.size(); ++t) row("tenant " + r.tenant_names[t], s.by_tenant[t]);
  return "<table><tr><th></th><th>submitted</th><th>started</th><th>completed</th><th>mean wait s</th><th>p95 wait "
         "s</th>"
         "<th>mean JCT s</th><th>p95 JCT s</th><th>bounded slowdown</th></tr>" +
         rows + "</table>";
}

ordered_json PowerJson(const sim::SimResult& r) {
  const double it_mwh = r.it_energy_wh / 1e6, facility_mwh = r.facility_energy_wh / 1e6;
  ordered_json by_tenant = ordered_json::object();
  for (size_t t = 0; t < r.tenant_names.size(); ++t) by_tenant[r.tenant_names[t]] = Round(r.tenant_energy_wh[t] / 1e6);
  ordered_json p = {{"pue", Round(r.pue)},
                    {"design_pue", Round(r.design_pue)},
                    {"grid_connection_mw", Round(static_cast<double>(r.grid_connection_w) / 1e6)},
                    {"it_mwh", Round(it_mwh)},
                    {"facility_mwh", Round(facility_mwh)},
                    {"peak_facility_mw", Round(r.peak_facility_w / 1e6)},
                    {"liquid_captured_heat_mwh", Round(it_mwh * r.liquid_heat_capture)},
                    {"tenant_it_mwh", by_tenant}};
  if (r.carbon_g) {
    p["carbon_t"] = Round(*r.carbon_g / 1e6);
    p["mean_g_per_kwh"] = facility_mwh > 0 ? Round(*r.carbon_g / (facility_mwh * 1000)) : 0.0;
  } else {
    p["carbon_t"] = nullptr;
    p["mean_g_per_kwh"] = nullptr;
  }
  ordered_json hall_mwh = ordered_json::object();
  for (size_t h = 0; h < r.hall_names.size(); ++h) hall_mwh[r.hall_names[h]] = Round(r.hall_energy_wh[h] / 1e6);
  p["hall_it_mwh"] = hall_mwh;
  ordered_json tenant_peak = ordered_json::object(), hall_peak = ordered_json::object();
  for (size_t t = 0; t < r.tenant_names.size(); ++t) tenant_peak[r.tenant_names[t]] = Round(r.tenant_peak_w[t] / 1e6);
  for (size_t h = 0; h < r.hall_names.size(); ++h) {
    double most = 0;
    for (const sim::Sample& s : r.samples) most = std::max(most, s.hall_it_w[h]);
    hall_peak[r.hall_names[h]] = Round(most / 1e6);
  }
  const sim::JobRecord* biggest = nullptr;
  for (const sim::JobRecord& j : r.jobs) {
    if (!biggest || j.peak_w > biggest->peak_w) biggest = &j;
  }
  p["peak_it_mw"] = {{"campus", Round(r.peak_it_w / 1e6)},
                     {"tenant", tenant_peak},
                     {"hall", hall_peak},
                     {"largest_job", biggest ? ordered_json{{"id", biggest->id}, {"mw", Round(biggest->peak_w / 1e6)}}
                                             : ordered_json(nullptr)}};
  if (r.cost_eur) {
    std::vector<double> tenant_eur(r.tenant_names.size(), 0);
    for (const sim::JobRecord& j : r.jobs) tenant_eur[j.tenant.value()] += j.cost_eur;
    ordered_json t = ordered_json::object();
    for (size_t u = 0; u < r.tenant_names.size(); ++u) t[r.tenant_names[u]] = Round(tenant_eur[u]);
    p["cost_eur"] = Round(*r.cost_eur);
    p["tenant_cost_eur"] = t;
  } else {
    p["cost_eur"] = nullptr;
  }
  if (r.carbon_g || r.cost_eur) {
    // Per tenant, and flexible jobs against the others: each job's facility energy weighed by the
    // grid's intensity (or price) while it ran.
    std::vector<double> tenant_g(r.tenant_names.size(), 0);
    double flex_g = 0, flex_kwh = 0, other_g = 0, other_kwh = 0, flex_eur = 0, other_eur = 0;
    uint64_t flexible = 0, completed = 0, missed = 0;
    for (const sim::JobRecord& j : r.jobs) {
      tenant_g[j.tenant.value()] += j.carbon_g;
      const double kwh = j.energy_wh * r.job_pue / 1000;
      (j.flexible ? flex_g : other_g) += j.carbon_g;
      (j.flexible ? flex_kwh : other_kwh) += kwh;
      (j.flexible ? flex_eur : other_eur) += j.cost_eur;
      if (!j.flexible) continue;
      ++flexible;
      if (j.outcome == sim::Outcome::kCompleted) ++completed;
      if (j.deadline && ((j.end && *j.end > *j.deadline) || (!j.end && r.end > *j.deadline))) ++missed;
    }
    auto per = [](double amount, double kwh, double scale) {
      return kwh > 0 ? ordered_json(Round(amount / kwh * scale)) : ordered_json(nullptr);
    };
    ordered_json flex = {{"jobs", flexible}, {"completed", completed}, {"missed_deadline", missed}};
    if (r.carbon_g) {
      ordered_json t = ordered_json::object();
      for (size_t u = 0; u < r.tenant_names.size(); ++u) t[r.tenant_names[u]] = Round(tenant_g[u] / 1e6);
      p["tenant_carbon_t"] = t;
      flex["g_per_kwh"] = per(flex_g, flex_kwh, 1);
      flex["others_g_per_kwh"] = per(other_g, other_kwh, 1);
    }
    if (r.cost_eur) {
      flex["eur_per_mwh"] = per(flex_eur, flex_kwh, 1000);
      flex["others_eur_per_mwh"] = per(other_eur, other_kwh, 1000);
    }
    p["flexible"] = flex;
  }
  p["campus_it_budget_mw"] = r.campus_budget_w ? ordered_json(Round(*r.campus_budget_w / 1e6)) : ordered_json(nullptr);
  ordered_json budgets = ordered_json::object();
  for (size_t l = 0; l < r.budget_levels.size(); ++l) {
    budgets[r.budget_levels[l]] = {{"budgets", r.budgets_by_level[l]}, {"violations", r.violations_by_level[l]}};
  }
  p["budgets"] = budgets;
  p["max_violation_w"] = Round(r.max_violation_w);
  p["power_limit_changes"] = r.power_limit_changes;
  p["capping_lost_accelerator_hours"] = Round(r.capping_lost_accelerator_hours);
  p["useful_accelerator_hours"] = Round(r.useful_accelerator_hours);
  p["completed_accelerator_hours"] = Round(r.completed_accelerator_hours);
  if (r.heat_network) {
    const double reused_mwh = r.heat_reused_wh / 1e6;
    const double erf = facility_mwh > 0 ? reused_mwh / facility_mwh : 0;
    p["heat"] = {{"demand_mwh", Round(r.heat_demand_wh / 1e6)},
                 {"delivered_mwh", Round(r.heat_delivered_wh / 1e6)},
                 {"reused_mwh", Round(reused_mwh)},
                 {"heat_pump_mwh", Round(r.heat_pump_wh / 1e6)},
                 {"heat_pump_cop", r.heat_pump_cop ? ordered_json(Round(*r.heat_pump_cop)) : ordered_json(nullptr)},
                 {"erf", Round(erf)},
                 {"tenant_reused_mwh",
                  [&] {
                    ordered_json t = ordered_json::object();
                    for (size_t u = 0; u < r.tenant_names.size(); ++u) {
                      t[r.tenant_names[u]] = Round(r.tenant_heat_reused_wh[u] / 1e6);
                    }
                    return t;
                  }()},
                 {"ere", Round((1 - erf) * r.pue)}};
  } else {
    p["heat"] = nullptr;
  }
  return p;
}

// Heat delivered into the heating network against its demand.
std::string HeatChart(const sim::SimResult& r) {
  if (r.samples.empty() || !r.heat_network) return "<p>No heating network in this scenario.</p>";
  double most = 1;
  for (const sim::Sample& s : r.samples) most = std::max({most, s.heat_demand_w / 1e6, s.heat_delivered_w / 1e6});
  Axes a{0, Days(r.samples.back().at), 0, most * 1.05};
  std::string demand, delivered;
  for (const sim::Sample& s : r.samples) {
    demand += fmt::format("{:.1f},{:.1f} ", a.X(Days(s.at)), a.Y(s.heat_demand_w / 1e6));
    delivered += fmt::format("{:.1f},{:.1f} ", a.X(Days(s.at)), a.Y(s.heat_delivered_w / 1e6));
  }
  return Svg(AxesSvg(a, "simulated days", "heat (MW)") +
             fmt::format(R"svg(<polyline points="{}" fill="none" stroke="{}" stroke-width="1.5"/>)svg", delivered,
                         kColors[0]) +
             fmt::format(R"svg(<polyline points="{}" fill="none" stroke="{}" stroke-dasharray="6 4"/>)svg", demand,
                         kColors[1]) +
             Legend({"heat delivered", "network demand"}));
}

// Each hall's IT draw as a share of its rated draw, hour by hour: a row per hall.
std::string HallHeatMap(const sim::SimResult& r) {
  if (r.samples.empty() || r.hall_names.empty()) return "<p>No samples.</p>";
  const TimeMs bucket = kMsPerHour;
  const size_t columns = static_cast<size_t>(r.samples.back().at / bucket) + 1;
  const double cell_w = std::max(1.0, (kW - kLeft - kRight) / static_cast<double>(columns));
  const double cell_h = 14;
  std::vector<std::vector<double>> sum(r.hall_names.size(), std::vector<double>(columns, 0));
  std::vector<uint32_t> count(columns, 0);
  for (const sim::Sample& s : r.samples) {
    const size_t c = static_cast<size_t>(s.at / bucket);
    count[c]++;
    for (size_t h = 0; h < r.hall_names.size(); ++h) sum[h][c] += s.hall_it_w[h];
  }
  std::string body;
  for (size_t h = 0; h < r.hall_names.size(); ++h) {
    const double y = kTop + cell_h * static_cast<double>(h);
    body += fmt::format(R"svg(<text x="{}" y="{}" font-size="10" text-anchor="end">{}</text>)svg", kLeft - 4,
                        y + cell_h - 3, Escape(r.hall_names[h]));
    for (size_t c = 0; c < columns; ++c) {
      if (count[c] == 0 || r.hall_rated_w[h] <= 0) continue;
      const double share = std::clamp(sum[h][c] / count[c] / r.hall_rated_w[h], 0.0, 1.0);
      // White (idle) to deep red (rated).
      const int g = static_cast<int>(255 - 200 * share);
      body += fmt::format(R"svg(<rect x="{:.1f}" y="{:.1f}" width="{:.2f}" height="{}" fill="rgb(230,{},{})"/>)svg",
                          kLeft + cell_w * static_cast<double>(c), y, cell_w + 0.3, cell_h - 1, g, g);
    }
  }
  const double height = kTop + cell_h * static_cast<double>(r.hall_names.size()) + 24;
  body += fmt::format(R"svg(<text x="{}" y="{}" font-size="11">hours since the start; colour: hall IT draw / its )svg"
                      R"svg(rated draw (white 0, red 1)</text>)svg",
                      kLeft, height - 6);
  return fmt::format(
      R"svg(<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{:.0f}" viewBox="0 0 {} {:.0f}">{}</svg>)svg",
      kW, height, kW, height, body);
}

// Facility draw against the campus budget (the grid connection, or the oversubscribed envelope),
// both in facility terms.
std::string PowerChart(const sim::SimResult& r) {
  if (r.samples.empty()) return "<p>No samples.</p>";
  const double grid_mw =
      r.campus_budget_w ? *r.campus_budget_w * r.design_pue / 1e6 : static_cast<double>(r.grid_connection_w) / 1e6;
  double most = grid_mw;
  for (const sim::Sample& s : r.samples) most = std::max(most, s.facility_w / 1e6);
  Axes a{0, Days(r.samples.back().at), 0, most * 1.05};
  std::string points;
  for (const sim::Sample& s : r.samples) {
    points += fmt::format("{:.1f},{:.1f} ", a.X(Days(s.at)), a.Y(s.facility_w / 1e6));
  }
  std::string body =
      AxesSvg(a, "simulated days", "facility power (MW)") +
      fmt::format(R"svg(<polyline points="{}" fill="none" stroke="{}" stroke-width="1.5"/>)svg", points, kColors[0]);
  if (grid_mw > 0) {
    body += fmt::format(R"svg(<line x1="{0}" y1="{2}" x2="{1}" y2="{2}" stroke="{3}" stroke-dasharray="6 4"/>)svg",
                        a.X(a.x0), a.X(a.x1), a.Y(grid_mw), kColors[1]);
  }
  return Svg(body + Legend({"facility draw", r.campus_budget_w ? "campus budget" : "grid connection"}));
}

ordered_json EttrJson(const sim::EttrGroup& g) {
  return {{"min_accelerators", g.min_accelerators},
          {"jobs", g.jobs},
          {"ettr", Round(g.ettr)},
          {"wall_hours", Round(g.wall_hours)},
          {"interruptions_per_job", Round(g.interruptions_per_job)},
          {"failed", g.failed}};
}

ordered_json FailuresJson(const sim::Summary& s, const sim::SimResult& r) {
  const sim::FailureFigures& f = r.failures;
  ordered_json causes = ordered_json::object();
  for (int c = 0; c < kFailureCauses; ++c) causes[FailureCauseName(static_cast<FailureCause>(c))] = f.node_failures[c];
  ordered_json domains = ordered_json::object();
  for (size_t d = 0; d < f.domain_names.size(); ++d) domains[f.domain_names[d]] = f.domain_failures[d];
  ordered_json failed = ordered_json::array();
  for (const sim::FailureFigures::Failed& x : f.failed)
    failed.push_back({{"id", r.jobs[x.job].id}, {"reason", x.reason}});
  return {{"modelled", f.enabled},
          {"node_failures_by_cause", causes},
          {"domain_failures", domains},
          {"maintenance_windows", f.maintenance_windows},
          {"health_transitions", f.health_transitions},
          {"health_refused", f.health_refused},
          {"interruptions", f.interruptions},
          {"restarts_on_spares", f.spare_restarts},
          {"spares_used", f.spares_used},
          {"requeues", f.requeues},
          {"jobs_failed", s.failed},
          {"lost_accelerator_hours", Round(f.lost_accelerator_hours)},
          {"time_to_recover_s", DistributionJson(s.recover_s)},
          {"goodput", Round(s.goodput)},
          {"allocated_accelerator_hours", Round(r.allocated_accelerator_hours)},
          {"useful_accelerator_hours", Round(r.useful_accelerator_hours)},
          {"ettr_large_jobs", EttrJson(s.ettr_large)},
          {"ettr_16k_jobs", EttrJson(s.ettr_16k)},
          {"failed_jobs", failed}};
}

std::string OutChart(const sim::SimResult& r) {
  if (r.samples.empty()) return "<p>No samples.</p>";
  double most = 1;
  for (const sim::Sample& s : r.samples) most = std::max(most, static_cast<double>(s.out_accelerators));
  Axes a{0, Days(r.samples.back().at), 0, most * 1.05};
  std::string points;
  for (const sim::Sample& s : r.samples) {
    points += fmt::format("{:.1f},{:.1f} ", a.X(Days(s.at)), a.Y(static_cast<double>(s.out_accelerators)));
  }
  return Svg(
      AxesSvg(a, "simulated days", "accelerators out of service") +
      fmt::format(R"svg(<polyline points="{}" fill="none" stroke="{}" stroke-width="1.5"/>)svg", points, kColors[3]));
}

std::string FailurePanel(const sim::Summary& s, const sim::SimResult& r) {
  const sim::FailureFigures& f = r.failures;
  if (!f.enabled) return "<p class=\"todo\">No failures were injected in this run.</p>";
  std::string causes;
  for (int c = 0; c < kFailureCauses; ++c) {
    causes += fmt::format("{}{} {}", c ? ", " : "", f.node_failures[c], FailureCauseName(static_cast<FailureCause>(c)));
  }
  for (size_t d = 0; d < f.domain_names.size(); ++d) {
    causes += fmt::format(", {} {}", f.domain_failures[d], Escape(f.domain_names[d]));
  }
  std::string rows;
  for (const sim::EttrGroup* g : {&s.ettr_large, &s.ettr_16k}) {
    rows += fmt::format("<tr><td>{}+ accelerators</td><td>{}</td><td>{:.3f}</td><td>{:.2f}</td><td>{}</td></tr>",
                        Human(g->min_accelerators), g->jobs, g->ettr, g->interruptions_per_job, g->failed);
  }
  return fmt::format(
             "<p>Failures ({}); {} maintenance windows. {} job interruptions: {} restarted at once on hot spares "
             "({} spares used), {} requeued; {} jobs failed (after their last allowed restart, or a crash with none "
             "allowed). {} accelerator-hours "
             "lost (work since the last checkpoint, restarts, stalls); time to recover p50 {} s, p95 {} s. "
             "Goodput {:.3f} of the accelerator-hours allocated.</p>",
             causes, f.maintenance_windows, Human(static_cast<double>(f.interruptions)), f.spare_restarts,
             f.spares_used, f.requeues, s.failed, Human(f.lost_accelerator_hours), Human(s.recover_s.p50),
             Human(s.recover_s.p95), s.goodput) +
         "<table><tr><th>jobs</th><th>count</th><th>ETTR</th><th>interruptions per job</th><th>failed</th></tr>" +
         rows + "</table>" + OutChart(r);
}

}  // namespace

ordered_json SummaryJson(const RunInfo& info, const sim::Summary& s, const sim::SimResult& r) {
  ordered_json by_size = ordered_json::object();
  for (int c = 0; c < sim::kSizeClasses; ++c) by_size[sim::SizeClassName(c)] = GroupJson(s.by_size[c]);
  ordered_json by_tenant = ordered_json::object();
  for (size_t t = 0; t < r.tenant_names.size(); ++t) {
    ordered_json g = GroupJson(s.by_tenant[t]);
    g["utilisation"] = Round(s.tenant_utilisation[t]);
    by_tenant[r.tenant_names[t]] = g;
  }
  ordered_json rejected = ordered_json::array();
  for (size_t i = 0; i < r.rejected.size(); ++i) {
    rejected.push_back({{"id", r.jobs[r.rejected[i].job].id},
                        {"origin", i < info.rejected_origins.size() ? info.rejected_origins[i] : ""},
                        {"reason", r.rejected[i].reason}});
  }
  return {{"schema", "joule.sim.summary/1"},
          {"run",
           {{"scenario", info.scenario},
            {"workload", info.workload},
            {"seed", info.seed},
            {"days", Round(info.days)},
            {"policy", info.policy},
            {"tick_s", Round(r.tick / 1000.0)}}},
          {"campus", {{"accelerators", r.capacity}}},
          {"engine", {{"steps", r.steps}, {"events", r.events}}},
          {"jobs", GroupJson(s.all)},
          {"by_size", by_size},
          {"by_tenant", by_tenant},
          {"utilisation", Round(s.utilisation)},
          {"busy", Round(s.busy)},
          {"queue", {{"mean_jobs", Round(s.mean_pending_jobs)}, {"max_jobs", s.max_pending_jobs}}},
          {"mean_fragmented_accelerators", Round(s.mean_fragmented_accelerators)},
          {"preemptions", s.preemptions},
          {"lost_accelerator_hours", Round(s.lost_accelerator_hours)},
          {"reservation_breaches", s.reservation_breaches},
          {"longest_giant_gang_wait_s", Round(s.longest_giant_wait_s)},
          {"power", PowerJson(r)},
          {"failures", FailuresJson(s, r)},
          {"rejected", rejected}};
}

Status WriteSimOutputs(const std::string& dir, const RunInfo& info, const sim::Summary& summary,
                       const sim::SimResult& r) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::Error(fmt::format("--out: cannot create '{}': {}", dir, ec.message()));
  auto open = [&](const char* name, std::ofstream& out) {
    out.open(std::filesystem::path(dir) / name, std::ios::binary);
    return out.good() ? Status::Ok() : Status::Error(fmt::format("--out: cannot write '{}/{}'", dir, name));
  };
  std::ofstream json, csv, html;
  for (auto [name, out] :
       {std::pair{"summary.json", &json}, std::pair{"timeseries.csv", &csv}, std::pair{"report.html", &html}}) {
    if (Status s = open(name, *out); !s.ok()) return s;
  }
  json << SummaryJson(info, summary, r).dump(2) << "\n";

  csv << "time_s,pending_jobs,running_jobs,pending_accelerators,allocated,busy,fragmented,it_mw,facility_mw,"
         "heat_demand_mw,heat_delivered_mw,out_of_service";
  for (const std::string& t : r.tenant_names) csv << ",tenant:" << t;
  for (const std::string& t : r.type_names) csv << ",type:" << t;
  for (const std::string& h : r.hall_names) csv << ",hall_it_mw:" << h;
  csv << "\n";
  auto acc = [](uint64_t milli) { return fmt::format("{:.3f}", static_cast<double>(milli) / 1000.0); };
  for (const sim::Sample& s : r.samples) {
    csv << s.at / 1000 << ',' << s.pending_jobs << ',' << s.running_jobs << ',' << acc(s.pending_milli) << ','
        << acc(s.allocated_milli) << ',' << acc(s.busy_milli) << ',' << acc(s.fragmented_milli) << ','
        << fmt::format("{:.3f},{:.3f},{:.3f},{:.3f},{}", s.it_w / 1e6, s.facility_w / 1e6, s.heat_demand_w / 1e6,
                       s.heat_delivered_w / 1e6, s.out_accelerators);
    for (uint64_t m : s.tenant_milli) csv << ',' << acc(m);
    for (uint64_t m : s.type_milli) csv << ',' << acc(m);
    for (double w : s.hall_it_w) csv << fmt::format(",{:.3f}", w / 1e6);
    csv << "\n";
  }

  html << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Joule twin report</title><style>"
          "body{font-family:sans-serif;max-width:900px;margin:1em "
          "auto;color:#222}table{border-collapse:collapse;font-size:13px}"
          "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}td:first-child{text-align:left}"
          "section{margin:1.2em 0}.todo{color:#777}</style></head><body>\n";
  html << fmt::format(
      "<h1>Joule twin report</h1><p>Scenario <b>{}</b>, workload <b>{}</b>, seed {}, {:.4g} simulated days, "
      "policy {}. {} accelerators; {} jobs submitted, {} started, {} completed.</p>\n",
      Escape(info.scenario), Escape(info.workload), info.seed, info.days, Escape(info.policy),
      Human(static_cast<double>(r.capacity)), Human(static_cast<double>(summary.all.submitted)),
      Human(static_cast<double>(summary.all.started)), Human(static_cast<double>(summary.all.completed)));
  html << fmt::format(
      "<p>Mean allocation {:.1f}% (busy {:.1f}%); mean queue {:.1f} jobs (max {}); mean fragmented {:.0f} "
      "accelerators; {} preemptions losing {:.1f} accelerator-hours; {} reservation breaches; longest wait "
      "of a gang over 1,024 accelerators {} s.</p>\n",
      summary.utilisation * 100, summary.busy * 100, summary.mean_pending_jobs,
      Human(static_cast<double>(summary.max_pending_jobs)), summary.mean_fragmented_accelerators, summary.preemptions,
      summary.lost_accelerator_hours, summary.reservation_breaches, Human(summary.longest_giant_wait_s));
  html << "<section><h2>Accelerators allocated, by tenant</h2>" << AllocationChart(r) << "</section>\n";
  html << "<section><h2>Queue length</h2>" << QueueChart(r) << "</section>\n";
  html << "<section><h2>Wait time CDF, by job size</h2>" << WaitCdfChart(r) << "</section>\n";
  html << "<section><h2>Figures</h2>" << FiguresTable(summary, r) << "</section>\n";
  {
    const double it_mwh = r.it_energy_wh / 1e6;
    uint64_t violations = 0;
    for (uint64_t v : r.violations_by_level) violations += v;
    std::string budget =
        r.campus_budget_w
            ? fmt::format(
                  "The engine's power governor kept the campus IT budget of {} MW and every hall, row and rack "
                  "budget: {} budget violations measured; {} power-limit changes cost {} accelerator-hours; "
                  "{} accelerator-hours of work done.",
                  Human(*r.campus_budget_w / 1e6), violations, Human(static_cast<double>(r.power_limit_changes)),
                  Human(r.capping_lost_accelerator_hours), Human(r.useful_accelerator_hours))
            : "No power budget was enforced (an uncapped run).";
    std::string heat;
    if (r.heat_network) {
      const double erf = r.facility_energy_wh > 0 ? r.heat_reused_wh / r.facility_energy_wh : 0;
      heat = fmt::format(
          " Heat pumps (COP {}) delivered {} MWh of the heating network's {} MWh demand, reusing {} MWh of campus "
          "heat: ERF {:.3f}, ERE {:.3f}.",
          r.heat_pump_cop ? fmt::format("{:.2f}", *r.heat_pump_cop) : "none, a plain exchanger",
          Human(r.heat_delivered_wh / 1e6), Human(r.heat_demand_wh / 1e6), Human(r.heat_reused_wh / 1e6), erf,
          (1 - erf) * r.pue);
    }
    html << "<section><h2>Power and heat</h2>"
         << fmt::format(
                "<p>IT energy {} MWh, facility {} MWh at PUE {:.2f}; peak facility draw {} MW against a {} MW "
                "grid connection; {} MWh of heat captured in the liquid loop{}. {}{}</p>",
                Human(it_mwh), Human(r.facility_energy_wh / 1e6), r.pue, Human(r.peak_facility_w / 1e6),
                Human(static_cast<double>(r.grid_connection_w) / 1e6), Human(it_mwh * r.liquid_heat_capture),
                r.carbon_g ? fmt::format("; {} t CO2e from the grid", Human(*r.carbon_g / 1e6)) : "", budget, heat)
         << PowerChart(r) << "<h3>Draw per hall</h3>" << HallHeatMap(r) << "<h3>Heat delivered and demanded</h3>"
         << HeatChart(r) << "</section>\n";
  }
  html << "<section><h2>Failures</h2>" << FailurePanel(summary, r) << "</section>\n";
  html << "</body></html>\n";
  for (std::ofstream* out : {&json, &csv, &html}) {
    out->flush();
    if (!out->good()) return Status::Error(fmt::format("--out: writing into '{}' failed", dir));
  }
  return Status::Ok();
}

}  // namespace joule::io
