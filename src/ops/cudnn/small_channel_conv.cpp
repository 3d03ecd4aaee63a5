#include "ops/cudnn/small_channel_conv.h"

#include <algorithm>

#include "core/memory_plan.h"
#include "ops/cuda/small_channel_kernels.h"
#include "ops/cuda/strided_pixels_kernels.h"
#include "ops/cudnn/route_setting.h"

namespace tb::gpu {

SmallChannelConv::SmallChannelConv(cudaStream_t stream, WorkspaceFn workspace)
    : stream_(stream), workspace_(std::move(workspace)), gemm_(stream, [this](size_t b) {
        return static_cast<char*>(workspace_(scratch_offset_ + b)) + scratch_offset_;
      }) {
  const RouteSetting r = route_setting_from_env("TB_CUDNN_SMALL_C", "cudnn", {"gemm"},
                                                /*fallback_chunked=*/true);
  enabled_ = r.chunked;
  forced_chunk_ = r.chunk_images;
}

bool SmallChannelConv::takes(DType t, const ConvGeometry& g) const {
  // Fewer than 8 channels: below that cuDNN has no tensor-core kernel for 16-bit channels-last
  // data. K a multiple of 8 keeps y's rows whole 16-byte vectors for cuBLASLt.
  return enabled_ && (t == DType::bf16 || t == DType::f16) && g.C < 8 && g.C * g.R * g.S <= 64 &&
         g.K % 8 == 0;
}

int SmallChannelConv::chunk_images(DType t, const ConvGeometry& g) const {
  return images_per_chunk(forced_chunk_, g.N,
                          size_t(g.P) * g.Q * small_channel_row(g) * dtype_size(t), kChunkBytes);
}

char* SmallChannelConv::reserve(size_t front, size_t cols, size_t scratch) {
  scratch_offset_ = MemoryPlan::aligned(front) + MemoryPlan::aligned(cols);
  return static_cast<char*>(workspace_(scratch_offset_ + scratch));
}

void SmallChannelConv::forward(DType t, const ConvGeometry& g, const void* x, const float* w,
                               void* y) {
  // Workspace: [filter rows][cols of one chunk][cuBLASLt's scratch].
  const int kp = small_channel_row(g), chunk = chunk_images(t, g);
  const int64_t pixels = int64_t(g.P) * g.Q;
  const int last = g.N - (g.N - 1) / chunk * chunk;  // images in the last chunk
  const size_t scratch = std::max(gemm_.forward_scratch(t, int(chunk * pixels), kp, g.K),
                                  gemm_.forward_scratch(t, int(last * pixels), kp, g.K));
  const size_t rows_bytes = size_t(g.K) * kp * dtype_size(t);
  char* base = reserve(rows_bytes, size_t(chunk * pixels) * kp * dtype_size(t), scratch);
  char* cols = base + MemoryPlan::aligned(rows_bytes);
  pack_filter_rows(t, w, g, base, stream_);
  for (int n0 = 0; n0 < g.N; n0 += chunk) {
    const int count = std::min(chunk, g.N - n0);
    im2col_rows(t, x, g, n0, count, cols, stream_);
    void* yc = static_cast<char*>(y) + size_t(n0 * pixels) * g.K * dtype_size(t);
    gemm_.forward(t, int(count * pixels), kp, g.K, cols, base, yc);
  }
}

void SmallChannelConv::backward_filter(DType t, const ConvGeometry& g, const void* x,
                                       const void* dy, float* dw) {
  // Workspace: [fp32 filter-row gradient][cols of one chunk][cuBLASLt's scratch].
  const int kp = small_channel_row(g), chunk = chunk_images(t, g);
  const int64_t pixels = int64_t(g.P) * g.Q;
  const int last = g.N - (g.N - 1) / chunk * chunk;
  const size_t scratch = std::max(gemm_.backward_weights_scratch(t, int(chunk * pixels), kp, g.K),
                                  gemm_.backward_weights_scratch(t, int(last * pixels), kp, g.K));
  const size_t rows_bytes = size_t(g.K) * kp * sizeof(float);
  char* base = reserve(rows_bytes, size_t(chunk * pixels) * kp * dtype_size(t), scratch);
  char* cols = base + MemoryPlan::aligned(rows_bytes);
  float* drows = reinterpret_cast<float*>(base);
  for (int n0 = 0; n0 < g.N; n0 += chunk) {
    const int count = std::min(chunk, g.N - n0);
    im2col_rows(t, x, g, n0, count, cols, stream_);
    const void* dyc = static_cast<const char*>(dy) + size_t(n0 * pixels) * g.K * dtype_size(t);
    gemm_.backward_weights(t, int(count * pixels), kp, g.K, cols, dyc, drows,
                           /*accumulate=*/n0 > 0);
  }
  unpack_filter_rows(drows, g, dw, stream_);
}

bool SmallChannelConv::takes_strided_pointwise(DType t, const ConvGeometry& g) {
  return (t == DType::bf16 || t == DType::f16) && g.R == 1 && g.S == 1 && g.stride > 1 &&
         g.pad == 0 && g.C % 8 == 0 && g.K % 8 == 0;
}

void SmallChannelConv::forward_strided_pointwise(DType t, const ConvGeometry& g, const void* x,
                                                 const void* w_rows, void* y, int chunk_images) {
  // Workspace: [gathered pixels of one chunk][cuBLASLt's scratch]. Each gathered pixel is a
  // row of C values, so the product is cols[pixels, C] * w_rows[K, C]^T.
  const int64_t pixels = int64_t(g.P) * g.Q;
  const size_t row_bytes = size_t(g.C) * dtype_size(t);
  const int chunk = images_per_chunk(chunk_images, g.N, size_t(pixels) * row_bytes, kChunkBytes);
  const int last = g.N - (g.N - 1) / chunk * chunk;
  const size_t scratch = std::max(gemm_.forward_scratch(t, int(chunk * pixels), g.C, g.K),
                                  gemm_.forward_scratch(t, int(last * pixels), g.C, g.K));
  char* cols = reserve(0, size_t(chunk * pixels) * row_bytes, scratch);
  const size_t image_bytes = size_t(g.H) * g.W * row_bytes;
  for (int n0 = 0; n0 < g.N; n0 += chunk) {
    const int count = std::min(chunk, g.N - n0);
    gather_strided_pixels(t, static_cast<const char*>(x) + n0 * image_bytes, count, g.H, g.W, g.C,
                          g.stride, cols, stream_);
    void* yc = static_cast<char*>(y) + size_t(n0 * pixels) * g.K * dtype_size(t);
    gemm_.forward(t, int(count * pixels), g.C, g.K, cols, w_rows, yc);
  }
}

}  // namespace tb::gpu
