// `--impl cuda`: every op as our own CUDA kernels (see gpu_backend.h and conv_kernels.h).
#pragma once
#include <memory>

#include "ops/backend.h"

namespace tb {

// Throws InputError("--impl cuda needs an NVIDIA GPU; none was found (...)") without a GPU.
std::unique_ptr<Backend> make_cuda_backend();

}  // namespace tb
