// `joule sim`: the digital twin. Replays a trace or a tenant workload model on a scenario's
// campus through the scheduling engine and writes summary.json, timeseries.csv and report.html.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>

#include <fmt/format.h>

#include "apps/commands.h"
#include "io/grid_series.h"
#include "io/job_traces.h"
#include "io/scenario.h"
#include "io/sim_output.h"
#include "io/workload_model.h"
#include "sim/metrics.h"
#include "sim/simulator.h"

namespace joule::apps {
namespace {

struct SimCommandOptions {
  std::string scenario;
  std::string workload;
  std::string format = "auto";
  std::optional<double> days;
  uint64_t seed = 1;
  std::string out;
  std::string order = "joule";
  double tick_s = 10;
  double arrival_scale = 1;
  std::optional<std::string> grid;
  std::optional<std::string> phase;
  std::optional<double> oversubscription;  // percent
  bool uncapped = false;
  bool no_flexible = false;
  std::optional<std::string> price;
  std::string flexible_by = "carbon";
  std::string failures = "scenario";
  bool no_spares = false;
  std::optional<double> checkpoint_min;
};

// --failures: the scenario's failure model (none if it has no `failures:` block), the built-in
// defaults, or none; --no-spares and --checkpoint-min change the jobs (the acceptance runs compare
// them).
Result<std::optional<FailureModelSpec>> ParseFailures(const SimCommandOptions& o, const io::Scenario& scenario) {
  if (o.failures == "scenario") return scenario.failures;
  if (o.failures == "default") return std::optional<FailureModelSpec>(FailureModelSpec::Defaults());
  if (o.failures == "none") return std::optional<FailureModelSpec>();
  return Status::Error(fmt::format("--failures: must be scenario, default or none, got '{}'", o.failures));
}

void AdjustJobs(const SimCommandOptions& o, sim::Workload& workload) {
  for (sim::WorkloadJob& job : workload.jobs) {
    if (o.no_spares) job.spec.spare_nodes = 0;
    if (o.checkpoint_min && job.spec.checkpoint_interval) {
      job.spec.checkpoint_interval = std::llround(*o.checkpoint_min * 60'000.0);
    }
  }
}

// --oversubscription P: the campus's IT budget becomes its rated IT draw / (1 + P/100), as if P%
// more accelerators had been installed than the envelope holds at rated power. --uncapped: no
// budgets at all, the baseline an oversubscribed campus is compared with.
Result<PowerConfig> ParsePower(const SimCommandOptions& o, const Fleet& fleet) {
  PowerConfig power;
  if (o.uncapped && o.oversubscription) return Status::Error("--uncapped and --oversubscription exclude each other");
  power.enabled = !o.uncapped;
  if (o.oversubscription) {
    const double rated = static_cast<double>(fleet.it_draw().rated_w);
    const Watts budget = static_cast<Watts>(rated / (1.0 + *o.oversubscription / 100.0));
    if (budget < fleet.it_draw().idle_w) {
      return Status::Error(fmt::format(
          "--oversubscription: {}% leaves a campus budget of {:.1f} MW, below the fleet's idle IT draw of {:.1f} MW",
          *o.oversubscription, static_cast<double>(budget) / 1e6, static_cast<double>(fleet.it_draw().idle_w) / 1e6));
    }
    power.campus_it_budget_w = budget;
  }
  return power;
}

// The workload file's kind: a YAML tenant model, or a CSV told apart by its header.
Result<std::string> DetectFormat(const std::string& path) {
  const std::string ext = std::filesystem::path(path).extension().string();
  if (ext == ".yaml" || ext == ".yml") return std::string("model");
  std::ifstream in(path);
  if (!in) return Status::Error(fmt::format("{}: cannot open workload", path));
  std::string header;
  std::getline(in, header);
  if (header.find("submit_s") != std::string::npos) return std::string("csv");
  if (header.find("num_gpus") != std::string::npos && header.find("cluster") != std::string::npos) {
    return std::string("philly");
  }
  if (header.find("creation_time") != std::string::npos && header.find("gpu_milli") != std::string::npos) {
    return std::string("openb");
  }
  return Status::Error(fmt::format(
      "{}:1: cannot tell the workload's format from its header; give --format model, philly, openb or csv", path));
}

Result<sim::Workload> LoadWorkload(const SimCommandOptions& o, const std::string& format, const io::Scenario& scenario,
                                   TimeMs horizon) {
  if (format == "philly") return io::ReadPhillyTrace(o.workload, scenario);
  if (format == "openb") return io::ReadOpenbTrace(o.workload, scenario);
  if (format == "csv") return io::ReadJobCsv(o.workload, scenario);
  Result<sim::WorkloadModel> model = io::LoadWorkloadModel(o.workload, scenario);
  if (!model.ok()) return model.status();
  return sim::Generate(*model, scenario.tenants, horizon, o.seed);
}

// The hourly carbon series for --grid (empty without it); it must cover the whole horizon.
Result<std::vector<double>> LoadSeries(const char* flag, const std::optional<std::string>& path, bool price,
                                       TimeMs horizon) {
  if (!path) return std::vector<double>{};
  if (horizon == sim::SimOptions::kRunToCompletion) {
    return Status::Error(
        fmt::format("{}: needs --days (a trace otherwise runs to completion, an unknown length)", flag));
  }
  Result<std::vector<double>> series = price ? io::ReadPrice(*path) : io::ReadCarbonIntensity(*path);
  if (!series.ok()) return series.status();
  const int64_t hours_needed = horizon / kMsPerHour + 1;
  if (static_cast<int64_t>(series->size()) < hours_needed) {
    return Status::Error(
        fmt::format("{}: {} covers {} hours, the run needs {}", flag, *path, series->size(), hours_needed));
  }
  return series;
}

Result<QueueOrder> ParseOrder(const std::string& name) {
  if (name == "joule") return QueueOrder::kPriorityFairShareAge;
  if (name == "fifo") return QueueOrder::kFifo;
  if (name == "sjf") return QueueOrder::kShortestFirst;
  return Status::Error(fmt::format("--order: unknown order '{}' (known: joule, fifo, sjf)", name));
}

// Where a job came from: "file:line" for a trace row, "tenant/class" for a generated job.
std::string Origin(const std::string& path, const sim::Workload& w, uint32_t job) {
  const uint32_t origin = w.jobs[job].origin;
  if (!w.origins.empty()) return origin < w.origins.size() ? w.origins[origin] : "?";
  return fmt::format("{}:{}", path, origin);
}

void PrintSummary(const sim::Summary& s, const sim::SimResult& r, const std::string& out) {
  fmt::print("{} jobs submitted, {} started, {} completed, {} rejected; {} accelerators\n", s.all.submitted,
             s.all.started, s.all.completed, s.all.rejected, r.capacity);
  fmt::print(
      "allocation {:.1f}% of the campus on average; queue {:.1f} jobs on average; {} preemptions; "
      "{} reservation breaches\n",
      s.utilisation * 100, s.mean_pending_jobs, s.preemptions, s.reservation_breaches);
  fmt::print("{:<22} {:>9} {:>12} {:>12} {:>8}\n", "tenant", "jobs", "p95 wait s", "mean JCT s", "alloc %");
  for (size_t t = 0; t < r.tenant_names.size(); ++t) {
    const sim::GroupFigures& g = s.by_tenant[t];
    if (g.submitted == 0) continue;
    fmt::print("{:<22} {:>9} {:>12.0f} {:>12.0f} {:>8.1f}\n", r.tenant_names[t], g.submitted, g.wait_s.p95,
               g.jct_s.mean, s.tenant_utilisation[t] * 100);
  }
  const double it_mwh = r.it_energy_wh / 1e6;
  fmt::print("IT energy {:.0f} MWh (facility {:.0f} MWh at PUE {:.2f}), peak facility draw {:.0f} MW of {:.0f} MW",
             it_mwh, r.facility_energy_wh / 1e6, r.pue, r.peak_facility_w / 1e6,
             static_cast<double>(r.grid_connection_w) / 1e6);
  if (r.carbon_g) fmt::print("; {:.0f} t CO2e", *r.carbon_g / 1e6);
  if (r.cost_eur) fmt::print("; {:.0f} kEUR", *r.cost_eur / 1e3);
  fmt::print("\n");
  if (r.campus_budget_w) {
    uint64_t violations = 0;
    for (uint64_t v : r.violations_by_level) violations += v;
    fmt::print(
        "power: campus IT budget {:.1f} MW, peak IT {:.1f} MW; {} budget violations; {} limit changes, {:.0f} "
        "accelerator-hours lost to caps; {:.0f} accelerator-hours of work done\n",
        *r.campus_budget_w / 1e6, r.peak_it_w / 1e6, violations, r.power_limit_changes,
        r.capping_lost_accelerator_hours, r.useful_accelerator_hours);
  } else {
    fmt::print("power: no campus budget; {:.0f} accelerator-hours of work done\n", r.useful_accelerator_hours);
  }
  if (r.failures.enabled) {
    const sim::FailureFigures& f = r.failures;
    fmt::print(
        "failures: {} interruptions ({} on hot spares, {} requeued), {} jobs failed, {:.0f} accelerator-hours lost; "
        "ETTR {:.3f} for {} jobs of 1,025+ accelerators, {:.3f} for {} of 16,384+; goodput {:.3f}\n",
        f.interruptions, f.spare_restarts, f.requeues, s.failed, f.lost_accelerator_hours, s.ettr_large.ettr,
        s.ettr_large.jobs, s.ettr_16k.ettr, s.ettr_16k.jobs, s.goodput);
  }
  fmt::print("report: {}/report.html\n", out);
}

int RunSim(const SimCommandOptions& o) {
  Result<QueueOrder> order = ParseOrder(o.order);
  if (!order.ok()) {
    std::cerr << order.status().message() << "\n";
    return kExitBadInput;
  }
  Result<io::Scenario> scenario = io::LoadScenario(o.scenario, io::LoadOptions{o.phase});
  if (!scenario.ok()) {
    std::cerr << scenario.status().message() << "\n";
    return kExitBadInput;
  }
  if (scenario->tenants.empty()) scenario->tenants.push_back(TenantSpec{"default"});
  Result<std::string> format = o.format == "auto" ? DetectFormat(o.workload) : Result<std::string>(o.format);
  if (!format.ok()) {
    std::cerr << format.status().message() << "\n";
    return kExitBadInput;
  }
  // A model runs for --days (7 by default); a trace runs to completion unless --days cuts it.
  const TimeMs horizon = o.days               ? static_cast<TimeMs>(*o.days * static_cast<double>(kMsPerDay))
                         : *format == "model" ? 7 * kMsPerDay
                                              : sim::SimOptions::kRunToCompletion;
  Result<std::vector<double>> grid = LoadSeries("--grid", o.grid, false, horizon);
  if (!grid.ok()) {
    std::cerr << grid.status().message() << "\n";
    return kExitBadInput;
  }
  Result<std::vector<double>> price = LoadSeries("--price", o.price, true, horizon);
  if (!price.ok()) {
    std::cerr << price.status().message() << "\n";
    return kExitBadInput;
  }
  if (o.flexible_by == "price" && !o.price) {
    std::cerr << "--flexible-by price: needs --price\n";
    return kExitBadInput;
  }
  Result<sim::Workload> workload = LoadWorkload(o, *format, *scenario, horizon);
  if (!workload.ok()) {
    std::cerr << workload.status().message() << "\n";
    return kExitBadInput;
  }
  if (o.arrival_scale != 1) sim::ScaleArrivals(*workload, o.arrival_scale);
  AdjustJobs(o, *workload);
  Result<std::optional<FailureModelSpec>> failures = ParseFailures(o, *scenario);
  if (!failures.ok()) {
    std::cerr << failures.status().message() << "\n";
    return kExitBadInput;
  }
  if (*failures && horizon == sim::SimOptions::kRunToCompletion) {
    std::cerr << "--days: a trace replayed with failures needs a horizon (failures never stop); or --failures none\n";
    return kExitBadInput;
  }

  Result<PowerConfig> power = ParsePower(o, scenario->fleet);
  if (!power.ok()) {
    std::cerr << power.status().message() << "\n";
    return kExitBadInput;
  }
  sim::SimOptions options;
  options.engine.power = *power;
  options.shift_flexible = !o.no_flexible;
  options.price_eur_per_mwh = std::move(*price);
  options.flexible_by_price = o.flexible_by == "price";
  options.grid_g_per_kwh = std::move(*grid);
  options.end = horizon;
  options.tick = static_cast<TimeMs>(o.tick_s * 1000);
  options.engine.order = *order;
  options.oracle_estimates = *order == QueueOrder::kShortestFirst;
  options.failures = std::move(*failures);
  options.failure_seed = o.seed;
  sim::Simulator simulator(scenario->fleet, scenario->tenants, options);
  sim::SimResult result = simulator.Run(*workload);
  sim::Summary summary = sim::Summarize(result);
  const double days = static_cast<double>(result.end) / static_cast<double>(kMsPerDay);
  io::RunInfo info{o.scenario, o.workload, o.seed, days, o.order, {}};
  for (const sim::SimResult::Rejected& r : result.rejected)
    info.rejected_origins.push_back(Origin(o.workload, *workload, r.job));
  if (Status s = io::WriteSimOutputs(o.out, info, summary, result); !s.ok()) {
    std::cerr << s.message() << "\n";
    return kExitFailure;
  }
  PrintSummary(summary, result, o.out);
  if (!result.rejected.empty()) {
    fmt::print("{} jobs could never run on this campus (summary.json lists them under \"rejected\"):\n",
               result.rejected.size());
    for (size_t i = 0; i < std::min<size_t>(result.rejected.size(), 5); ++i) {
      const sim::SimResult::Rejected& r = result.rejected[i];
      fmt::print("  {}: job {}: {}\n", info.rejected_origins[i], result.jobs[r.job].id, r.reason);
    }
  }
  return kExitOk;
}

}  // namespace

void AddSimCommand(CLI::App& app, CommandFn& run) {
  auto o = std::make_shared<SimCommandOptions>();
  CLI::App* cmd = app.add_subcommand("sim", "Run the digital twin: a workload on a scenario's campus");
  cmd->add_option("--scenario", o->scenario, "Scenario file (YAML) giving the campus and tenants")->required();
  cmd->add_option("--workload", o->workload, "Tenant workload model (YAML) or job trace (CSV)")->required();
  cmd->add_option("--format", o->format, "Workload format: auto, model, philly, openb, csv")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "model", "philly", "openb", "csv"}));
  cmd->add_option("--days", o->days, "Simulated days (default: 7 for a model; a trace runs to completion)")
      ->check(CLI::Range(0.0001, 3650.0));
  cmd->add_option("--seed", o->seed, "Seed of the workload model")->capture_default_str();
  cmd->add_option("--out", o->out, "Folder for summary.json, timeseries.csv and report.html")->required();
  cmd->add_option("--order", o->order, "Queue order: joule (priority, fair share, age), fifo, sjf (true durations)")
      ->capture_default_str();
  cmd->add_option("--tick-s", o->tick_s, "Scheduling cycle in seconds")
      ->capture_default_str()
      ->check(CLI::Range(0.001, 3600.0));
  cmd->add_option("--phase", o->phase, "Build-out phase of the scenario");
  cmd->add_option("--grid", o->grid,
                  "Hourly grid carbon intensity (Electricity Maps CSV), hour 0 = the start of the run");
  cmd->add_option("--arrival-scale", o->arrival_scale,
                  "Multiply every submit time by this (0.25: arrivals four times denser, the same jobs)")
      ->capture_default_str()
      ->check(CLI::Range(0.001, 1000.0));
  cmd->add_option("--oversubscription", o->oversubscription,
                  "Shrink the campus IT budget to rated draw / (1 + P/100): P% more accelerators than it holds at "
                  "rated power")
      ->check(CLI::Range(0.0, 1000.0));
  cmd->add_flag("--uncapped", o->uncapped, "No power budgets: every job runs uncapped (the baseline)");
  cmd->add_option("--price", o->price,
                  "Hourly day-ahead price (CSV: Datetime (UTC), Price (EUR/MWh)), hour 0 = the start of the run");
  cmd->add_option("--flexible-by", o->flexible_by, "What flexible jobs wait for: carbon (with --grid) or price")
      ->capture_default_str()
      ->check(CLI::IsMember({"carbon", "price"}));
  cmd->add_option("--failures", o->failures,
                  "Failures to inject: scenario (its failures: block, if any), default (built-in rates), none")
      ->capture_default_str();
  cmd->add_flag("--no-spares", o->no_spares, "Jobs keep no hot spares (whatever their workload asks)");
  cmd->add_option("--checkpoint-min", o->checkpoint_min, "Every job that checkpoints does so this often (minutes)")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--no-flexible", o->no_flexible,
                "Run flexible jobs as soon as they can start (the baseline for low-carbon shifting)");
  cmd->callback([&run, o] { run = [o] { return RunSim(*o); }; });
}

}  // namespace joule::apps
