// What the CPU we run on can do: instruction sets (checked against both CPUID and the OS,
// since an OS that does not save zmm state makes AVX-512 unusable even where the silicon has
// it), cache sizes for GEMM blocking, core counts and the model string recorded with results.
//
// The SIMD paths are compiled into every binary (per-function target attributes) and chosen
// here at run time, so one binary runs on any x86-64. TRAINBENCH_CPU_ISA=avx512|avx2|portable
// lowers the choice, which lets one machine test every path.
#pragma once
#include <cstddef>
#include <string>

namespace tb::cpu {

// Ordered: a higher value needs everything a lower one needs.
enum class Isa { portable = 0, avx2 = 1, avx512 = 2 };

const char* isa_name(Isa isa);
// Parses "avx512", "avx2", "portable"; throws InputError on anything else.
Isa parse_isa(const std::string& name);

struct CpuFeatures {
  bool sse2 = false, avx = false, avx2 = false, fma = false;
  bool avx512f = false, avx512bw = false, avx512dq = false, avx512vl = false;
  bool avx512_bf16 = false;
  bool os_saves_ymm = false, os_saves_zmm = false;  // XCR0 bits via xgetbv
  std::string vendor;                               // "GenuineIntel", "AuthenticAMD"
  std::string model_name;                           // /proc/cpuinfo, else CPUID brand
  int logical_cpus = 1;                             // usable by this process (affinity)
  int physical_cores = 1;                           // distinct (package, core) pairs
  size_t l1d_bytes = 32 * 1024, l2_bytes = 1024 * 1024, l3_bytes = 8 * 1024 * 1024;

  // The best ISA the hardware and OS support, ignoring TRAINBENCH_CPU_ISA.
  Isa hardware_isa() const;
};

// Detected once, on first use.
const CpuFeatures& cpu_features();

// The ISA the CPU kernels use: hardware_isa() lowered by TRAINBENCH_CPU_ISA if set (an
// environment request above what the hardware has is refused with an InputError).
Isa active_isa();

// Whether `isa` can run here (for tests that loop over every path).
bool isa_supported(Isa isa);

}  // namespace tb::cpu
