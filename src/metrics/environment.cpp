#include "metrics/environment.h"

#include <CLI/Version.hpp>
#include <fmt/format.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <zlib.h>

#include <ctime>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "core/build_info.h"

namespace tb {
namespace {

// The first value of `key` in /proc/cpuinfo ("model name", "flags").
std::string cpuinfo_field(const std::string& key) {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, key.size(), key) != 0) continue;
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string v = line.substr(colon + 1);
    v.erase(0, v.find_first_not_of(" \t"));
    return v;
  }
  return "";
}

int64_t memory_total_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  int64_t kb = 0;
  std::string unit;
  while (in >> key >> kb >> unit)
    if (key == "MemTotal:") return kb * 1024;
  return 0;
}

std::string compiler() {
#if defined(__clang__)
  return fmt::format("clang {}.{}.{}", __clang_major__, __clang_minor__, __clang_patchlevel__);
#elif defined(__GNUC__)
  return fmt::format("g++ {}.{}.{}", __GNUC__, __GNUC_MINOR__, __GNUC_PATCHLEVEL__);
#else
  return "unknown";
#endif
}

std::string iso_time_utc() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

// Only the SIMD flags matter for what we measure; the full list is long.
std::string simd_flags() {
  std::istringstream in(cpuinfo_field("flags"));
  std::string flag, out;
  for (const char* want : {"sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl",
                           "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile"}) {
    in.clear();
    in.seekg(0);
    while (in >> flag)
      if (flag == want) {
        out += (out.empty() ? "" : " ") + flag;
        break;
      }
  }
  return out;
}

}  // namespace

nlohmann::json collect_environment() {
  utsname u{};
  uname(&u);
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  nlohmann::json env = {
      {"time_utc", iso_time_utc()},
      {"hostname", host},
      {"os", fmt::format("{} {} {}", u.sysname, u.release, u.machine)},
      {"cpu",
       {{"model", cpuinfo_field("model name")},
        {"logical_cores", std::thread::hardware_concurrency()},
        {"online_cores", sysconf(_SC_NPROCESSORS_ONLN)},
        {"simd", simd_flags()}}},
      {"memory_bytes", memory_total_bytes()},
      {"compiler", compiler()},
      {"trainbench", {{"version", TB_VERSION}, {"git_commit", build_commit()}}},
      {"libraries",
       {{"fmt",
         fmt::format("{}.{}.{}", FMT_VERSION / 10000, FMT_VERSION / 100 % 100, FMT_VERSION % 100)},
        {"nlohmann_json", fmt::format("{}.{}.{}", NLOHMANN_JSON_VERSION_MAJOR,
                                      NLOHMANN_JSON_VERSION_MINOR, NLOHMANN_JSON_VERSION_PATCH)},
        {"cli11", CLI11_VERSION},
        {"zlib", zlibVersion()}}},
  };
  return env;
}

std::string environment_summary(const nlohmann::json& env) {
  return fmt::format("{}, {} cores, {}", env["cpu"]["model"].get<std::string>(),
                     env["cpu"]["logical_cores"].get<int>(), env["compiler"].get<std::string>());
}

}  // namespace tb
