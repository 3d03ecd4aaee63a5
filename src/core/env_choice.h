// Switches read from the environment (TB_CUDNN_BATCH_NORM=ours, TB_POOL_BEFORE_RELU=off, ...):
// the value of `name` among `allowed`, the first of which is the default when the variable is
// unset or empty; anything else is a usage error that names the variable and its choices.
#pragma once
#include <cstdlib>
#include <initializer_list>
#include <string>

#include "core/error.h"

namespace tb {

inline std::string env_choice(const char* name, std::initializer_list<const char*> allowed) {
  const char* v = std::getenv(name);
  if (!v || !*v) return *allowed.begin();
  std::string choices;
  for (const char* a : allowed) {
    if (std::string(a) == v) return v;
    choices += (choices.empty() ? "" : ", ") + std::string(a);
  }
  TB_INPUT_CHECK(false, "{} must be one of {}, got '{}'", name, choices, v);
  return {};
}

}  // namespace tb
