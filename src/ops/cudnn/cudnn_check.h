// Check macros for cuDNN and cuBLAS(Lt) calls: a failure names the call, the status, the
// file and the line.
#pragma once
#include <cublasLt.h>
#include <cudnn.h>

namespace tb::gpu {

[[noreturn]] void cudnn_fail(cudnnStatus_t status, const char* call, const char* file, int line);
[[noreturn]] void cublas_fail(cublasStatus_t status, const char* call, const char* file, int line);

}  // namespace tb::gpu

#define TB_CUDNN_CHECK(call)                                                   \
  do {                                                                         \
    const cudnnStatus_t tb_cudnn_st_ = (call);                                 \
    if (tb_cudnn_st_ != CUDNN_STATUS_SUCCESS)                                  \
      ::tb::gpu::cudnn_fail(tb_cudnn_st_, #call, __FILE__, __LINE__);          \
  } while (0)

#define TB_CUBLAS_CHECK(call)                                                  \
  do {                                                                         \
    const cublasStatus_t tb_cublas_st_ = (call);                               \
    if (tb_cublas_st_ != CUBLAS_STATUS_SUCCESS)                                \
      ::tb::gpu::cublas_fail(tb_cublas_st_, #call, __FILE__, __LINE__);        \
  } while (0)
