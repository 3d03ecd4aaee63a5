#include "ops/cuda/cuda_check.h"

#include <fmt/format.h>

#include "core/dtype.h"
#include "core/error.h"

namespace tb::gpu {

void cuda_fail(cudaError_t code, const char* call, const char* file, int line) {
  fail_at(file, line,
          fmt::format("{} failed: {} ({})", call, cudaGetErrorName(code), cudaGetErrorString(code)));
}

void bad_dtype(const char* what, int dtype, const char* file, int line) {
  fail_at(file, line,
          fmt::format("{}: no GPU kernel for {} tensors", what, dtype_name(DType(dtype))));
}

}  // namespace tb::gpu
