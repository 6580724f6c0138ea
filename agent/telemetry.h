// GPU telemetry for the node agent (docs/agent.md): what accelerators a node has and what they
// read now — power, cumulative energy, temperature, utilisation, memory, ECC errors, the last XID
// and the power limit. Two backends: NVML, loaded at run time with dlopen (nvml.cc; not a build
// dependency), and a simulated one for tests and nodes without GPUs, whose figures follow the
// hardware catalog and which devices are busy. Thread-safety: one thread uses a backend at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "model/catalog.h"

namespace joule::agent {

struct GpuInfo {
  uint32_t index = 0;
  std::string uuid;   // "GPU-…" under NVML
  std::string model;  // "NVIDIA H100 80GB HBM3"
  uint64_t memory_mib = 0;
  double default_power_limit_w = 0;  // the board's own limit: what "uncapped" restores
};

// One device's reading. Counters (energy, ECC, XIDs) only grow while the agent runs.
struct GpuReading {
  double power_w = 0;
  uint64_t energy_mj = 0;  // since the driver loaded (NVML) or the backend opened (simulated)
  uint32_t temperature_c = 0;
  uint32_t utilization_pct = 0;
  uint64_t memory_used_mib = 0;
  uint64_t ecc_corrected = 0, ecc_uncorrected = 0;  // volatile counts
  uint64_t xid_count = 0;                           // XID critical errors seen by this agent
  uint64_t last_xid = 0;                            // 0: none yet
  double power_limit_w = 0;                         // enforced limit
};

class Telemetry {
 public:
  virtual ~Telemetry() = default;
  virtual std::string_view source() const = 0;  // "nvml" or "simulated"
  virtual std::string driver_version() const = 0;
  virtual const std::vector<GpuInfo>& gpus() const = 0;
  // One reading per device of gpus(), in the same order. Errors name the device and the call.
  virtual Result<std::vector<GpuReading>> Read() = 0;
  // Which devices run work now (the simulated backend draws power from it; NVML measures).
  virtual void SetBusy(const std::vector<bool>& /*busy*/) {}
  // Applies a power limit (watts) to one device; only with --apply-power-limits.
  virtual Status SetPowerLimit(uint32_t gpu, double watts) = 0;
};

// Opens NVML from `library` (default: the driver's libnvidia-ml.so.1). Errors say why: library not
// found, a symbol missing, nvmlInit failed, no devices.
Result<std::unique_ptr<Telemetry>> OpenNvml(const std::string& library = "libnvidia-ml.so.1");

// Milliseconds from a monotonic clock; injected so that tests control the simulated energy.
using MonotonicMs = std::function<int64_t()>;

// `count` devices of `type`: idle at type.idle_w, busy at 90% of type.rated_w; energy integrates
// power over `clock`; temperature follows power. Deterministic for a given clock.
std::unique_ptr<Telemetry> OpenSimulated(const AcceleratorType& type, uint32_t count, const std::string& node,
                                         MonotonicMs clock);

}  // namespace joule::agent
