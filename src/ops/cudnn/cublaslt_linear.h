// Linear layers through cuBLASLt. Row-major y[N,out] = x[N,in] w[out,in]^T is, in cuBLAS's
// column-major terms, y^T = w^T' x^T: the three products of a layer become
//   forward   D[out x N]  = op_T(w stored in x out) * x stored in x N
//   dgrad     D[in x N]   = w stored in x out * dy stored out x N        (beta = 1 to add)
//   wgrad     D[in x out] = x stored in x N * op_T(dy stored out x N)    (fp32 output)
// with fp32 accumulation (CUBLAS_COMPUTE_32F: no TF32 for fp32 data). An algorithm is chosen
// once per shape by cuBLASLt's heuristic; the workspace is the backend's shared one.
//
// Biases ride in the products' epilogues where cuBLASLt has a kernel for them: the forward
// adds the fp32 bias to D's rows (CUBLASLT_EPILOGUE_BIAS, before rounding to D's type), and
// the weight gradient sums dy over the batch into the bias gradient (CUBLASLT_EPILOGUE_BGRADB,
// the reduction over the product's k). That saves a pass over y and one over dy per layer.
// Where the heuristic offers no such kernel the calls say so and the caller runs its own
// kernels: on cuBLASLt 13 that is every forward with a 16-bit y (no kernel takes an fp32 bias
// there; the bias is not rounded to 16 bits to make one fit), so the forward fusion serves
// fp32. TB_CUBLASLT_EPILOGUE=separate turns the fusion off, for comparisons.
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

  // y[N,out] = x[N,in] w[out,in]^T (all dtype t), plus bias[out] (fp32) when given. Returns
  // false when a bias was given and not added (no fused kernel): the caller adds it.
  bool forward(DType t, int N, int in, int out, const void* x, const void* w, void* y,
               const float* bias = nullptr);
  // dx[N,in] (=|+=) dy[N,out] w[out,in]
  void backward_data(DType t, int N, int in, int out, const void* dy, const void* w, void* dx,
                     bool accumulate);
  // dw[out,in] (fp32) (=|+=) dy^T x, and dbias[out] (fp32, written) = dy's column sums when
  // given and not accumulating. Returns false when dbias was given and not written.
  bool backward_weights(DType t, int N, int in, int out, const void* x, const void* dy, float* dw,
                        bool accumulate = false, float* dbias = nullptr);

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
    bool usable = true;  // false: cuBLASLt has no kernel with this epilogue
  };
  // kind 0 forward, 1 dgrad, 2 wgrad; kBiasForward and kBiasGradient are 0 and 2 with the
  // bias epilogues. `bias` (those two kinds) is the pointer the heuristic sees for alignment.
  static constexpr int kBiasForward = 3, kBiasGradient = 4;
  Gemm& gemm(int kind, DType t, int N, int in, int out, const void* bias = nullptr);
  // The fused kind's product, if cuBLASLt has one and `bias` is aligned as it needs.
  Gemm* fused(int kind, DType t, int N, int in, int out, const void* bias);
  void run(Gemm& g, const void* a, const void* b, void* d, float beta, const void* bias = nullptr);

  cudaStream_t stream_;
  WorkspaceFn workspace_;
  cublasLtHandle_t handle_ = nullptr;
  bool epilogues_ = true;  // TB_CUBLASLT_EPILOGUE
  std::map<std::array<int, 5>, Gemm> gemms_;
};

}  // namespace tb::gpu
