// Check macro for CUDA runtime calls (kernel launches are checked inside launch_kernel(),
// pdl.cuh). Every failure names the call, the file and the line, so a report from a GPU run
// points at the code. This header stays free of fmt and of trainbench's other headers so
// that .cu files compiled by nvcc can use it.
#pragma once
#include <cuda_runtime_api.h>

namespace tb::gpu {

// Throws tb::InternalError "CALL failed: cudaErrorX (text) (FILE:LINE)".
[[noreturn]] void cuda_fail(cudaError_t code, const char* call, const char* file, int line);
// Throws tb::InternalError for a dtype a GPU kernel has no instance for.
[[noreturn]] void bad_dtype(const char* what, int dtype, const char* file, int line);

}  // namespace tb::gpu

#define TB_CUDA_CHECK(call)                                                  \
  do {                                                                       \
    const cudaError_t tb_cuda_err_ = (call);                                 \
    if (tb_cuda_err_ != cudaSuccess)                                         \
      ::tb::gpu::cuda_fail(tb_cuda_err_, #call, __FILE__, __LINE__);         \
  } while (0)
