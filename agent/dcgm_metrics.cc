#include "agent/dcgm_metrics.h"

#include <fmt/format.h>

namespace joule::agent {
namespace {

// Label values escaped as the exposition format requires.
std::string Escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

struct Field {
  const char* name;
  const char* type;
  const char* help;  // dcgm-exporter's own wording
  double (*value)(const GpuReading&);
};

// The fields dcgm-exporter exports by default that NVML gives us, in its order.
const Field kFields[] = {
    {"DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %).",
     [](const GpuReading& r) { return static_cast<double>(r.utilization_pct); }},
    {"DCGM_FI_DEV_FB_FREE", "gauge", "Framebuffer memory free (in MiB).", nullptr},
    {"DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB).",
     [](const GpuReading& r) { return static_cast<double>(r.memory_used_mib); }},
    {"DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C).",
     [](const GpuReading& r) { return static_cast<double>(r.temperature_c); }},
    {"DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W).", [](const GpuReading& r) { return r.power_w; }},
    {"DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "counter", "Total energy consumption since boot (in mJ).",
     [](const GpuReading& r) { return static_cast<double>(r.energy_mj); }},
    {"DCGM_FI_DEV_POWER_MGMT_LIMIT", "gauge", "Power management limit (in W).",
     [](const GpuReading& r) { return r.power_limit_w; }},
    {"DCGM_FI_DEV_XID_ERRORS", "gauge", "Value of the last XID error encountered.",
     [](const GpuReading& r) { return static_cast<double>(r.last_xid); }},
    {"DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", "counter", "Total number of single-bit volatile ECC errors.",
     [](const GpuReading& r) { return static_cast<double>(r.ecc_corrected); }},
    {"DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "counter", "Total number of double-bit volatile ECC errors.",
     [](const GpuReading& r) { return static_cast<double>(r.ecc_uncorrected); }},
};

}  // namespace

std::string FormatMetrics(const AgentMetrics& m) {
  std::string out;
  const bool have = m.gpus != nullptr && m.readings != nullptr && m.readings->size() == m.gpus->size();
  if (have && !m.gpus->empty()) {
    std::vector<std::string> labels;
    for (const GpuInfo& g : *m.gpus) {
      std::string l =
          fmt::format(R"(gpu="{}",UUID="{}",device="nvidia{}",modelName="{}",Hostname="{}",)"
                      R"(DCGM_FI_DRIVER_VERSION="{}")",
                      g.index, Escape(g.uuid), g.index, Escape(g.model), Escape(m.hostname), Escape(m.driver_version));
      if (auto it = m.job_of_gpu.find(g.index); it != m.job_of_gpu.end())
        l += fmt::format(R"(,hpc_job="{}")", it->second);
      labels.push_back(std::move(l));
    }
    for (const Field& f : kFields) {
      out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", f.name, f.help, f.name, f.type);
      for (size_t i = 0; i < m.gpus->size(); ++i) {
        const GpuReading& r = (*m.readings)[i];
        const double v =
            f.value != nullptr
                ? f.value(r)
                : static_cast<double>((*m.gpus)[i].memory_mib - std::min(r.memory_used_mib, (*m.gpus)[i].memory_mib));
        out += fmt::format("{}{{{}}} {}\n", f.name, labels[i], v);
      }
    }
  }
  out += fmt::format(
      "# HELP joule_agent_workers Workers this agent runs now.\n# TYPE joule_agent_workers gauge\n"
      "joule_agent_workers {}\n"
      "# HELP joule_agent_heartbeat_failures_total Heartbeats the server did not answer.\n"
      "# TYPE joule_agent_heartbeat_failures_total counter\njoule_agent_heartbeat_failures_total {}\n",
      m.workers_running, m.heartbeats_failed);
  return out;
}

}  // namespace joule::agent
