// The agent's /metrics page in the Prometheus text format, with NVIDIA dcgm-exporter's metric
// names and labels (DCGM_FI_DEV_POWER_USAGE{gpu, UUID, device, modelName, Hostname, …}) so that
// dashboards built for dcgm-exporter work unchanged; a GPU running a job's worker carries the
// job's id in `hpc_job`, as dcgm-exporter's HPC job mapping does. Thread-safety: none (a function).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "agent/telemetry.h"

namespace joule::agent {

struct AgentMetrics {
  std::string hostname;  // the node's name
  std::string driver_version;
  const std::vector<GpuInfo>* gpus = nullptr;
  const std::vector<GpuReading>* readings = nullptr;  // one per gpu, or empty: no reading yet
  std::map<uint32_t, uint64_t> job_of_gpu;            // devices running a worker: its job
  size_t workers_running = 0;
  uint64_t heartbeats_failed = 0;
};

std::string FormatMetrics(const AgentMetrics& m);

}  // namespace joule::agent
