// CudnnBackend: GpuBackend with convolutions, training-mode batch norm, pooling and ReLU from
// cuDNN and linear layers from cuBLASLt (batch norm in evaluation mode, max pooling's
// backward, and any case cuDNN refuses, run the shared kernels). Convolutions with fewer than
// 8 input channels (stems) run forward and filter gradient as cuBLASLt products
// (small_channel_conv.h), as may the forward of 1x1 stride-2 shortcuts (TB_CUDNN_STRIDED_1X1).
// Weights reach both libraries as K,R,S,C copies in the activation dtype, refreshed at every
// use; weight gradients come back in that layout and dtype and are converted to the graph's
// fp32 K,C,R,S (one launch for all of a step's filter gradients where the weight copies
// persist: GpuBackend::deferred_filter_gradient).
#include "ops/cudnn/cudnn_backend.h"

#include <cstdlib>
#include <limits>
#include <string>

#include "ops/cuda/batchnorm_kernels.h"
#include "ops/cuda/conv_kernels.h"
#include "ops/cuda/elementwise_kernels.h"
#include "ops/cuda/gpu_backend.h"
#include "ops/cudnn/cublaslt_linear.h"
#include "ops/cudnn/cudnn_batch_norm.h"
#include "ops/cudnn/cudnn_conv.h"
#include "ops/cudnn/cudnn_pool_activation.h"
#include "ops/cudnn/small_channel_conv.h"

namespace tb {
namespace gpu {
namespace {

ConvGeometry geometry(const Conv2dParams& p) {
  return {p.N, p.C, p.H, p.W, p.K, p.kernel, p.kernel, p.stride, p.pad, p.P(), p.Q()};
}

class CudnnBackend final : public GpuBackend {
 public:
  CudnnBackend()
      : GpuBackend("cudnn"),
        convs_(*this, stream(), [this](size_t b) { return workspace(b); }),
        linear_(stream(), [this](size_t b) { return workspace(b); }),
        batch_norm_(
            convs_.handle(), [this](size_t b) { return allocate_internal(b); },
            [this](void* p) { release(p); }, [this](size_t b) { return workspace(b); }),
        pool_activation_(convs_.handle()),
        small_channel_(stream(), [this](size_t b) { return workspace(b); }),
        side_stream_outputs_(side_stream_outputs_from_env()) {
    if (side_stream_outputs_ > 0) convs_.set_side_stream(side_stream());
  }
  std::string name() const override { return "cudnn"; }
  AlgorithmSearch algorithm_search() const override {
    return {convs_.search_seconds(), convs_.searches(), convs_.cache().hits(),
            convs_.cache().path()};
  }

  void conv2d_forward(const Conv2dParams& p, const Tensor& x, const Tensor& w, const Tensor& bias,
                      const Tensor& y) override {
    check_conv(p);
    TB_CHECK(!p.relu, "cudnn: conv2d_relu is not one of its ops (supports() says so)");
    expect(x, p.x_numel(), "x");
    expect(y, p.y_numel(), "y");
    same_dtype(x, y, "y");
    const DType t = x.dtype;
    const ConvGeometry g = geometry(p);
    if (small_channel_.takes(t, g)) {
      small_channel_.forward(t, g, x.data, fp32(w, p.w_numel(), "w"), y.data);
    } else {
      const void* wk = krsc_weights(w, t, g.K, g.C, g.R, g.S);
      if (SmallChannelConv::takes_strided_pointwise(t, g) &&
          convs_.strided_forward_on_gemm(t, g, x.data, wk))
        // A 1x1 filter's K,R,S,C copy is its K,C rows.
        small_channel_.forward_strided_pointwise(t, g, x.data, wk, y.data,
                                                 convs_.strided_chunk_images());
      else
        convs_.forward(t, g, x.data, wk, y.data);
    }
    if (p.has_bias)
      add_bias(t, y.data, fp32(bias, p.K, "bias"), int64_t(g.N) * g.P * g.Q, g.K, stream());
  }

  void conv2d_backward(const Conv2dParams& p, const Tensor& x, const Tensor& w, const Tensor& dy,
                       const Tensor& dx, const Tensor& dw, const Tensor& dbias,
                       bool accumulate_dx) override {
    check_conv(p);
    expect(x, p.x_numel(), "x");
    expect(dy, p.y_numel(), "dy");
    same_dtype(x, dy, "dy");
    const DType t = x.dtype;
    const ConvGeometry g = geometry(p);
    if (dx.defined()) {
      expect(dx, p.x_numel(), "dx");
      same_dtype(x, dx, "dx");
    }
    float* dw32 = fp32(dw, p.w_numel(), "dw");
    if (small_channel_.takes(t, g)) {
      // A stem has no data gradient; any other layer's comes from cuDNN.
      if (dx.defined())
        convs_.backward_data(t, g, dy.data, krsc_weights(w, t, g.K, g.C, g.R, g.S, true), dx.data,
                             accumulate_dx);
      small_channel_.backward_filter(t, g, x.data, dy.data, dw32);
      if (p.has_bias) bias_gradient(t, dy.data, int64_t(g.N) * g.P * g.Q, g.K, dbias);
      return;
    }
    const void* wk = krsc_weights(w, t, g.K, g.C, g.R, g.S, /*reuse=*/true);
    if (beside(g)) {
      // The filter gradient (and its conversion) on the side stream, the data gradient on
      // the main one, each in its own part of one workspace; joined before this returns, so
      // no later op can overwrite x or dy while the side stream reads them.
      const auto split = convs_.prepare_split(t, g, x.data, dy.data, wk, dx.defined());
      char* ws = static_cast<char*>(workspace(split.total));
      fork_side();
      const void* dwk =
          convs_.backward_filter_beside(t, g, x.data, dy.data, ws + split.filter_offset);
      weights_from_krsc(t, dwk, dw32, g.K, g.C, g.R, g.S, side_stream());
      if (dx.defined()) convs_.backward_data_in(t, g, dy.data, wk, dx.data, accumulate_dx, ws);
      join_side();
    } else {
      if (dx.defined()) convs_.backward_data(t, g, dy.data, wk, dx.data, accumulate_dx);
      // Converted here, or with every other filter gradient at finish_backward().
      void* deferred = deferred_filter_gradient(dw32, t, g.K, g.C, g.R, g.S);
      const void* dwk = convs_.backward_filter(t, g, x.data, dy.data, deferred);
      if (!deferred) weights_from_krsc(t, dwk, dw32, g.K, g.C, g.R, g.S, stream());
    }
    if (p.has_bias) bias_gradient(t, dy.data, int64_t(g.N) * g.P * g.Q, g.K, dbias);
  }

  void linear_forward(const LinearParams& p, const Tensor& x, const Tensor& w, const Tensor& bias,
                      const Tensor& y) override {
    TB_CHECK(!p.relu, "cudnn: linear_relu is not one of its ops (supports() says so)");
    expect(x, int64_t(p.N) * p.in, "x");
    expect(y, int64_t(p.N) * p.out, "y");
    same_dtype(x, y, "y");
    const DType t = x.dtype;
    const void* wt = krsc_weights(w, t, p.out, p.in, 1, 1);  // [out,in] in dtype t
    const float* b = p.has_bias ? fp32(bias, p.out, "bias") : nullptr;
    if (!linear_.forward(t, p.N, p.in, p.out, x.data, wt, y.data, b))
      add_bias(t, y.data, b, p.N, p.out, stream());
  }

  void linear_backward(const LinearParams& p, const Tensor& x, const Tensor& w, const Tensor& dy,
                       const Tensor& dx, const Tensor& dw, const Tensor& dbias,
                       bool accumulate_dx) override {
    expect(x, int64_t(p.N) * p.in, "x");
    expect(dy, int64_t(p.N) * p.out, "dy");
    same_dtype(x, dy, "dy");
    const DType t = x.dtype;
    if (dx.defined()) {
      expect(dx, int64_t(p.N) * p.in, "dx");
      same_dtype(x, dx, "dx");
      const void* wt = krsc_weights(w, t, p.out, p.in, 1, 1, /*reuse=*/true);
      linear_.backward_data(t, p.N, p.in, p.out, dy.data, wt, dx.data, accumulate_dx);
    }
    float* db = p.has_bias ? fp32(dbias, p.out, "dbias") : nullptr;
    if (!linear_.backward_weights(t, p.N, p.in, p.out, x.data, dy.data,
                                  fp32(dw, int64_t(p.out) * p.in, "dw"), false, db))
      bias_gradient(t, dy.data, p.N, p.out, dbias);
  }

 protected:
  bool library_batch_norm_forward_train(DType t, const BatchNormParams& p, const void* x,
                                        const float* gamma, const float* beta,
                                        const void* residual, bool relu, void* y,
                                        float* running_mean, float* running_var,
                                        float* save_mean, float* save_invstd) override {
    return batch_norm_.forward_train(t, p, x, gamma, beta, residual, relu, y, running_mean,
                                     running_var, save_mean, save_invstd);
  }
  bool library_batch_norm_backward(DType t, const BatchNormParams& p, const void* x,
                                   const float* gamma, const float* save_mean,
                                   const float* save_invstd, const void* y, const void* dy,
                                   void* dx, float* dgamma, float* dbeta, bool accumulate_dx,
                                   void* dres, bool accumulate_dres, bool relu) override {
    return batch_norm_.backward(t, p, x, gamma, save_mean, save_invstd, y, dy, dx, dgamma, dbeta,
                                accumulate_dx, dres, accumulate_dres, relu);
  }
  void releasing(const void* base, size_t bytes) override { batch_norm_.forget(base, bytes); }
  bool library_relu_forward(DType t, const void* x, void* y, int64_t n) override {
    return pool_activation_.relu_forward(t, x, y, n);
  }
  bool library_relu_backward(DType t, const void* y, const void* dy, void* dx, int64_t n,
                             bool accumulate_dx) override {
    return pool_activation_.relu_backward(t, y, dy, dx, n, accumulate_dx);
  }
  bool library_pool2d_forward(DType t, bool max, const Pool2dParams& p, const void* x,
                              void* y) override {
    return pool_activation_.pool_forward(t, max, shape(p), x, y);
  }
  bool library_avg_pool2d_backward(DType t, const Pool2dParams& p, const void* dy, void* dx,
                                   bool accumulate_dx) override {
    return pool_activation_.avg_pool_backward(t, shape(p), dy, dx, accumulate_dx);
  }
  bool library_global_avg_pool_forward(DType t, const GlobalPoolParams& p, const void* x,
                                       void* y) override {
    return pool_activation_.pool_forward(t, false, shape(p), x, y);
  }
  bool library_global_avg_pool_backward(DType t, const GlobalPoolParams& p, const void* dy,
                                        void* dx, bool accumulate_dx) override {
    return pool_activation_.avg_pool_backward(t, shape(p), dy, dx, accumulate_dx);
  }

 private:
  void check_conv(const Conv2dParams& p) const {
    TB_CHECK(p.N > 0 && p.C > 0 && p.K > 0 && p.kernel > 0 && p.stride > 0 && p.pad >= 0,
             "cudnn conv2d: bad params N={} C={} K={} kernel={} stride={} pad={}", p.N, p.C, p.K,
             p.kernel, p.stride, p.pad);
    TB_CHECK(p.P() > 0 && p.Q() > 0, "cudnn conv2d: a {}x{} kernel does not fit a {}x{} input",
             p.kernel, p.kernel, p.H, p.W);
  }
  void expect(const Tensor& t, int64_t numel, const char* what) const {
    TB_CHECK(t.defined() && t.device.kind == DeviceKind::cuda && t.contiguous() &&
                 t.numel() == numel,
             "cudnn: {} must be a contiguous GPU tensor of {} elements (has {})", what, numel,
             t.numel());
  }
  void same_dtype(const Tensor& a, const Tensor& b, const char* what) const {
    TB_CHECK(a.dtype == b.dtype, "cudnn: {} is {}, expected {}", what, dtype_name(b.dtype),
             dtype_name(a.dtype));
  }
  float* fp32(const Tensor& t, int64_t numel, const char* what) const {
    expect(t, numel, what);
    TB_CHECK(t.dtype == DType::f32, "cudnn: {} must be fp32, is {}", what, dtype_name(t.dtype));
    return t.ptr<float>();
  }
  void bias_gradient(DType t, const void* dy, int64_t rows, int K, const Tensor& dbias) {
    float* out = fp32(dbias, K, "dbias");
    column_sum(t, dy, rows, K, out, workspace(column_sum_workspace_bytes(rows, K)), stream());
  }

  // TB_CUDNN_SIDE_STREAM: which convolutions compute their filter gradient beside their data
  // gradient, on the side stream. A layer whose output has at most this many elements
  // (N*P*Q*K) does: off (0, the default), on (every layer), or a number. Measured on the H200
  // (v13), resnet18 bf16: 2^22 (every layer at b64, layer4 at b512) ran b64 3.4% and b512
  // 1.5% slower than off, and on ran both slower still; cuDNN's kernels, unlike ours, leave
  // too few SMs idle for a second stream to use.
  static int64_t side_stream_outputs_from_env() {
    const char* v = std::getenv("TB_CUDNN_SIDE_STREAM");
    if (!v || !*v) return 0;
    const std::string s = v;
    if (s == "off") return 0;
    if (s == "on") return std::numeric_limits<int64_t>::max();
    char* end = nullptr;
    const long long n = std::strtoll(v, &end, 10);
    TB_INPUT_CHECK(end && *end == '\0' && n >= 0,
                   "TB_CUDNN_SIDE_STREAM must be off, on or a number of output elements, got '{}'",
                   s);
    return n;
  }
  bool beside(const ConvGeometry& g) const {
    return side_stream_outputs_ > 0 && int64_t(g.N) * g.P * g.Q * g.K <= side_stream_outputs_ &&
           convs_.split_backward(g);
  }

  static CudnnPoolShape shape(const Pool2dParams& p) {
    return {p.N, p.C, p.H, p.W, p.kernel, p.kernel, p.stride, p.pad, p.P(), p.Q()};
  }
  // Global average pooling: one window over the whole image.
  static CudnnPoolShape shape(const GlobalPoolParams& p) {
    return {p.N, p.C, p.H, p.W, p.H, p.W, 1, 0, 1, 1};
  }

  CudnnConvolutions convs_;
  CublasLtLinear linear_;
  CudnnBatchNorm batch_norm_;
  CudnnPoolActivation pool_activation_;
  SmallChannelConv small_channel_;
  int64_t side_stream_outputs_;
};

}  // namespace
}  // namespace gpu

std::unique_ptr<Backend> make_cudnn_backend() { return std::make_unique<gpu::CudnnBackend>(); }

}  // namespace tb
