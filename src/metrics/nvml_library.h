// NVML (the NVIDIA driver's management library) opened at run time with dlopen, so the
// binary has no link-time dependency on the driver and runs unchanged on machines without
// one. Only the few entry points the GPU monitor uses are declared, with the types and
// values of NVML's public API (nvml.h).
#pragma once
#include <string>

namespace tb {

namespace nvml {
using Return = int;  // nvmlReturn_t
inline constexpr Return kSuccess = 0;
using Device = struct DeviceOpaque*;  // nvmlDevice_t
inline constexpr int kClockSm = 1;    // NVML_CLOCK_SM
struct Utilization {                  // nvmlUtilization_t: percent over the last sample period
  unsigned int gpu, memory;
};
struct Memory {  // nvmlMemory_t, bytes
  unsigned long long total, free, used;
};
}  // namespace nvml

// The loaded library with its entry points. Construction never throws: when NVML cannot be
// opened or initialised, available() is false and reason() says why.
class NvmlLibrary {
 public:
  // library: a file name or path; "" = $TRAINBENCH_NVML_LIBRARY, else libnvidia-ml.so.1.
  explicit NvmlLibrary(const std::string& library = "");
  ~NvmlLibrary();
  NvmlLibrary(const NvmlLibrary&) = delete;
  NvmlLibrary& operator=(const NvmlLibrary&) = delete;

  bool available() const { return initialised_; }
  const std::string& reason() const { return reason_; }
  const std::string& path() const { return path_; }
  // NVML's text for a return code ("Not Supported"), or the number.
  std::string error_text(nvml::Return r) const;

  nvml::Return (*init)() = nullptr;
  nvml::Return (*shutdown)() = nullptr;
  nvml::Return (*device_count)(unsigned int*) = nullptr;
  nvml::Return (*device_by_index)(unsigned int, nvml::Device*) = nullptr;
  nvml::Return (*device_name)(nvml::Device, char*, unsigned int) = nullptr;
  nvml::Return (*utilization)(nvml::Device, nvml::Utilization*) = nullptr;
  nvml::Return (*memory_info)(nvml::Device, nvml::Memory*) = nullptr;
  nvml::Return (*clock_info)(nvml::Device, int, unsigned int*) = nullptr;      // MHz
  nvml::Return (*max_clock_info)(nvml::Device, int, unsigned int*) = nullptr;  // MHz
  nvml::Return (*power_usage)(nvml::Device, unsigned int*) = nullptr;          // milliwatts
  // Millijoules since the driver was loaded (Volta and newer).
  nvml::Return (*total_energy)(nvml::Device, unsigned long long*) = nullptr;
  nvml::Return (*driver_version)(char*, unsigned int) = nullptr;
  const char* (*error_string)(nvml::Return) = nullptr;

 private:
  void* handle_ = nullptr;
  bool initialised_ = false;
  std::string path_, reason_;
};

}  // namespace tb
