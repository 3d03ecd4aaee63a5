// Error handling: two kinds of failure, reported differently.
//  - InputError: the user's input is wrong (a file, a flag, a value). The message names the
//    file or value and is printed as one line; no source location, it would only be noise.
//  - TB_CHECK / TB_FAIL: an internal invariant broke. The message carries file and line so a
//    bug report points at the code.
#pragma once
#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace tb {

struct InputError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct InternalError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] void fail_at(const char* file, int line, const std::string& message);

}  // namespace tb

#define TB_FAIL(...) ::tb::fail_at(__FILE__, __LINE__, fmt::format(__VA_ARGS__))
#define TB_CHECK(cond, ...)                                                  \
  do {                                                                       \
    if (!(cond)) ::tb::fail_at(__FILE__, __LINE__, fmt::format(__VA_ARGS__)); \
  } while (0)
#define TB_INPUT_CHECK(cond, ...)                                       \
  do {                                                                  \
    if (!(cond)) throw ::tb::InputError(fmt::format(__VA_ARGS__));      \
  } while (0)
