// The simulated telemetry backend (telemetry.h): a node's accelerators as the hardware catalog
// describes them, drawing idle power until work runs on them.
#include <algorithm>

#include <fmt/format.h>

#include "agent/telemetry.h"

namespace joule::agent {
namespace {

constexpr double kBusyShareOfRated = 0.9;  // a training step's average draw (shared/data/README.md)
constexpr double kAmbientC = 30, kHeatCPerRatedShare = 45;

class SimulatedTelemetry final : public Telemetry {
 public:
  SimulatedTelemetry(const AcceleratorType& type, uint32_t count, const std::string& node, MonotonicMs clock)
      : type_(type),
        clock_(std::move(clock)),
        last_ms_(clock_()),
        energy_mj_(count, 0.0),
        busy_(count, false),
        limit_w_(count, static_cast<double>(type.rated_w)) {
    for (uint32_t i = 0; i < count; ++i) {
      gpus_.push_back({i, fmt::format("GPU-sim-{}-{}", node, i), fmt::format("Simulated {}", type.name),
                       static_cast<uint64_t>(type.memory_gib) * 1024, static_cast<double>(type.rated_w)});
    }
  }

  std::string_view source() const override { return "simulated"; }
  std::string driver_version() const override { return "simulated"; }
  const std::vector<GpuInfo>& gpus() const override { return gpus_; }

  Result<std::vector<GpuReading>> Read() override {
    Advance();
    std::vector<GpuReading> out;
    out.reserve(gpus_.size());
    for (size_t i = 0; i < gpus_.size(); ++i) {
      const double power = Power(i);
      GpuReading r;
      r.power_w = power;
      r.energy_mj = static_cast<uint64_t>(energy_mj_[i]);
      r.temperature_c =
          static_cast<uint32_t>(kAmbientC + kHeatCPerRatedShare * power / static_cast<double>(type_.rated_w));
      r.utilization_pct = busy_[i] ? 100 : 0;
      r.memory_used_mib = busy_[i] ? gpus_[i].memory_mib * 9 / 10 : 0;
      r.power_limit_w = limit_w_[i];
      out.push_back(r);
    }
    return out;
  }

  void SetBusy(const std::vector<bool>& busy) override {
    Advance();  // energy so far at the old draw
    for (size_t i = 0; i < busy_.size(); ++i) busy_[i] = i < busy.size() && busy[i];
  }

  Status SetPowerLimit(uint32_t gpu, double watts) override {
    if (gpu >= gpus_.size()) return Status::Error(fmt::format("gpu {}: no such device", gpu));
    Advance();
    limit_w_[gpu] = std::clamp(watts, static_cast<double>(type_.idle_w), static_cast<double>(type_.rated_w));
    return Status::Ok();
  }

 private:
  double Power(size_t i) const {
    const double draw =
        busy_[i] ? kBusyShareOfRated * static_cast<double>(type_.rated_w) : static_cast<double>(type_.idle_w);
    return std::min(draw, limit_w_[i]);
  }
  void Advance() {
    const int64_t now = clock_();
    const double seconds = static_cast<double>(std::max<int64_t>(0, now - last_ms_)) / 1000;
    for (size_t i = 0; i < gpus_.size(); ++i) energy_mj_[i] += Power(i) * seconds * 1000;
    last_ms_ = now;
  }

  AcceleratorType type_;
  MonotonicMs clock_;
  int64_t last_ms_;
  std::vector<GpuInfo> gpus_;
  std::vector<double> energy_mj_;
  std::vector<bool> busy_;
  std::vector<double> limit_w_;
};

}  // namespace

std::unique_ptr<Telemetry> OpenSimulated(const AcceleratorType& type, uint32_t count, const std::string& node,
                                         MonotonicMs clock) {
  return std::make_unique<SimulatedTelemetry>(type, count, node, std::move(clock));
}

}  // namespace joule::agent
