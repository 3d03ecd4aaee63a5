// The machine and software a measurement came from, recorded with every result.
#pragma once
#include <nlohmann/json.hpp>

namespace tb {

// CPU model and flags, cores, memory, OS, compiler, library versions, git commit, time.
nlohmann::json collect_environment();

// A short one-line summary ("AMD EPYC, 2 cores, g++ 12.2.0") for logs.
std::string environment_summary(const nlohmann::json& env);

}  // namespace tb
