// The cudnn backend's comparison switches of the form VARIABLE=ROUTE or ROUTE:IMAGES
// (TB_CUDNN_STRIDED_1X1, TB_CUDNN_SMALL_C): which of two routes a kind of convolution takes,
// and for the chunked one, how many images go in a chunk (tests use tiny chunks).
#pragma once
#include <cstddef>
#include <string>

namespace tb::gpu {

struct RouteSetting {
  bool chunked = false;  // the variable named chunked_route
  int chunk_images = 0;  // 0: chunks sized by bytes
};

// Reads `variable`: unset or empty gives `fallback`; otherwise it must be plain_route or
// chunked_route[:IMAGES], else a clear error naming the variable.
RouteSetting route_setting_from_env(const char* variable, const std::string& plain_route,
                                    const std::string& chunked_route, bool fallback_chunked);

// Images per chunk of a chunked route over N images: `forced` when positive (a setting's
// :IMAGES), else as many as fit `budget` bytes at `per_image` bytes each, at least one.
int images_per_chunk(int forced, int N, size_t per_image, size_t budget);

}  // namespace tb::gpu
