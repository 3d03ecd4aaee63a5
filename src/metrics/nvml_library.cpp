#include "metrics/nvml_library.h"

#include <dlfcn.h>
#include <fmt/format.h>

#include <cstdlib>

namespace tb {
namespace {

constexpr const char* kDefaultLibrary = "libnvidia-ml.so.1";

template <typename Fn>
bool bind(void* handle, const char* symbol, Fn& fn, std::string& missing) {
  fn = reinterpret_cast<Fn>(dlsym(handle, symbol));
  if (!fn) missing += (missing.empty() ? "" : ", ") + std::string(symbol);
  return fn != nullptr;
}

}  // namespace

NvmlLibrary::NvmlLibrary(const std::string& library) {
  path_ = library;
  if (path_.empty()) {
    const char* env = std::getenv("TRAINBENCH_NVML_LIBRARY");
    path_ = env && *env ? env : kDefaultLibrary;
  }
  handle_ = dlopen(path_.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle_) {
    const char* why = dlerror();
    reason_ = fmt::format("NVML ({}) could not be loaded: {} (no NVIDIA driver on this machine?)",
                          path_, why ? why : "unknown error");
    return;
  }
  std::string missing;
  bind(handle_, "nvmlInit_v2", init, missing);
  bind(handle_, "nvmlShutdown", shutdown, missing);
  bind(handle_, "nvmlDeviceGetCount_v2", device_count, missing);
  bind(handle_, "nvmlDeviceGetHandleByIndex_v2", device_by_index, missing);
  bind(handle_, "nvmlDeviceGetName", device_name, missing);
  bind(handle_, "nvmlDeviceGetUtilizationRates", utilization, missing);
  bind(handle_, "nvmlDeviceGetMemoryInfo", memory_info, missing);
  bind(handle_, "nvmlDeviceGetClockInfo", clock_info, missing);
  bind(handle_, "nvmlDeviceGetMaxClockInfo", max_clock_info, missing);
  bind(handle_, "nvmlDeviceGetPowerUsage", power_usage, missing);
  bind(handle_, "nvmlSystemGetDriverVersion", driver_version, missing);
  // Optional: older drivers lack the energy counter (power is then integrated) and every
  // error code has a number even without its text.
  std::string optional_missing;
  bind(handle_, "nvmlDeviceGetTotalEnergyConsumption", total_energy, optional_missing);
  bind(handle_, "nvmlErrorString", error_string, optional_missing);
  if (!missing.empty()) {
    reason_ = fmt::format("{} is not a usable NVML library: missing {}", path_, missing);
    return;
  }
  const nvml::Return r = init();
  if (r != nvml::kSuccess) {
    reason_ = fmt::format("NVML ({}) failed to initialise: {}", path_, error_text(r));
    return;
  }
  initialised_ = true;
}

NvmlLibrary::~NvmlLibrary() {
  if (initialised_) shutdown();
  if (handle_) dlclose(handle_);
}

std::string NvmlLibrary::error_text(nvml::Return r) const {
  if (error_string) {
    const char* text = error_string(r);
    if (text) return fmt::format("{} (NVML error {})", text, r);
  }
  return fmt::format("NVML error {}", r);
}

}  // namespace tb
