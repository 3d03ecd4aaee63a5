// The cudnn backend's comparison switches of the form VARIABLE=ROUTE or ROUTE:IMAGES
// (TB_CUDNN_STRIDED_1X1, TB_CUDNN_SMALL_C): which of two routes a kind of convolution takes,
// and for the chunked one, how many images go in a chunk (tests use tiny chunks).
#pragma once
#include <cstddef>
#include <initializer_list>
#include <string>

namespace tb::gpu {

struct RouteSetting {
  bool chunked = false;  // the variable named one of the chunked routes
  std::string route;     // which one (or the plain route)
  int chunk_images = 0;  // 0: chunks sized by bytes
};

// Reads `variable`: unset or empty gives the first chunked route if `fallback_chunked`, else
// the plain one; otherwise it must be plain_route or one of chunked_routes, with :IMAGES
// allowed after a chunked one, else a clear error naming the variable.
RouteSetting route_setting_from_env(const char* variable, const std::string& plain_route,
                                    std::initializer_list<std::string> chunked_routes,
                                    bool fallback_chunked);

// Images per chunk of a chunked route over N images: `forced` when positive (a setting's
// :IMAGES), else as many as fit `budget` bytes at `per_image` bytes each, at least one.
int images_per_chunk(int forced, int N, size_t per_image, size_t budget);

}  // namespace tb::gpu
