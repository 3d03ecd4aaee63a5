#include "ops/cudnn/cublaslt_linear.h"

#include "core/error.h"
#include "ops/cudnn/cudnn_check.h"

namespace tb::gpu {
namespace {

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::f32: return CUDA_R_32F;
    case DType::bf16: return CUDA_R_16BF;
    case DType::f16: return CUDA_R_16F;
    default: TB_FAIL("cublasLt: no matrix product for {} tensors", dtype_name(t));
  }
}

}  // namespace

CublasLtLinear::CublasLtLinear(cudaStream_t stream, WorkspaceFn workspace)
    : stream_(stream), workspace_(std::move(workspace)) {
  TB_CUBLAS_CHECK(cublasLtCreate(&handle_));
}

CublasLtLinear::~CublasLtLinear() {
  for (auto& [key, g] : gemms_) {
    cublasLtMatmulDescDestroy(g.desc);
    cublasLtMatrixLayoutDestroy(g.a);
    cublasLtMatrixLayoutDestroy(g.b);
    cublasLtMatrixLayoutDestroy(g.c);
  }
  if (handle_) cublasLtDestroy(handle_);
}

CublasLtLinear::Gemm& CublasLtLinear::gemm(int kind, DType t, int N, int in, int out) {
  const std::array<int, 5> key{kind, int(t), N, in, out};
  auto it = gemms_.find(key);
  if (it != gemms_.end()) return it->second;
  Gemm g;
  const cudaDataType_t ab = cuda_type(t);
  const cudaDataType_t cd = kind == 2 ? CUDA_R_32F : ab;
  TB_CUBLAS_CHECK(cublasLtMatmulDescCreate(&g.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t ta = kind == 0 ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t tb = kind == 2 ? CUBLAS_OP_T : CUBLAS_OP_N;
  TB_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(g.desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
  TB_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(g.desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
  // Stored (pre-op) shapes, column-major: rows, cols, leading dimension.
  int64_t a_rows, a_cols, b_rows, b_cols, c_rows, c_cols;
  switch (kind) {
    case 0:  // D[out x N] = T(w: in x out) * (x: in x N)
      a_rows = in, a_cols = out, b_rows = in, b_cols = N, c_rows = out, c_cols = N;
      break;
    case 1:  // D[in x N] = (w: in x out) * (dy: out x N)
      a_rows = in, a_cols = out, b_rows = out, b_cols = N, c_rows = in, c_cols = N;
      break;
    default:  // D[in x out] = (x: in x N) * T(dy: out x N)
      a_rows = in, a_cols = N, b_rows = out, b_cols = N, c_rows = in, c_cols = out;
      break;
  }
  TB_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&g.a, ab, a_rows, a_cols, a_rows));
  TB_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&g.b, ab, b_rows, b_cols, b_rows));
  TB_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&g.c, cd, c_rows, c_cols, c_rows));
  cublasLtMatmulPreference_t pref = nullptr;
  TB_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  const size_t limit = kWorkspaceBytes;
  TB_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &limit, sizeof(limit)));
  cublasLtMatmulHeuristicResult_t result{};
  int count = 0;
  const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(handle_, g.desc, g.a, g.b, g.c, g.c,
                                                           pref, 1, &result, &count);
  cublasLtMatmulPreferenceDestroy(pref);
  TB_CUBLAS_CHECK(st);
  TB_CHECK(count > 0, "cublasLt: no algorithm for a {} product kind {} (N={} in={} out={})",
           dtype_name(t), kind, N, in, out);
  g.algo = result.algo;
  g.workspace = result.workspaceSize;
  return gemms_.emplace(key, g).first->second;
}

void CublasLtLinear::run(Gemm& g, const void* a, const void* b, void* d, float beta) {
  const float alpha = 1.0f;
  void* ws = g.workspace ? workspace_(g.workspace) : nullptr;
  TB_CUBLAS_CHECK(cublasLtMatmul(handle_, g.desc, &alpha, a, g.a, b, g.b, &beta, d, g.c, d, g.c,
                                 &g.algo, ws, g.workspace, stream_));
}

void CublasLtLinear::forward(DType t, int N, int in, int out, const void* x, const void* w, void* y) {
  run(gemm(0, t, N, in, out), w, x, y, 0.0f);
}

void CublasLtLinear::backward_data(DType t, int N, int in, int out, const void* dy, const void* w,
                                   void* dx, bool accumulate) {
  run(gemm(1, t, N, in, out), w, dy, dx, accumulate ? 1.0f : 0.0f);
}

void CublasLtLinear::backward_weights(DType t, int N, int in, int out, const void* x,
                                      const void* dy, float* dw, bool accumulate) {
  run(gemm(2, t, N, in, out), x, dy, dw, accumulate ? 1.0f : 0.0f);
}

}  // namespace tb::gpu
