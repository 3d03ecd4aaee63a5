// `--impl cudnn`: convolutions, training-mode batch norm, pooling and ReLU through cuDNN 9 and
// linear layers through cuBLASLt; the other ops (loss, optimizers, adds, evaluation batch
// norm, max pooling's backward) are the shared GPU kernels of src/ops/cuda/gpu_backend.h.
#pragma once
#include <memory>

#include "ops/backend.h"

namespace tb {

// Throws InputError("--impl cudnn needs an NVIDIA GPU; none was found (...)") without a GPU.
std::unique_ptr<Backend> make_cudnn_backend();

}  // namespace tb
