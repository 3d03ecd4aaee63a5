// Convolutions through cuDNN's convolution API, channels-last (NHWC activations, KRSC
// filters). For each shape and pass the algorithm is chosen once by measurement on scratch
// outputs (cudnnFind*AlgorithmEx, every algorithm) and kept in the algorithm cache
// (ops/algorithm_cache.h) for later runs on the same GPU and cuDNN, keeping fp32 on FMA math (no
// TF32, so fp32 results match the reference to fp32 rounding) and 16-bit types on tensor cores. A
// shape that differs from a measured one only in its batch (the last, partial batch of an epoch)
// takes the measured shape's algorithms instead of a second search. Every run takes its
// workspace from the backend's one shared buffer. A 1x1 convolution with stride > 1 can also
// run as a pixel gather and a stride-1 1x1 (TB_CUDNN_STRIDED_1X1=gathered; cudnn_conv.cpp
// says why it is not the default), or its forward as a gather and a cuBLASLt product (by
// default where cuDNN has only its generic kernel for it; run by the backend:
// small_channel_conv.h). TB_CUDNN_ALGOS picks among the measured algorithms
// (deterministic by default; fastest; lean), TB_CUDNN_SEARCH_LOG=1 prints every search.
#pragma once
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <array>
#include <functional>
#include <map>
#include <string>

#include "core/dtype.h"
#include "ops/algorithm_cache.h"
#include "ops/backend.h"
#include "ops/cuda/conv_kernels.h"

namespace tb::gpu {

// How a measured algorithm is chosen (TB_CUDNN_ALGOS; cudnn_conv.cpp's pick()).
enum class AlgoPolicy { deterministic, fastest, lean };

class CudnnConvolutions {
 public:
  // workspace(bytes) returns the backend's shared scratch of at least that size.
  using WorkspaceFn = std::function<void*(size_t)>;
  CudnnConvolutions(Backend& backend, cudaStream_t stream, WorkspaceFn workspace);
  ~CudnnConvolutions();
  CudnnConvolutions(const CudnnConvolutions&) = delete;
  CudnnConvolutions& operator=(const CudnnConvolutions&) = delete;

  // y = conv(x, w) (w is K,R,S,C in dtype t)
  void forward(DType t, const ConvGeometry& g, const void* x, const void* w, void* y);
  // dx (=|+=) dgrad(dy, w)
  void backward_data(DType t, const ConvGeometry& g, const void* dy, const void* w, void* dx,
                     bool accumulate);
  // dw_krsc (dtype t, K,R,S,C) = wgrad(x, dy), into `into` when given (a buffer that
  // outlives the call), else into the workspace; returns where it wrote.
  const void* backward_filter(DType t, const ConvGeometry& g, const void* x, const void* dy,
                              void* into = nullptr);

  // The filter gradient beside the data gradient, on a second stream (its own cuDNN handle):
  // small layers leave most SMs idle, and two independent kernels fill more of them.
  // set_side_stream() once; then, per backward: split_backward() says whether g can go that
  // way (the direct route only), prepare_split() chooses both passes' algorithms now (the
  // search runs on the main stream, before the streams fork) and says how to divide one
  // workspace, [data's scratch | filter gradient | filter's scratch]; the two passes then
  // take their parts of it.
  void set_side_stream(cudaStream_t side);
  bool split_backward(const ConvGeometry& g) const;
  struct SplitWorkspace {
    size_t filter_offset = 0;  // bytes: the data gradient's scratch comes first
    size_t total = 0;
  };
  SplitWorkspace prepare_split(DType t, const ConvGeometry& g, const void* x, const void* dy,
                               const void* w, bool with_data);
  void backward_data_in(DType t, const ConvGeometry& g, const void* dy, const void* w, void* dx,
                        bool accumulate, void* workspace);
  // On the side stream; returns where it wrote (filter_workspace).
  const void* backward_filter_beside(DType t, const ConvGeometry& g, const void* x, const void* dy,
                                     char* filter_workspace);

  // Whether the forward pass of g, if a 1x1 convolution with stride > 1, is the backend's to
  // run as a product on cuBLASLt rather than forward()'s: always with
  // TB_CUDNN_STRIDED_1X1=gemm-forward, never with direct or the gathered routes, and by
  // default (auto) where cuDNN's fastest forward for the shape, measured now on x and w
  // (K,R,S,C in dtype t) unless known, is its generic implicit-GEMM kernel. The images per
  // chunk the setting named (0: by size) follow.
  bool strided_forward_on_gemm(DType t, const ConvGeometry& g, const void* x, const void* w);
  int strided_chunk_images() const { return strided_.chunk_images; }

  cudnnHandle_t handle() const { return handle_; }
  // Host seconds spent choosing algorithms so far (part of a run's first step), how many
  // passes were measured, and the cache the others came from.
  double search_seconds() const { return search_seconds_; }
  int searches() const { return searches_; }
  const AlgorithmCache& cache() const { return cache_; }

 private:
  struct Pass {
    bool found = false;
    int algo = 0;
    cudnnMathType_t math = CUDNN_DEFAULT_MATH;
    size_t workspace = 0;
    cudnnConvolutionDescriptor_t conv = nullptr;
  };
  struct Plan {
    cudnnTensorDescriptor_t x = nullptr, y = nullptr;
    cudnnFilterDescriptor_t w = nullptr;
    Pass pass[3];  // fprop, dgrad, wgrad
  };
  Plan& plan(DType t, const ConvGeometry& g);
  // The same pass of a measured plan whose shape differs from g only in the batch, or null.
  const Pass* measured_sibling(DType t, const ConvGeometry& g, int pass) const;
  // Takes the sibling's algorithm for pass `index` of plan p (the workspace asked of cuDNN
  // for this shape); false when there is none or cuDNN refuses it for this shape.
  bool adopt_sibling(DType t, const ConvGeometry& g, Plan& p, int index);
  cudnnConvolutionDescriptor_t make_conv(DType t, const ConvGeometry& g);
  size_t find_limit(DType t) const;
  // Chooses pass `index` of plan p by measurement: find(results, n, count, out, ws, limit)
  // is cuDNN's exhaustive search, whose candidates are then timed again one by one through
  // run(result, out, ws) (retime()). The choice goes into the cache.
  template <class Perf, class Find, class Run>
  void search(Plan& p, int index, DType t, const ConvGeometry& g, size_t out_bytes, Find find,
              Run run);
  // Takes (algo, math) for pass `index` of plan p if cuDNN accepts it for this shape (asking
  // its workspace size); false otherwise.
  bool adopt(DType t, Plan& p, int index, int algo, cudnnMathType_t math);
  // The cached choice for pass `index` of shape g, if any and still accepted.
  bool adopt_cached(DType t, const ConvGeometry& g, Plan& p, int index);
  std::string cache_key(DType t, const ConvGeometry& g, int index) const;
  // Plan for shape g with its pass chosen (recalled, or measured on these tensors).
  Plan& forward_plan(DType t, const ConvGeometry& g, const void* x, const void* w);
  Plan& dgrad_plan(DType t, const ConvGeometry& g, const void* dy, const void* w);
  Plan& wgrad_plan(DType t, const ConvGeometry& g, const void* x, const void* dy);
  // Each pass directly, and as a strided 1x1 through gathered pixels (cudnn_conv.cpp).
  void forward_direct(DType t, const ConvGeometry& g, const void* x, const void* w, void* y);
  void forward_gathered(DType t, const ConvGeometry& g, const void* x, const void* w, void* y);
  // With `ws` null, the passes take the shared workspace; the filter pass runs on `handle`
  // (handle_ when null).
  void backward_data_direct(DType t, const ConvGeometry& g, const void* dy, const void* w, void* dx,
                            bool accumulate, void* ws = nullptr);
  void backward_data_gathered(DType t, const ConvGeometry& g, const void* dy, const void* w,
                              void* dx, bool accumulate);
  const void* backward_filter_direct(DType t, const ConvGeometry& g, const void* x, const void* dy,
                                     cudnnHandle_t handle = nullptr, char* base = nullptr,
                                     void* into = nullptr);
  const void* backward_filter_gathered(DType t, const ConvGeometry& g, const void* x,
                                       const void* dy, void* into);
  // The workspace of at least `total` bytes with x's strided pixels (g's images) at offset
  // `front`, gathered unless `base` is that workspace already (it did not grow).
  char* gathered_workspace(DType t, const ConvGeometry& g, const void* x, size_t front,
                           size_t total, char* base);

  Backend& backend_;
  cudaStream_t stream_;
  WorkspaceFn workspace_;
  cudnnHandle_t handle_ = nullptr;
  cudnnHandle_t side_handle_ = nullptr;  // on the side stream (set_side_stream)
  std::map<std::array<int, 12>, Plan> plans_;
  struct StridedRoute {  // TB_CUDNN_STRIDED_1X1, read once
    bool gathered = false;          // every pass
    bool gathered_forward = false;  // the forward pass (also set by gathered)
    bool gemm_forward = false;      // the forward pass on cuBLASLt, by the backend
    bool auto_forward = false;      // the same where cuDNN has only its generic kernel
    int chunk_images = 0;  // 0: chunks of at most 16 MiB
  };
  StridedRoute strided_;
  AlgoPolicy policy_;
  bool log_searches_ = false;  // TB_CUDNN_SEARCH_LOG=1
  AlgorithmCache cache_;
  std::string device_key_;  // GPU name and cuDNN version, the cache keys' prefix
  double search_seconds_ = 0;
  int searches_ = 0;
};

}  // namespace tb::gpu
