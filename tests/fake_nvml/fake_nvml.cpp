// A stand-in for the NVIDIA driver's NVML (libnvidia-ml.so.1), loaded by the GPU monitor
// through TRAINBENCH_NVML_LIBRARY in tests, so that sampling and energy accounting are
// tested on machines without a GPU. Behaviour is chosen by environment variables:
//   FAKE_NVML_DEVICES=N            number of GPUs (default 1; 0 = none)
//   FAKE_NVML_NO_ENERGY_COUNTER=1  the energy counter is "not supported" (power is integrated)
//   FAKE_NVML_INIT_FAILS=1         nvmlInit_v2 fails
// GPU i draws a constant 150 + 50 i watts; its energy counter advances with real time.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

constexpr int kSuccess = 0, kErrorNotSupported = 3, kErrorUninitialized = 1,
              kErrorInvalidArgument = 2, kErrorDriverNotLoaded = 9;
struct Device {
  int index;
};
Device devices[8];
bool initialised = false;

bool env_flag(const char* name) {
  const char* v = std::getenv(name);
  return v && *v && std::strcmp(v, "0") != 0;
}
unsigned device_count() {
  const char* v = std::getenv("FAKE_NVML_DEVICES");
  const int n = v ? std::atoi(v) : 1;
  return unsigned(n < 0 ? 0 : n > 8 ? 8 : n);
}
double seconds_now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
unsigned milliwatts(const Device* d) { return unsigned(150000 + 50000 * d->index); }

}  // namespace

extern "C" {

struct nvmlUtilization_t {
  unsigned int gpu, memory;
};
struct nvmlMemory_t {
  unsigned long long total, free, used;
};

int nvmlInit_v2() {
  if (env_flag("FAKE_NVML_INIT_FAILS")) return kErrorDriverNotLoaded;
  for (int i = 0; i < 8; ++i) devices[i].index = i;
  initialised = true;
  return kSuccess;
}
int nvmlShutdown() {
  initialised = false;
  return kSuccess;
}
const char* nvmlErrorString(int r) {
  switch (r) {
    case kSuccess:
      return "Success";
    case kErrorUninitialized:
      return "Uninitialized";
    case kErrorInvalidArgument:
      return "Invalid Argument";
    case kErrorNotSupported:
      return "Not Supported";
    case kErrorDriverNotLoaded:
      return "Driver Not Loaded";
    default:
      return "Unknown Error";
  }
}
int nvmlSystemGetDriverVersion(char* text, unsigned int length) {
  std::snprintf(text, length, "%s", "999.99-fake");
  return kSuccess;
}
int nvmlDeviceGetCount_v2(unsigned int* count) {
  if (!initialised) return kErrorUninitialized;
  *count = device_count();
  return kSuccess;
}
int nvmlDeviceGetHandleByIndex_v2(unsigned int index, Device** device) {
  if (index >= device_count()) return kErrorInvalidArgument;
  *device = &devices[index];
  return kSuccess;
}
int nvmlDeviceGetName(Device* d, char* name, unsigned int length) {
  std::snprintf(name, length, "Fake GPU %d", d->index);
  return kSuccess;
}
int nvmlDeviceGetUtilizationRates(Device*, nvmlUtilization_t* u) {
  u->gpu = 42;
  u->memory = 17;
  return kSuccess;
}
int nvmlDeviceGetMemoryInfo(Device*, nvmlMemory_t* m) {
  m->total = 80ULL << 30;
  m->used = 3ULL << 30;
  m->free = m->total - m->used;
  return kSuccess;
}
int nvmlDeviceGetClockInfo(Device*, int type, unsigned int* mhz) {
  *mhz = type == 1 ? 1500 : 800;
  return kSuccess;
}
int nvmlDeviceGetMaxClockInfo(Device*, int type, unsigned int* mhz) {
  *mhz = type == 1 ? 1980 : 1000;
  return kSuccess;
}
int nvmlDeviceGetPowerUsage(Device* d, unsigned int* mw) {
  *mw = milliwatts(d);
  return kSuccess;
}
int nvmlDeviceGetTotalEnergyConsumption(Device* d, unsigned long long* mj) {
  if (env_flag("FAKE_NVML_NO_ENERGY_COUNTER")) return kErrorNotSupported;
  // Millijoules since an arbitrary epoch, at the device's constant power.
  *mj = 5000000ULL + (unsigned long long)(seconds_now() * milliwatts(d));
  return kSuccess;
}

}  // extern "C"
