#include "ops/cudnn/route_setting.h"

#include <algorithm>
#include <cstdlib>

#include "core/error.h"

namespace tb::gpu {

RouteSetting route_setting_from_env(const char* variable, const std::string& plain_route,
                                    std::initializer_list<std::string> chunked_routes,
                                    bool fallback_chunked) {
  RouteSetting r;
  r.chunked = fallback_chunked;
  r.route = fallback_chunked ? *chunked_routes.begin() : plain_route;
  const char* v = std::getenv(variable);
  if (!v || !*v) return r;
  const std::string setting = v;
  const size_t colon = setting.find(':');
  const std::string route = setting.substr(0, colon);
  const bool chunked =
      std::find(chunked_routes.begin(), chunked_routes.end(), route) != chunked_routes.end();
  std::string choices = plain_route;
  for (const std::string& c : chunked_routes) choices += ", " + c + ", " + c + ":IMAGES";
  TB_INPUT_CHECK(route == plain_route || chunked, "{} must be one of {}, got '{}'", variable,
                 choices, setting);
  r.chunked = chunked;
  r.route = route;
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
