// Our convolution kernels, as implicit GEMMs over channels-last activations (conv_mma.cu,
// conv_wgmma.cu, conv_fma.cu; split partials added in conv_dispatch.cu). The three passes are
// three GEMMs:
//   fprop  y[N*P*Q, K]  = im2col(x)[N*P*Q, R*S*C] * w[K, R*S*C]^T
//   dgrad  dx[N*H*W, C] = col2im-gather(dy)[N*H*W, R*S*K] * w[R*S*K, C]
//   wgrad  dw[K, R*S*C] = dy^T[K, N*P*Q] * im2col(x)[N*P*Q, R*S*C]
// with the weights in K,R,S,C order (a converted copy of the graph's K,C,R,S fp32 master).
// Two engines: tensor cores (bf16/fp16 operands, fp32 accumulation; mma.sync tiles, and on
// Hopper wgmma tiles too) when C and K are multiples of 8, and an FMA engine for fp32 and for
// any other shape. Long reductions
// are split across blocks into fp32 partials that one more kernel adds in a fixed order
// (deterministic: no atomics). Linear layers run through the same kernels as 1x1
// convolutions on 1x1 images.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/dtype.h"

namespace tb::gpu {

struct ConvGeometry {
  int N, C, H, W, K, R, S, stride, pad, P, Q;
};

enum class ConvPass : int { fprop = 0, dgrad = 1, wgrad = 2 };

// How one pass of one shape runs: chosen once per shape, reused every step.
struct ConvLaunch {
  bool tensor_cores = false;
  int tile = 0;         // index into the engine's tile shapes
  int splits = 1;       // blocks sharing one output tile's reduction
  size_t workspace = 0; // bytes of fp32 partials (0 when written directly)
};

ConvLaunch plan_conv(ConvPass pass, DType t, const ConvGeometry& g, int sm_count);
// "wgmma 256x64 swapped, 4 stages, 2 warpgroups, 1 split"-style names, for logs.
std::string conv_launch_name(const ConvLaunch& l);
// Whether the Hopper wgmma tiles are among the candidates here (conv_wgmma.h).
bool wgmma_available();
// Whether the 3x3 halo kernel (conv_wgmma_halo.cu) is among them: TB_CONV_HALO=0 takes it out
// (to time the layers without it).
bool halo_conv_enabled();
// All candidate launches for a pass (the backend times them once and keeps the fastest):
// at most kMaxConvCandidates (up to kMaxConvTiles tiles x 5 split counts).
constexpr int kMaxConvTiles = 40;
constexpr int kMaxConvCandidates = kMaxConvTiles * 5;
int conv_candidates(ConvPass pass, DType t, const ConvGeometry& g, int sm_count, ConvLaunch* out,
                    int max_out);

// y[N,P,Q,K] = conv(x[N,H,W,C], w[K,R,S,C]) + bias[K] (fp32, may be null)
void conv_fprop(const ConvLaunch& l, DType t, const ConvGeometry& g, const void* x, const void* w,
                const float* bias, void* y, void* workspace, cudaStream_t s);
// dx[N,H,W,C] (=|+=) dgrad(dy[N,P,Q,K], w[K,R,S,C])
void conv_dgrad(const ConvLaunch& l, DType t, const ConvGeometry& g, const void* dy, const void* w,
                void* dx, bool accumulate, void* workspace, cudaStream_t s);
// dw[K,C,R,S] (fp32, the graph's layout) = wgrad(x[N,H,W,C], dy[N,P,Q,K])
void conv_wgrad(const ConvLaunch& l, DType t, const ConvGeometry& g, const void* x, const void* dy,
                float* dw, void* workspace, cudaStream_t s);

// w_krsc[K,R,S,C] (dtype t) = w_kcrs[K,C,R,S] (fp32)
void weights_to_krsc(DType t, const float* w_kcrs, void* w_krsc, int K, int C, int R, int S,
                     cudaStream_t s);
// The blocks one weight tensor's conversion takes (either way): one per filter and chunk of
// channels.
int64_t krsc_blocks(int K, int C, int R, int S);
// Many weight tensors in one launch: segment j takes blocks [begin_j, begin_{j+1}) of the
// launch (begins ascending from 0, each segment krsc_blocks() of them; the table in device
// memory).
struct KrscSegment {
  float* kcrs;  // K,C,R,S fp32 (read by weights_to_krsc, written by weights_from_krsc)
  void* krsc;   // K,R,S,C in dtype t
  int K, C, R, S;
  int64_t begin = 0;  // its first block in the launch
};
void weights_to_krsc(DType t, const KrscSegment* segments, int count, int64_t blocks,
                     cudaStream_t s);
// w_kcrs[K,C,R,S] (fp32) = w_krsc[K,R,S,C] (dtype t): a weight gradient back to the graph.
void weights_from_krsc(DType t, const void* w_krsc, float* w_kcrs, int K, int C, int R, int S,
                       cudaStream_t s);
// The same for every segment of a table, in one launch.
void weights_from_krsc(DType t, const KrscSegment* segments, int count, int64_t blocks,
                       cudaStream_t s);

}  // namespace tb::gpu
