// cuDNN's name for an activation dtype, shared by the cuDNN wrappers.
#pragma once
#include <cudnn.h>

#include "core/dtype.h"
#include "core/error.h"

namespace tb::gpu {

inline cudnnDataType_t cudnn_type(DType t) {
  switch (t) {
    case DType::f32: return CUDNN_DATA_FLOAT;
    case DType::bf16: return CUDNN_DATA_BFLOAT16;
    case DType::f16: return CUDNN_DATA_HALF;
    default: TB_FAIL("cudnn: no {} tensors", dtype_name(t));
  }
}

}  // namespace tb::gpu
