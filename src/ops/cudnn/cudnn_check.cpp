#include "ops/cudnn/cudnn_check.h"

#include <fmt/format.h>

#include "core/error.h"

namespace tb::gpu {

void cudnn_fail(cudnnStatus_t status, const char* call, const char* file, int line) {
  fail_at(file, line, fmt::format("{} failed: {}", call, cudnnGetErrorString(status)));
}

void cublas_fail(cublasStatus_t status, const char* call, const char* file, int line) {
  fail_at(file, line, fmt::format("{} failed: cuBLAS status {}", call, int(status)));
}

}  // namespace tb::gpu
