#include "ops/cudnn/gemm_peak.h"

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <algorithm>

#include "core/error.h"
#include "ops/cuda/cuda_check.h"
#include "ops/cudnn/cudnn_check.h"

namespace tb::gpu {

double measure_gemm_peak_tflops(const std::string& precision) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    (void)cudaGetLastError();
    throw InputError("the GPU peak needs an NVIDIA GPU; none was found");
  }
  TB_INPUT_CHECK(precision == "fp32" || precision == "bf16" || precision == "fp16",
                 "GPU peak: precision is fp32, bf16 or fp16, not '{}'", precision);
  const cudaDataType_t type = precision == "bf16"   ? CUDA_R_16BF
                              : precision == "fp16" ? CUDA_R_16F
                                                    : CUDA_R_32F;
  const size_t esize = precision == "fp32" ? 4 : 2;
  const int64_t n = 8192;
  const size_t bytes = size_t(n * n) * esize;
  const size_t workspace_bytes = size_t(64) << 20;

  // Every resource is released on every path, errors included.
  struct Resources {
    cudaStream_t stream = nullptr;
    cudaEvent_t start = nullptr, stop = nullptr;
    void *a = nullptr, *b = nullptr, *c = nullptr, *workspace = nullptr;
    cublasLtHandle_t handle = nullptr;
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t layout = nullptr;
    cublasLtMatmulPreference_t pref = nullptr;
    ~Resources() {
      if (stream) cudaStreamSynchronize(stream);
      if (pref) cublasLtMatmulPreferenceDestroy(pref);
      if (layout) cublasLtMatrixLayoutDestroy(layout);
      if (desc) cublasLtMatmulDescDestroy(desc);
      if (handle) cublasLtDestroy(handle);
      for (void* p : {a, b, c, workspace})
        if (p) cudaFree(p);
      if (start) cudaEventDestroy(start);
      if (stop) cudaEventDestroy(stop);
      if (stream) cudaStreamDestroy(stream);
    }
  } r;
  TB_CUDA_CHECK(cudaStreamCreateWithFlags(&r.stream, cudaStreamNonBlocking));
  TB_CUDA_CHECK(cudaEventCreate(&r.start));
  TB_CUDA_CHECK(cudaEventCreate(&r.stop));
  TB_CUDA_CHECK(cudaMalloc(&r.a, bytes));
  TB_CUDA_CHECK(cudaMalloc(&r.b, bytes));
  TB_CUDA_CHECK(cudaMalloc(&r.c, bytes));
  TB_CUDA_CHECK(cudaMalloc(&r.workspace, workspace_bytes));
  // Small values (zero bits would let the hardware idle): 0x3c00 is 1.0 in fp16, 0x3f80 in
  // bf16's top byte pattern; any finite pattern does for a rate.
  TB_CUDA_CHECK(cudaMemsetAsync(r.a, 0x3c, bytes, r.stream));
  TB_CUDA_CHECK(cudaMemsetAsync(r.b, 0x3c, bytes, r.stream));
  TB_CUDA_CHECK(cudaMemsetAsync(r.c, 0, bytes, r.stream));

  TB_CUBLAS_CHECK(cublasLtCreate(&r.handle));
  TB_CUBLAS_CHECK(cublasLtMatmulDescCreate(&r.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  TB_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&r.layout, type, n, n, n));
  TB_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&r.pref));
  TB_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      r.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace_bytes, sizeof(workspace_bytes)));
  cublasLtMatmulHeuristicResult_t heuristic{};
  int found = 0;
  TB_CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(r.handle, r.desc, r.layout, r.layout, r.layout,
                                                 r.layout, r.pref, 1, &heuristic, &found));
  TB_INPUT_CHECK(found > 0, "GPU peak: cuBLASLt has no {} matrix product here", precision);
  const float alpha = 1e-3f, beta = 0.0f;
  auto product = [&] {
    TB_CUBLAS_CHECK(cublasLtMatmul(r.handle, r.desc, &alpha, r.a, r.layout, r.b, r.layout, &beta,
                                   r.c, r.layout, r.c, r.layout, &heuristic.algo, r.workspace,
                                   workspace_bytes, r.stream));
  };
  // Warm-up long enough for the clocks to settle under load, then the best of five batches.
  const int per_batch = precision == "fp32" ? 5 : 40;
  for (int i = 0; i < per_batch; ++i) product();
  double best = 0;
  for (int batch = 0; batch < 5; ++batch) {
    TB_CUDA_CHECK(cudaEventRecord(r.start, r.stream));
    for (int i = 0; i < per_batch; ++i) product();
    TB_CUDA_CHECK(cudaEventRecord(r.stop, r.stream));
    TB_CUDA_CHECK(cudaEventSynchronize(r.stop));
    float ms = 0;
    TB_CUDA_CHECK(cudaEventElapsedTime(&ms, r.start, r.stop));
    const double flops = 2.0 * double(n) * double(n) * double(n) * per_batch;
    best = std::max(best, flops / (1e-3 * double(ms)) / 1e12);
  }
  return best;
}

}  // namespace tb::gpu
