// The NVML telemetry backend (telemetry.h). libnvidia-ml.so.1 comes with the NVIDIA driver, not
// with Joule: it is opened with dlopen at run time and its functions looked up by name, so the
// build and the tests need no GPU. Only the stable, versioned entry points are used; the few
// types are declared here as NVML's public header (nvml.h) defines them.
#include <dlfcn.h>

#include <array>
#include <chrono>
#include <map>

#include <fmt/format.h>

#include "agent/telemetry.h"

namespace joule::agent {
namespace {

using nvmlReturn_t = int;
using nvmlDevice_t = struct nvmlDevice_st*;
using nvmlEventSet_t = struct nvmlEventSet_st*;
struct nvmlMemory_t {
  unsigned long long total, free, used;  // bytes
};
struct nvmlUtilization_t {
  unsigned int gpu, memory;  // percent
};
struct nvmlEventData_t {
  nvmlDevice_t device;
  unsigned long long eventType, eventData;
  unsigned int gpuInstanceId, computeInstanceId;
};
constexpr nvmlReturn_t kSuccess = 0, kNotSupported = 3;
constexpr unsigned long long kEventXidCritical = 0x8;
constexpr int kTemperatureGpu = 0, kEccCorrected = 0, kEccUncorrected = 1, kVolatileEcc = 0;
constexpr double kMilli = 1000.0;

// The NVML entry points used, resolved once.
struct Api {
  nvmlReturn_t (*init)();
  nvmlReturn_t (*shutdown)();
  const char* (*error_string)(nvmlReturn_t);
  nvmlReturn_t (*driver_version)(char*, unsigned int);
  nvmlReturn_t (*count)(unsigned int*);
  nvmlReturn_t (*handle)(unsigned int, nvmlDevice_t*);
  nvmlReturn_t (*uuid)(nvmlDevice_t, char*, unsigned int);
  nvmlReturn_t (*name)(nvmlDevice_t, char*, unsigned int);
  nvmlReturn_t (*memory)(nvmlDevice_t, nvmlMemory_t*);
  nvmlReturn_t (*power)(nvmlDevice_t, unsigned int*);
  nvmlReturn_t (*energy)(nvmlDevice_t, unsigned long long*);
  nvmlReturn_t (*temperature)(nvmlDevice_t, int, unsigned int*);
  nvmlReturn_t (*utilization)(nvmlDevice_t, nvmlUtilization_t*);
  nvmlReturn_t (*ecc)(nvmlDevice_t, int, int, unsigned long long*);
  nvmlReturn_t (*power_limit)(nvmlDevice_t, unsigned int*);
  nvmlReturn_t (*set_power_limit)(nvmlDevice_t, unsigned int);
  nvmlReturn_t (*default_power_limit)(nvmlDevice_t, unsigned int*);
  nvmlReturn_t (*event_set_create)(nvmlEventSet_t*);
  nvmlReturn_t (*register_events)(nvmlDevice_t, unsigned long long, nvmlEventSet_t);
  nvmlReturn_t (*event_wait)(nvmlEventSet_t, nvmlEventData_t*, unsigned int);
  nvmlReturn_t (*event_set_free)(nvmlEventSet_t);
};

template <typename Fn>
bool Resolve(void* lib, const char* symbol, Fn*& fn, std::string& missing) {
  fn = reinterpret_cast<Fn*>(dlsym(lib, symbol));
  if (fn == nullptr) missing += fmt::format("{}{}", missing.empty() ? "" : ", ", symbol);
  return fn != nullptr;
}

Result<Api> ResolveAll(void* lib) {
  Api a{};
  std::string missing;
  Resolve(lib, "nvmlInit_v2", a.init, missing);
  Resolve(lib, "nvmlShutdown", a.shutdown, missing);
  Resolve(lib, "nvmlErrorString", a.error_string, missing);
  Resolve(lib, "nvmlSystemGetDriverVersion", a.driver_version, missing);
  Resolve(lib, "nvmlDeviceGetCount_v2", a.count, missing);
  Resolve(lib, "nvmlDeviceGetHandleByIndex_v2", a.handle, missing);
  Resolve(lib, "nvmlDeviceGetUUID", a.uuid, missing);
  Resolve(lib, "nvmlDeviceGetName", a.name, missing);
  Resolve(lib, "nvmlDeviceGetMemoryInfo", a.memory, missing);
  Resolve(lib, "nvmlDeviceGetPowerUsage", a.power, missing);
  Resolve(lib, "nvmlDeviceGetTotalEnergyConsumption", a.energy, missing);
  Resolve(lib, "nvmlDeviceGetTemperature", a.temperature, missing);
  Resolve(lib, "nvmlDeviceGetUtilizationRates", a.utilization, missing);
  Resolve(lib, "nvmlDeviceGetTotalEccErrors", a.ecc, missing);
  Resolve(lib, "nvmlDeviceGetEnforcedPowerLimit", a.power_limit, missing);
  Resolve(lib, "nvmlDeviceSetPowerManagementLimit", a.set_power_limit, missing);
  Resolve(lib, "nvmlDeviceGetPowerManagementDefaultLimit", a.default_power_limit, missing);
  Resolve(lib, "nvmlEventSetCreate", a.event_set_create, missing);
  Resolve(lib, "nvmlDeviceRegisterEvents", a.register_events, missing);
  Resolve(lib, "nvmlEventSetWait_v2", a.event_wait, missing);
  Resolve(lib, "nvmlEventSetFree", a.event_set_free, missing);
  if (!missing.empty()) return Status::Error(fmt::format("symbols missing: {}", missing));
  return a;
}

class NvmlTelemetry final : public Telemetry {
 public:
  NvmlTelemetry(void* lib, const Api& api) : lib_(lib), api_(api) {}
  ~NvmlTelemetry() override {
    if (events_ != nullptr) api_.event_set_free(events_);
    api_.shutdown();
    dlclose(lib_);
  }
  NvmlTelemetry(const NvmlTelemetry&) = delete;
  NvmlTelemetry& operator=(const NvmlTelemetry&) = delete;

  Status Discover() {
    std::array<char, 96> text{};
    if (api_.driver_version(text.data(), text.size()) == kSuccess) driver_ = text.data();
    unsigned int count = 0;
    if (nvmlReturn_t r = api_.count(&count); r != kSuccess) return Failed("nvmlDeviceGetCount_v2", r);
    if (count == 0) return Status::Error("NVML found no devices");
    if (api_.event_set_create(&events_) != kSuccess) events_ = nullptr;
    for (unsigned int i = 0; i < count; ++i) {
      nvmlDevice_t d = nullptr;
      if (nvmlReturn_t r = api_.handle(i, &d); r != kSuccess) return Failed(fmt::format("device {}", i), r);
      GpuInfo info{i, "", "", 0, 0};
      if (api_.uuid(d, text.data(), text.size()) == kSuccess) info.uuid = text.data();
      if (api_.name(d, text.data(), text.size()) == kSuccess) info.model = text.data();
      nvmlMemory_t m{};
      if (api_.memory(d, &m) == kSuccess) info.memory_mib = m.total >> 20;
      unsigned int mw = 0;
      if (api_.default_power_limit(d, &mw) == kSuccess) info.default_power_limit_w = mw / kMilli;
      // XID events need root on some drivers; without them the XID count stays 0.
      if (events_ != nullptr) api_.register_events(d, kEventXidCritical, events_);
      handles_.push_back(d);
      gpus_.push_back(std::move(info));
    }
    xids_.assign(count, {0, 0});
    energy_fallback_.assign(count, {0, -1});
    return Status::Ok();
  }

  std::string_view source() const override { return "nvml"; }
  std::string driver_version() const override { return driver_; }
  const std::vector<GpuInfo>& gpus() const override { return gpus_; }

  Result<std::vector<GpuReading>> Read() override {
    DrainXidEvents();
    std::vector<GpuReading> out;
    out.reserve(handles_.size());
    for (size_t i = 0; i < handles_.size(); ++i) {
      Result<GpuReading> r = ReadOne(i);
      if (!r.ok()) return r.status();
      out.push_back(*r);
    }
    return out;
  }

  Status SetPowerLimit(uint32_t gpu, double watts) override {
    if (gpu >= handles_.size()) return Status::Error(fmt::format("gpu {}: no such device", gpu));
    if (nvmlReturn_t r = api_.set_power_limit(handles_[gpu], static_cast<unsigned int>(watts * kMilli));
        r != kSuccess) {
      return Failed(fmt::format("gpu {}: nvmlDeviceSetPowerManagementLimit", gpu), r);
    }
    return Status::Ok();
  }

 private:
  Status Failed(const std::string& what, nvmlReturn_t r) const {
    return Status::Error(fmt::format("{}: {} (NVML error {})", what, api_.error_string(r), r));
  }

  Result<GpuReading> ReadOne(size_t i) {
    nvmlDevice_t d = handles_[i];
    GpuReading g;
    unsigned int mw = 0;
    if (nvmlReturn_t r = api_.power(d, &mw); r != kSuccess) {
      return Failed(fmt::format("gpu {}: nvmlDeviceGetPowerUsage", i), r);
    }
    g.power_w = mw / kMilli;
    unsigned long long mj = 0;
    if (nvmlReturn_t r = api_.energy(d, &mj); r == kSuccess) {
      g.energy_mj = mj;
    } else if (r == kNotSupported) {
      g.energy_mj = IntegratedEnergy(i, g.power_w);  // before Volta: integrate the power readings
    } else {
      return Failed(fmt::format("gpu {}: nvmlDeviceGetTotalEnergyConsumption", i), r);
    }
    unsigned int value = 0;
    if (api_.temperature(d, kTemperatureGpu, &value) == kSuccess) g.temperature_c = value;
    nvmlUtilization_t u{};
    if (api_.utilization(d, &u) == kSuccess) g.utilization_pct = u.gpu;
    nvmlMemory_t m{};
    if (api_.memory(d, &m) == kSuccess) g.memory_used_mib = m.used >> 20;
    unsigned long long errors = 0;
    if (api_.ecc(d, kEccCorrected, kVolatileEcc, &errors) == kSuccess) g.ecc_corrected = errors;
    if (api_.ecc(d, kEccUncorrected, kVolatileEcc, &errors) == kSuccess) g.ecc_uncorrected = errors;
    if (api_.power_limit(d, &value) == kSuccess) g.power_limit_w = value / kMilli;
    g.xid_count = xids_[i].first;
    g.last_xid = xids_[i].second;
    return g;
  }

  void DrainXidEvents() {
    if (events_ == nullptr) return;
    for (int n = 0; n < 1000; ++n) {  // bounded: a storm of events does not stall the heartbeat
      nvmlEventData_t e{};
      if (api_.event_wait(events_, &e, 0) != kSuccess) return;  // NVML_ERROR_TIMEOUT: none pending
      for (size_t i = 0; i < handles_.size(); ++i) {
        if (handles_[i] == e.device && (e.eventType & kEventXidCritical) != 0) {
          xids_[i].first++;
          xids_[i].second = e.eventData;
        }
      }
    }
  }

  uint64_t IntegratedEnergy(size_t i, double power_w) {
    auto& [mj, last_ms] = energy_fallback_[i];
    const int64_t now =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
            .count();
    if (last_ms >= 0) mj += static_cast<uint64_t>(power_w * static_cast<double>(now - last_ms));
    last_ms = now;
    return mj;
  }

  void* lib_;
  Api api_;
  std::string driver_;
  nvmlEventSet_t events_ = nullptr;
  std::vector<nvmlDevice_t> handles_;
  std::vector<GpuInfo> gpus_;
  std::vector<std::pair<uint64_t, uint64_t>> xids_;            // per device: count, last XID
  std::vector<std::pair<uint64_t, int64_t>> energy_fallback_;  // per device: mJ, last reading (ms)
};

}  // namespace

Result<std::unique_ptr<Telemetry>> OpenNvml(const std::string& library) {
  void* lib = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) return Status::Error(fmt::format("cannot load {}: {}", library, dlerror()));
  Result<Api> api = ResolveAll(lib);
  if (!api.ok()) {
    dlclose(lib);
    return Status::Error(fmt::format("{}: {}", library, api.status().message()));
  }
  if (nvmlReturn_t r = api->init(); r != kSuccess) {
    const std::string why = api->error_string(r);
    dlclose(lib);
    return Status::Error(fmt::format("{}: nvmlInit_v2: {} (NVML error {})", library, why, r));
  }
  auto nvml = std::make_unique<NvmlTelemetry>(lib, *api);
  if (Status s = nvml->Discover(); !s.ok()) return Status::Error(fmt::format("{}: {}", library, s.message()));
  return std::unique_ptr<Telemetry>(std::move(nvml));
}

}  // namespace joule::agent
