#include "ops/cpu/conv_in_place.h"

#include <algorithm>

#include "ops/cpu/cpu_features.h"
#include "ops/cpu/gemm_kernels.h"

namespace tb::cpu {
namespace {

void channels_last_rows(const void* ctx, int k0, int kc, const float** out) {
  const ChannelsLastColumns& src = *static_cast<const ChannelsLastColumns*>(ctx);
  const Conv2dParams& p = src.params;
  const int P = p.P(), Q = p.Q(), S = p.stride;
  const int64_t pq = int64_t(P) * Q, C = p.C;
  const int64_t padded_w = p.W + 2 * p.pad, padded_image = (p.H + 2 * p.pad) * padded_w * C;
  int64_t i = k0 / pq;
  int op = int(k0 % pq / Q), oq = int(k0 % Q);  // counted along, no division per row
  for (int k = 0; k < kc; ++k) {
    // Tap (0, 0) of output pixel (op, oq) is padded input pixel (op * S, oq * S).
    out[k] = src.xpad + i * padded_image + (int64_t(op) * padded_w + oq) * S * C;
    if (++oq == Q) {
      oq = 0;
      if (++op == P) op = 0, ++i;
    }
  }
}

void channels_last_offsets(const void* ctx, int j0, int n, int64_t* out) {
  const ChannelsLastColumns& src = *static_cast<const ChannelsLastColumns*>(ctx);
  const Conv2dParams& p = src.params;
  const int64_t padded_w = p.W + 2 * p.pad;
  for (int v = 0; 16 * v < n; ++v) {
    const int col = j0 + 16 * v, t = col / p.C, c = col % p.C;
    out[v] = (t / p.kernel * padded_w + t % p.kernel) * p.C + c;
  }
}

void padded_rows(const void* ctx, int k0, int kc, const float** out) {
  const PaddedPlanes& src = *static_cast<const PaddedPlanes*>(ctx);
  const Conv2dParams& p = src.params;
  const int k = p.kernel, kk = k * k;
  const int64_t plane = PaddedPlanes::plane(p), padded_w = p.W + 2 * p.pad;
  int c = k0 / kk, t = k0 % kk;  // counted along
  for (int i = 0; i < kc; ++i) {
    out[i] = src.xpad + c * plane + (t / k) * padded_w + t % k;
    if (++t == kk) t = 0, ++c;
  }
}

void padded_offsets(const void* ctx, int j0, int n, int64_t* out) {
  const Conv2dParams& p = static_cast<const PaddedPlanes*>(ctx)->params;
  if (!PaddedPlanes::exact(p)) {
    for (int v = 0; 16 * v < n; ++v) out[v] = j0 + 16 * v;
    return;
  }
  // Column j = pixel (h, w) of image i; 16 columns never straddle an output row.
  const int64_t pq = int64_t(p.H) * p.W, image = p.C * PaddedPlanes::plane(p);
  const int64_t padded_w = p.W + 2 * p.pad;
  for (int v = 0; 16 * v < n; ++v) {
    const int64_t j = j0 + 16 * v, i = j / pq, h = j % pq / p.W, w = j % p.W;
    out[v] = i * image + h * padded_w + w;
  }
}

}  // namespace

// With C < 16 (a network's first conv) the copy and the junk columns cost more than the
// packing they save (resnet18's stem: 2.8 -> 4.4 ms).
bool PaddedPlanes::usable(const Conv2dParams& p) {
  return p.stride == 1 && p.P() == p.H && p.Q() == p.W && p.kernel > 1 && p.C >= 16 &&
         active_isa() == Isa::avx512;
}

int64_t PaddedPlanes::plane(const Conv2dParams& p) {
  // The grid's last 16-column vector and the largest tap offset read up to 16 + 2 pad floats
  // past the padded plane.
  const int64_t padded = int64_t(p.H + 2 * p.pad) * (p.W + 2 * p.pad) + 16 + 2 * p.pad;
  return (padded + 15) / 16 * 16;
}

void PaddedPlanes::fill(const Conv2dParams& p, const float* first, int images, float* xpad) {
  const int64_t plane_floats = plane(p), padded_w = p.W + 2 * p.pad, hw = int64_t(p.H) * p.W;
  for (int64_t c = 0; c < int64_t(images) * p.C; ++c) {  // image-major planes, as in x
    float* out = xpad + c * plane_floats;
    const float* in = first + c * hw;
    // top rows and the left pad of row 0
    std::fill(out, out + p.pad * padded_w + p.pad, 0.0f);
    for (int h = 0; h < p.H; ++h) {
      float* row = out + (h + p.pad) * padded_w + p.pad;
      std::copy(in + h * p.W, in + (h + 1) * p.W, row);
      // right pad of this row and left pad of the next
      std::fill(row + p.W, row + p.W + 2 * p.pad, 0.0f);
    }
    std::fill(out + (p.H + p.pad) * padded_w + p.pad, out + plane_floats, 0.0f);
  }
}

SgemmBRows PaddedPlanes::rows() const {
  return SgemmBRows{&padded_rows, &padded_offsets, this};
}

bool ChannelsLastColumns::usable(const Conv2dParams& p) {
  return p.C % 16 == 0 && active_isa() == Isa::avx512;
}

int64_t ChannelsLastColumns::floats(const Conv2dParams& p, int images) {
  return int64_t(images) * (p.H + 2 * p.pad) * (p.W + 2 * p.pad) * p.C;
}

void ChannelsLastColumns::fill(const Conv2dParams& p, const float* x, int n0, int images,
                               float* xpad) {
  const int64_t hw = int64_t(p.H) * p.W, C = p.C, padded_w = p.W + 2 * p.pad;
  const int64_t row_floats = padded_w * C;
  for (int i = 0; i < images; ++i) {
    const float* image = x + (int64_t(n0) + i) * C * hw;
    float* out = xpad + int64_t(i) * (p.H + 2 * p.pad) * row_floats;
    std::fill(out, out + p.pad * row_floats, 0.0f);  // top padding rows
    for (int h = 0; h < p.H; ++h) {
      float* row = out + (h + p.pad) * row_floats;
      std::fill(row, row + p.pad * C, 0.0f);
      // x[c][h][w] -> row[(w + pad) * C + c]: the GEMM packer's k-minor transposes, with the
      // C channel lines as one sliver of width C.
      detail::pack_kminor_avx2(image + h * p.W, hw, p.C, p.W, p.C, 0, row + p.pad * C);
      std::fill(row + (p.pad + p.W) * C, row + row_floats, 0.0f);
    }
    float* bottom = out + (p.H + p.pad) * row_floats;
    std::fill(bottom, bottom + p.pad * row_floats, 0.0f);
  }
}

SgemmBRows ChannelsLastColumns::rows() const {
  return SgemmBRows{&channels_last_rows, &channels_last_offsets, this};
}

}  // namespace tb::cpu
