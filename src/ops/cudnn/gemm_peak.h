// The measured matrix-product peak of the GPU: the denominator of "percent of GPU peak".
// Measured rather than read off a spec sheet, because what a kernel gets is the clock the
// board holds under a full tensor-core load, on this driver, in this power state.
#pragma once
#include <string>

namespace tb::gpu {

// TFLOP/s of cuBLASLt on large square products (M = N = K = 8192) in `precision`: bf16 and
// fp16 on the tensor cores with fp32 accumulation, fp32 with fp32 FMA (no TF32, as our fp32
// training uses). The best of a few timed batches, after warm-up, timed by CUDA events.
// Throws InputError when no GPU is usable.
double measure_gemm_peak_tflops(const std::string& precision);

}  // namespace tb::gpu
