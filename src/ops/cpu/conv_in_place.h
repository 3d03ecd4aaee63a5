// Convolution operands that the GEMM reads in place through row pointers (SgemmBRows), from
// zero-padded copies of x: nothing of B is packed or transposed, only the copy (1/k^2 of the
// im2col matrix) is written. See docs/cpu-gemm.md (Design: B read in place).
#pragma once
#include <cstdint>

#include "ops/conv2d.h"
#include "ops/cpu/gemm.h"

namespace tb::cpu {

// The weight gradient's op(B) = col^T read in place by the GEMM (SgemmBRows), from a copy of
// the chunk's images that is channels-last and zero-padded: [images][H + 2 pad][W + 2 pad][C].
// Row k (pixel (i, p, q) of the chunk) of col^T is then one run of memory, the pixel's
// padded neighbourhood, and its columns are taken in (tap, channel) order, n = t * C + c (not
// the (c, r, s) order of the weights), so every 16 columns are 16 consecutive channels of one
// tap. No transpose, nothing packed; only the copy (1/k^2 of col^T) is written.
struct ChannelsLastColumns {
  Conv2dParams params;
  const float* xpad = nullptr;
  int images = 1;

  // Any stride and padding, C a multiple of 16, on AVX-512.
  static bool usable(const Conv2dParams& p);
  static int64_t floats(const Conv2dParams& p, int images);  // of the copy
  // Writes the copy of images [n0, n0 + images) of x to xpad.
  static void fill(const Conv2dParams& p, const float* x, int n0, int images, float* xpad);
  SgemmBRows rows() const;  // `this` must outlive the sgemm call
};

// The forward GEMM's op(B) = col read in place (SgemmBRows), for a stride-1 "same" conv:
// the chunk's images are copied into zero-padded planes, [images][C][plane()], and row
// k = (c, r, s) of col is plane c shifted by r * (W + 2 pad) + s: plain loads, no masks,
// nothing packed (the masked loads of a direct kernel on x itself ran at 83% of the packed
// kernel's speed). The micro-kernel reads each 16 columns at an offset of their own, so:
//  - exact (W a multiple of 16): the columns are the output pixels of the chunk's images,
//    each 16 of them a piece of one output row; the output is the conv's, image after image.
//  - otherwise (one image): the columns are the padded grid, g = p * (W + 2 pad) + q for q in
//    [0, W + 2 pad), of which the last 2 pad of each row are junk, dropped when the output
//    is copied out. At 32x32 the junk was 6% of the FMAs, plus a copy of the output.
struct PaddedPlanes {
  Conv2dParams params;
  const float* xpad = nullptr;

  static bool usable(const Conv2dParams& p);        // stride-1 "same", k > 1, AVX-512
  static bool exact(const Conv2dParams& p) { return p.W % 16 == 0; }
  static int64_t plane(const Conv2dParams& p);      // floats per channel, with slack
  static int64_t floats(const Conv2dParams& p, int images) { return images * p.C * plane(p); }
  // GEMM columns of a chunk of `images` (exact) or of one image (the padded grid).
  static int columns(const Conv2dParams& p, int images) {
    return exact(p) ? images * p.H * p.W : p.H * (p.W + 2 * p.pad);
  }
  // Copies `images` images of x, starting at `first`, into the planes.
  static void fill(const Conv2dParams& p, const float* first, int images, float* xpad);
  SgemmBRows rows() const;  // `this` must outlive the sgemm call
};

}  // namespace tb::cpu
