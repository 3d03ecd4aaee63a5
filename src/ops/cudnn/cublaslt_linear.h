// Linear layers through cuBLASLt. Row-major y[N,out] = x[N,in] w[out,in]^T is, in cuBLAS's
// column-major terms, y^T = w^T' x^T: the three products of a layer become
//   forward   D[out x N]  = op_T(w stored in x out) * x stored in x N
//   dgrad     D[in x N]   = w stored in x out * dy stored out x N        (beta = 1 to add)
//   wgrad     D[in x out] = x stored in x N * op_T(dy stored out x N)    (fp32 output)
// with fp32 accumulation (CUBLAS_COMPUTE_32F: no TF32 for fp32 data). An algorithm is chosen
// once per shape by cuBLASLt's heuristic; the workspace is the backend's shared one.
#pragma once
#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <array>
#include <functional>
#include <map>

#include "core/dtype.h"

namespace tb::gpu {

class CublasLtLinear {
 public:
  using WorkspaceFn = std::function<void*(size_t)>;
  CublasLtLinear(cudaStream_t stream, WorkspaceFn workspace);
  ~CublasLtLinear();
  CublasLtLinear(const CublasLtLinear&) = delete;
  CublasLtLinear& operator=(const CublasLtLinear&) = delete;

  // y[N,out] = x[N,in] w[out,in]^T (all dtype t)
  void forward(DType t, int N, int in, int out, const void* x, const void* w, void* y);
  // dx[N,in] (=|+=) dy[N,out] w[out,in]
  void backward_data(DType t, int N, int in, int out, const void* dy, const void* w, void* dx,
                     bool accumulate);
  // dw[out,in] (fp32) (=|+=) dy^T x
  void backward_weights(DType t, int N, int in, int out, const void* x, const void* dy, float* dw,
                        bool accumulate = false);

  // The workspace bytes forward() and backward_weights() of these sizes ask for (their
  // algorithm is chosen on the first ask), for callers that share the workspace.
  size_t forward_scratch(DType t, int N, int in, int out) {
    return gemm(0, t, N, in, out).workspace;
  }
  size_t backward_weights_scratch(DType t, int N, int in, int out) {
    return gemm(2, t, N, in, out).workspace;
  }

  static constexpr size_t kWorkspaceBytes = size_t(32) << 20;

 private:
  struct Gemm {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    cublasLtMatmulAlgo_t algo{};
    size_t workspace = 0;
  };
  // kind 0 forward, 1 dgrad, 2 wgrad
  Gemm& gemm(int kind, DType t, int N, int in, int out);
  void run(Gemm& g, const void* a, const void* b, void* d, float beta);

  cudaStream_t stream_;
  WorkspaceFn workspace_;
  cublasLtHandle_t handle_ = nullptr;
  std::map<std::array<int, 5>, Gemm> gemms_;
};

}  // namespace tb::gpu
