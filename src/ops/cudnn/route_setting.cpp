#include "ops/cudnn/route_setting.h"

#include <algorithm>
#include <cstdlib>

#include "core/error.h"

namespace tb::gpu {

RouteSetting route_setting_from_env(const char* variable, const std::string& plain_route,
                                    const std::string& chunked_route, bool fallback_chunked) {
  RouteSetting r;
  r.chunked = fallback_chunked;
  const char* v = std::getenv(variable);
  if (!v || !*v) return r;
  const std::string setting = v;
  const size_t colon = setting.find(':');
  const std::string route = setting.substr(0, colon);
  TB_INPUT_CHECK(route == plain_route || route == chunked_route,
                 "{} must be {}, {} or {}:IMAGES, got '{}'", variable, plain_route, chunked_route,
                 chunked_route, setting);
  r.chunked = route == chunked_route;
  if (colon != std::string::npos) {
    r.chunk_images = std::atoi(setting.c_str() + colon + 1);
    TB_INPUT_CHECK(r.chunked && r.chunk_images > 0, "{}: bad chunk size in '{}'", variable,
                   setting);
  }
  return r;
}

int images_per_chunk(int forced, int N, size_t per_image, size_t budget) {
  if (forced > 0) return std::min(forced, N);
  return int(std::clamp<size_t>(budget / std::max<size_t>(per_image, 1), 1, size_t(N)));
}

}  // namespace tb::gpu
