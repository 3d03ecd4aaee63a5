#include "ops/cpu/cpu_features.h"

#include <cpuid.h>
#include <sched.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <thread>
#include <utility>

#include "core/error.h"

namespace tb::cpu {
namespace {

struct Regs {
  unsigned a = 0, b = 0, c = 0, d = 0;
};

Regs cpuid(unsigned leaf, unsigned subleaf = 0) {
  Regs r;
  if (!__get_cpuid_count(leaf, subleaf, &r.a, &r.b, &r.c, &r.d)) r = Regs{};
  return r;
}

// XCR0 tells which register states the OS saves on a context switch. Read with inline asm so
// this file needs no -mxsave.
uint64_t read_xcr0() {
  uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (uint64_t(hi) << 32) | lo;
}

bool bit(unsigned reg, int b) { return (reg >> b) & 1u; }

std::string trim(std::string s) {
  size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

std::string brand_string() {
  if (cpuid(0x80000000).a < 0x80000004) return {};
  char text[49] = {};
  for (unsigned i = 0; i < 3; ++i) {
    Regs r = cpuid(0x80000002 + i);
    std::memcpy(text + 16 * i, &r, 16);
  }
  return trim(text);
}

// Reads /proc/cpuinfo once for the model name and the number of distinct physical cores.
void read_proc_cpuinfo(CpuFeatures& f) {
  std::ifstream in("/proc/cpuinfo");
  std::string line, physical_id = "0";
  std::set<std::pair<std::string, std::string>> cores;
  while (std::getline(in, line)) {
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = trim(line.substr(0, colon)), value = trim(line.substr(colon + 1));
    if (key == "model name" && f.model_name.empty()) f.model_name = value;
    if (key == "physical id") physical_id = value;
    if (key == "core id") cores.emplace(physical_id, value);
  }
  if (!cores.empty()) f.physical_cores = int(cores.size());
}

// Cache size of one level from sysfs (what the kernel derived from CPUID leaf 4 / 0x8000001D),
// else sysconf. Hypervisors sometimes report nonsense, so values outside a plausible range
// keep the default.
size_t cache_bytes(int level, size_t fallback) {
  for (int index = 0; index < 8; ++index) {
    std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index) + "/";
    std::ifstream lv(dir + "level"), ty(dir + "type"), sz(dir + "size");
    int l = 0;
    std::string type, size;
    if (!(lv >> l) || !(ty >> type) || !(sz >> size)) break;
    if (l != level || type == "Instruction") continue;
    size_t value = std::strtoull(size.c_str(), nullptr, 10);
    if (size.find('K') != std::string::npos) value *= 1024;
    if (size.find('M') != std::string::npos) value *= 1024 * 1024;
    if (value >= 4096 && value <= (size_t(1) << 31)) return value;
  }
  int name = level == 1 ? _SC_LEVEL1_DCACHE_SIZE : level == 2 ? _SC_LEVEL2_CACHE_SIZE
                                                              : _SC_LEVEL3_CACHE_SIZE;
  long value = sysconf(name);
  return value >= 4096 && value <= (1l << 31) ? size_t(value) : fallback;
}

CpuFeatures detect() {
  CpuFeatures f;
  Regs v = cpuid(0);
  char vendor[13] = {};
  std::memcpy(vendor, &v.b, 4);
  std::memcpy(vendor + 4, &v.d, 4);
  std::memcpy(vendor + 8, &v.c, 4);
  f.vendor = vendor;

  Regs l1 = cpuid(1);
  f.sse2 = bit(l1.d, 26);
  bool osxsave = bit(l1.c, 27);
  f.avx = bit(l1.c, 28);
  f.fma = bit(l1.c, 12);
  if (osxsave) {
    uint64_t xcr0 = read_xcr0();
    f.os_saves_ymm = (xcr0 & 0x6) == 0x6;     // SSE + AVX state
    f.os_saves_zmm = (xcr0 & 0xe6) == 0xe6;   // + opmask, ZMM0-15 upper halves, ZMM16-31
  }
  if (v.a >= 7) {
    Regs l7 = cpuid(7, 0);
    f.avx2 = bit(l7.b, 5);
    f.avx512f = bit(l7.b, 16);
    f.avx512dq = bit(l7.b, 17);
    f.avx512bw = bit(l7.b, 30);
    f.avx512vl = bit(l7.b, 31);
    f.avx512_bf16 = bit(cpuid(7, 1).a, 5);
  }

  read_proc_cpuinfo(f);
  if (f.model_name.empty()) f.model_name = brand_string();

  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    f.logical_cpus = CPU_COUNT(&set);
  } else {
    f.logical_cpus = int(std::thread::hardware_concurrency());
  }
  if (f.logical_cpus < 1) f.logical_cpus = 1;
  if (f.physical_cores < 1 || f.physical_cores > f.logical_cpus) f.physical_cores = f.logical_cpus;

  f.l1d_bytes = cache_bytes(1, f.l1d_bytes);
  f.l2_bytes = cache_bytes(2, f.l2_bytes);
  f.l3_bytes = cache_bytes(3, f.l3_bytes);
  return f;
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::portable: return "portable";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
  }
  return "?";
}

Isa parse_isa(const std::string& name) {
  if (name == "avx512") return Isa::avx512;
  if (name == "avx2") return Isa::avx2;
  if (name == "portable") return Isa::portable;
  throw InputError("unknown CPU ISA '" + name + "' (expected avx512, avx2 or portable)");
}

Isa CpuFeatures::hardware_isa() const {
  if (avx512f && avx512bw && avx512dq && avx512vl && fma && os_saves_zmm) return Isa::avx512;
  if (avx2 && fma && os_saves_ymm) return Isa::avx2;
  return Isa::portable;
}

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

bool isa_supported(Isa isa) { return int(isa) <= int(cpu_features().hardware_isa()); }

Isa active_isa() {
  static const Isa isa = [] {
    Isa hw = cpu_features().hardware_isa();
    const char* env = std::getenv("TRAINBENCH_CPU_ISA");
    if (env == nullptr || *env == '\0') return hw;
    Isa wanted = parse_isa(env);
    TB_INPUT_CHECK(int(wanted) <= int(hw), "TRAINBENCH_CPU_ISA={} but this CPU supports at most {}",
                   env, isa_name(hw));
    return wanted;
  }();
  return isa;
}

}  // namespace tb::cpu
