// A stand-in for the NVIDIA driver's libnvidia-ml.so.1, for agent_test only: two devices with
// fixed readings, an energy counter that grows by 1 J per read, and one XID 79 event pending on
// device 1. It exercises the agent's NVML backend (dlopen, symbol lookup, units) without a GPU;
// the real library is exercised by NvmlOnThisMachine where a GPU is present.
#include <cstring>

extern "C" {

struct nvmlDevice_st {
  unsigned int index;
  unsigned long long energy_mj;
  unsigned int limit_mw;
};
struct FakeMemory {
  unsigned long long total, free, used;
};
struct FakeUtilization {
  unsigned int gpu, memory;
};
struct FakeEvent {
  nvmlDevice_st* device;
  unsigned long long type, data;
  unsigned int gi, ci;
};

static nvmlDevice_st devices[2] = {{0, 5'000'000, 700'000}, {1, 9'000'000, 700'000}};
static int events_pending = 1;

int nvmlInit_v2() { return 0; }
int nvmlShutdown() { return 0; }
const char* nvmlErrorString(int r) { return r == 10 ? "Timeout" : "Unknown Error"; }
int nvmlSystemGetDriverVersion(char* v, unsigned int n) {
  std::strncpy(v, "550.54.15", n);
  return 0;
}
int nvmlDeviceGetCount_v2(unsigned int* n) {
  *n = 2;
  return 0;
}
int nvmlDeviceGetHandleByIndex_v2(unsigned int i, nvmlDevice_st** d) {
  if (i >= 2) return 2;
  *d = &devices[i];
  return 0;
}
int nvmlDeviceGetUUID(nvmlDevice_st* d, char* v, unsigned int n) {
  std::strncpy(v, d->index == 0 ? "GPU-fake-0" : "GPU-fake-1", n);
  return 0;
}
int nvmlDeviceGetName(nvmlDevice_st*, char* v, unsigned int n) {
  std::strncpy(v, "NVIDIA H100 80GB HBM3", n);
  return 0;
}
int nvmlDeviceGetMemoryInfo(nvmlDevice_st*, FakeMemory* m) {
  *m = {80ULL << 30, 79ULL << 30, 1ULL << 30};
  return 0;
}
int nvmlDeviceGetPowerUsage(nvmlDevice_st* d, unsigned int* mw) {
  *mw = d->index == 0 ? 250'000 : 312'500;
  return 0;
}
int nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_st* d, unsigned long long* mj) {
  d->energy_mj += 1000;
  *mj = d->energy_mj;
  return 0;
}
int nvmlDeviceGetTemperature(nvmlDevice_st*, int sensor, unsigned int* c) {
  *c = sensor == 0 ? 41 : 0;
  return 0;
}
int nvmlDeviceGetUtilizationRates(nvmlDevice_st*, FakeUtilization* u) {
  *u = {87, 30};
  return 0;
}
int nvmlDeviceGetTotalEccErrors(nvmlDevice_st*, int type, int counter, unsigned long long* n) {
  *n = counter == 0 && type == 0 ? 3 : 0;
  return 0;
}
int nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_st* d, unsigned int* mw) {
  *mw = d->limit_mw;
  return 0;
}
int nvmlDeviceGetPowerManagementDefaultLimit(nvmlDevice_st*, unsigned int* mw) {
  *mw = 700'000;
  return 0;
}
int nvmlDeviceSetPowerManagementLimit(nvmlDevice_st* d, unsigned int mw) {
  if (mw < 200'000 || mw > 700'000) return 2;  // NVML_ERROR_INVALID_ARGUMENT
  d->limit_mw = mw;
  return 0;
}
int nvmlEventSetCreate(void** set) {
  static int token;
  *set = &token;
  return 0;
}
int nvmlDeviceRegisterEvents(nvmlDevice_st*, unsigned long long, void*) { return 0; }
int nvmlEventSetWait_v2(void*, FakeEvent* e, unsigned int) {
  if (events_pending == 0) return 10;  // NVML_ERROR_TIMEOUT
  events_pending--;
  *e = {&devices[1], 0x8, 79, 0, 0};
  return 0;
}
int nvmlEventSetFree(void*) { return 0; }

}  // extern "C"
