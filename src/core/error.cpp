#include "core/error.h"

namespace tb {

void fail_at(const char* file, int line, const std::string& message) {
  throw InternalError(fmt::format("{} ({}:{})", message, file, line));
}

}  // namespace tb
