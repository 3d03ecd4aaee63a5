// The GPU's measured matrix-product peak per precision, for "percent of GPU peak" beside the
// CPU's measured FMA peak. Builds without CUDA, and machines without a GPU, have none.
#pragma once
#include <optional>
#include <string>

namespace tb {

// TFLOP/s of large cuBLASLt products in `precision` (bf16/fp16 tensor cores, fp32 FMA without
// TF32), measured once per precision and process (about a second); nullopt without a usable
// GPU or CUDA in this build.
std::optional<double> gpu_peak_tflops(const std::string& precision);

}  // namespace tb
