#include "ops/cudnn/cublaslt_linear.h"

#include <cstdint>

#include "core/env_choice.h"
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

// cuBLASLt reads bias vectors with 16-byte loads.
bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

}  // namespace

CublasLtLinear::CublasLtLinear(cudaStream_t stream, WorkspaceFn workspace)
    : stream_(stream),
      workspace_(std::move(workspace)),
      epilogues_(env_choice("TB_CUBLASLT_EPILOGUE", {"fused", "separate"}) == "fused") {
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

CublasLtLinear::Gemm& CublasLtLinear::gemm(int full_kind, DType t, int N, int in, int out,
                                           const void* bias) {
  const std::array<int, 5> key{full_kind, int(t), N, in, out};
  auto it = gemms_.find(key);
  if (it != gemms_.end()) return it->second;
  const int kind = full_kind == kBiasForward ? 0 : full_kind == kBiasGradient ? 2 : full_kind;
  const bool fused = kind != full_kind;
  Gemm g;
  const cudaDataType_t ab = cuda_type(t);
  const cudaDataType_t cd = kind == 2 ? CUDA_R_32F : ab;
  TB_CUBLAS_CHECK(cublasLtMatmulDescCreate(&g.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t ta = kind == 0 ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t tb = kind == 2 ? CUBLAS_OP_T : CUBLAS_OP_N;
  TB_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(g.desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
  TB_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(g.desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
  if (fused) {
    // BIAS: bias[out] over D's rows, fp32 whatever D's type. BGRADB: the column sums of
    // op(B) = dy over k = N, in D's type (fp32 for the weight gradient).
    const cublasLtEpilogue_t e = kind == 0 ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_BGRADB;
    TB_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(g.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &e, sizeof(e)));
    const int32_t bias_type = CUDA_R_32F;
    TB_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(g.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE,
                                                   &bias_type, sizeof(bias_type)));
    TB_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(g.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                                   sizeof(bias)));
  }
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
  if (fused && (st != CUBLAS_STATUS_SUCCESS || count == 0)) {
    g.usable = false;  // no kernel with this epilogue: the caller's own kernels take over
    return gemms_.emplace(key, g).first->second;
  }
  TB_CUBLAS_CHECK(st);
  TB_CHECK(count > 0, "cublasLt: no algorithm for a {} product kind {} (N={} in={} out={})",
           dtype_name(t), kind, N, in, out);
  g.algo = result.algo;
  g.workspace = result.workspaceSize;
  return gemms_.emplace(key, g).first->second;
}

CublasLtLinear::Gemm* CublasLtLinear::fused(int kind, DType t, int N, int in, int out,
                                            const void* bias) {
  if (!epilogues_ || !aligned16(bias)) return nullptr;
  Gemm& g = gemm(kind, t, N, in, out, bias);
  return g.usable ? &g : nullptr;
}

void CublasLtLinear::run(Gemm& g, const void* a, const void* b, void* d, float beta,
                         const void* bias) {
  if (bias)
    TB_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(g.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                                   sizeof(bias)));
  const float alpha = 1.0f;
  void* ws = g.workspace ? workspace_(g.workspace) : nullptr;
  TB_CUBLAS_CHECK(cublasLtMatmul(handle_, g.desc, &alpha, a, g.a, b, g.b, &beta, d, g.c, d, g.c,
                                 &g.algo, ws, g.workspace, stream_));
}

bool CublasLtLinear::forward(DType t, int N, int in, int out, const void* x, const void* w, void* y,
                             const float* bias) {
  if (bias) {
    if (Gemm* g = fused(kBiasForward, t, N, in, out, bias)) {
      run(*g, w, x, y, 0.0f, bias);
      return true;
    }
  }
  run(gemm(0, t, N, in, out), w, x, y, 0.0f);
  return bias == nullptr;
}

void CublasLtLinear::backward_data(DType t, int N, int in, int out, const void* dy, const void* w,
                                   void* dx, bool accumulate) {
  run(gemm(1, t, N, in, out), w, dy, dx, accumulate ? 1.0f : 0.0f);
}

bool CublasLtLinear::backward_weights(DType t, int N, int in, int out, const void* x,
                                      const void* dy, float* dw, bool accumulate, float* dbias) {
  // Accumulating products would overwrite the bias gradient, not add to it: not fused.
  if (dbias && !accumulate) {
    if (Gemm* g = fused(kBiasGradient, t, N, in, out, dbias)) {
      run(*g, x, dy, dw, 0.0f, dbias);
      return true;
    }
  }
  run(gemm(2, t, N, in, out), x, dy, dw, accumulate ? 1.0f : 0.0f);
  return dbias == nullptr;
}

}  // namespace tb::gpu
