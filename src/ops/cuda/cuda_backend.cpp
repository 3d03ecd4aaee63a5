// CudaBackend: convolutions and linear layers through our implicit-GEMM kernels; everything
// else from GpuBackend. A linear layer is a 1x1 convolution over 1x1 images: x[N,in] is
// channels-last N,1,1,in and w[out,in] is already K,R,S,C.
#include "ops/cuda/cuda_backend.h"

#include "core/timer.h"
#include "ops/cuda/batchnorm_kernels.h"
#include "ops/cuda/channel_pad_kernels.h"
#include "ops/cuda/conv_autotune.h"
#include "ops/cuda/conv_kernels.h"
#include "ops/cuda/gpu_backend.h"

namespace tb {
namespace gpu {
namespace {

ConvGeometry geometry(const Conv2dParams& p) {
  return {p.N, p.C, p.H, p.W, p.K, p.kernel, p.kernel, p.stride, p.pad, p.P(), p.Q()};
}

ConvGeometry geometry(const LinearParams& p) { return {p.N, p.in, 1, 1, p.out, 1, 1, 1, 0, 1, 1}; }

class CudaBackend final : public GpuBackend {
 public:
  CudaBackend() : GpuBackend("cuda") { tuner_.set_device(device_name()); }
  ~CudaBackend() override {
    cudaStreamSynchronize(stream());
    for (Scratch* b : {&pad_x_, &pad_w_, &pad_dw_})
      if (b->ptr) cudaFree(b->ptr);
  }
  std::string name() const override { return "cuda"; }

  void conv2d_forward(const Conv2dParams& p, const Tensor& x, const Tensor& w, const Tensor& bias,
                      const Tensor& y) override {
    check_conv(p);
    TB_CHECK(!p.relu, "cuda: conv2d_relu is not one of its ops (supports() says so)");
    expect(x, p.x_numel(), "x");
    expect(y, p.y_numel(), "y");
    forward(geometry(p), x, w, p.has_bias ? &bias : nullptr, y);
  }

  void conv2d_backward(const Conv2dParams& p, const Tensor& x, const Tensor& w, const Tensor& dy,
                       const Tensor& dx, const Tensor& dw, const Tensor& dbias,
                       bool accumulate_dx) override {
    check_conv(p);
    expect(x, p.x_numel(), "x");
    expect(dy, p.y_numel(), "dy");
    if (dx.defined()) expect(dx, p.x_numel(), "dx");
    backward(geometry(p), x, w, dy, dx, dw, p.has_bias ? &dbias : nullptr, accumulate_dx);
  }

  void linear_forward(const LinearParams& p, const Tensor& x, const Tensor& w, const Tensor& bias,
                      const Tensor& y) override {
    TB_CHECK(!p.relu, "cuda: linear_relu is not one of its ops (supports() says so)");
    expect(x, int64_t(p.N) * p.in, "x");
    expect(y, int64_t(p.N) * p.out, "y");
    forward(geometry(p), x, w, p.has_bias ? &bias : nullptr, y);
  }

  void linear_backward(const LinearParams& p, const Tensor& x, const Tensor& w, const Tensor& dy,
                       const Tensor& dx, const Tensor& dw, const Tensor& dbias,
                       bool accumulate_dx) override {
    expect(x, int64_t(p.N) * p.in, "x");
    expect(dy, int64_t(p.N) * p.out, "dy");
    if (dx.defined()) expect(dx, int64_t(p.N) * p.in, "dx");
    backward(geometry(p), x, w, dy, dx, dw, p.has_bias ? &dbias : nullptr, accumulate_dx);
  }

 private:
  void check_conv(const Conv2dParams& p) const {
    TB_CHECK(p.N > 0 && p.C > 0 && p.K > 0 && p.kernel > 0 && p.stride > 0 && p.pad >= 0,
             "cuda conv2d: bad params N={} C={} K={} kernel={} stride={} pad={}", p.N, p.C, p.K,
             p.kernel, p.stride, p.pad);
    TB_CHECK(p.P() > 0 && p.Q() > 0, "cuda conv2d: a {}x{} kernel does not fit a {}x{} input",
             p.kernel, p.kernel, p.H, p.W);
  }

  void expect(const Tensor& t, int64_t numel, const char* what) const {
    TB_CHECK(t.defined() && t.device.kind == DeviceKind::cuda && t.contiguous() &&
                 t.numel() == numel,
             "cuda: {} must be a contiguous GPU tensor of {} elements (has {})", what, numel,
             t.numel());
  }

  const float* bias_of(const Tensor* bias, int K) const {
    if (!bias) return nullptr;
    expect(*bias, K, "bias");
    TB_CHECK(bias->dtype == DType::f32, "cuda: bias must be fp32, is {}", dtype_name(bias->dtype));
    return bias->ptr<float>();
  }

  void forward(const ConvGeometry& g, const Tensor& x, const Tensor& w, const Tensor* bias,
               const Tensor& y) {
    const DType t = x.dtype;
    TB_CHECK(y.dtype == t, "cuda: x is {} but y is {}", dtype_name(t), dtype_name(y.dtype));
    const float* b = bias_of(bias, g.K);
    if (pad_channels_first(t, g)) {
      const ConvGeometry gp = padded(g);
      const void* xp = padded_input(t, g, x.data);
      void* wp = grow(pad_w_, size_t(g.K) * g.R * g.S * kPaddedChannels * dtype_size(t),
                      "padded weights");
      pad_channels(t, krsc_weights(w, t, g.K, g.C, g.R, g.S), wp, int64_t(g.K) * g.R * g.S, g.C,
                   kPaddedChannels, stream());
      const ConvLaunch l = choose(
          ConvPass::fprop, t, gp, y.bytes(), [&](const ConvLaunch& c, void* ws, void* out) {
            conv_fprop(c, t, gp, xp, wp, b, out, ws, stream());
          });
      conv_fprop(l, t, gp, xp, wp, b, y.data, workspace(l.workspace), stream());
      return;
    }
    const void* wk = krsc_weights(w, t, g.K, g.C, g.R, g.S);
    const ConvLaunch l = choose(
        ConvPass::fprop, t, g, y.bytes(),
        [&](const ConvLaunch& c, void* ws, void* out) {
          conv_fprop(c, t, g, x.data, wk, b, out, ws, stream());
        });
    conv_fprop(l, t, g, x.data, wk, b, y.data, workspace(l.workspace), stream());
  }

  void backward(const ConvGeometry& g, const Tensor& x, const Tensor& w, const Tensor& dy,
                const Tensor& dx, const Tensor& dw, const Tensor* dbias, bool accumulate_dx) {
    const DType t = x.dtype;
    TB_CHECK(dy.dtype == t, "cuda: x is {} but dy is {}", dtype_name(t), dtype_name(dy.dtype));
    expect(dw, int64_t(g.K) * g.C * g.R * g.S, "dw");
    TB_CHECK(dw.dtype == DType::f32, "cuda: dw must be fp32, is {}", dtype_name(dw.dtype));
    if (dx.defined())
      TB_CHECK(dx.dtype == t, "cuda: dx is {}, x is {}", dtype_name(dx.dtype), dtype_name(t));
    // The weight gradient runs on the side stream beside the data gradient (GpuBackend::
    // fork_side): our split-K weight-gradient kernels leave SMs idle at their tails, and on
    // the H200 this made resnet18 steps 2-3% faster at batch 64 and 512. (cuDNN's kernels
    // fill the GPU: the cudnn backend ran 2.7% slower at batch 512 this way and keeps one
    // stream.) A padded layer's input is padded again (the forward's copy may have been
    // overwritten since; a few MB) and its gradient's zero channels dropped.
    const bool pad = pad_channels_first(t, g);
    const ConvGeometry gw = pad ? padded(g) : g;
    const void* xw = pad ? padded_input(t, g, x.data) : x.data;
    const size_t dw_bytes = size_t(g.K) * gw.C * g.R * g.S * sizeof(float);
    float* dww = pad ? static_cast<float*>(grow(pad_dw_, dw_bytes, "padded weight gradient"))
                     : dw.ptr<float>();
    const ConvLaunch lw = choose(
        ConvPass::wgrad, t, gw, dw_bytes, [&](const ConvLaunch& c, void* ws, void* out) {
          conv_wgrad(c, t, gw, xw, dy.data, static_cast<float*>(out), ws, stream());
        });
    // Both launches are chosen (timed, on the first call) before the streams fork.
    const void* wk = dx.defined() ? krsc_weights(w, t, g.K, g.C, g.R, g.S, /*reuse=*/true) : nullptr;
    ConvLaunch ld;
    if (dx.defined())
      // Timed as it runs: an accumulating epilogue also reads dx, and the fastest tile for
      // that is not always the plain one's.
      ld = choose(
          ConvPass::dgrad, t, g, dx.bytes(),
          [&](const ConvLaunch& c, void* ws, void* out) {
            conv_dgrad(c, t, g, dy.data, wk, out, accumulate_dx, ws, stream());
          },
          accumulate_dx);
    void* side_ws = side_workspace(lw.workspace);
    fork_side();
    conv_wgrad(lw, t, gw, xw, dy.data, dww, side_ws, side_stream());
    if (pad)
      unpad_weight_gradient(dww, dw.ptr<float>(), g.K, g.C, kPaddedChannels, g.R, g.S,
                            side_stream());
    if (dx.defined())
      conv_dgrad(ld, t, g, dy.data, wk, dx.data, accumulate_dx, workspace(ld.workspace), stream());
    join_side();
    if (dbias) {
      expect(*dbias, g.K, "dbias");
      TB_CHECK(dbias->dtype == DType::f32, "cuda: dbias must be fp32");
      const int64_t rows = int64_t(g.N) * g.P * g.Q;
      column_sum(t, dy.data, rows, g.K, dbias->ptr<float>(),
                 workspace(column_sum_workspace_bytes(rows, g.K)), stream());
    }
  }

  // A layer with fewer than 8 input channels (an image's 1 or 3) would run on the FMA engine
  // (tensor cores need C % 8 == 0): its input and weights get zero channels up to 8 instead,
  // which is several times faster for the stem of a ResNet. Its data gradient (rarely wanted:
  // the image needs none) stays on the FMA engine.
  static constexpr int kPaddedChannels = 8;
  static bool pad_channels_first(DType t, const ConvGeometry& g) {
    return (t == DType::bf16 || t == DType::f16) && g.C < kPaddedChannels && g.K % 8 == 0;
  }
  static ConvGeometry padded(ConvGeometry g) {
    g.C = kPaddedChannels;
    return g;
  }
  const void* padded_input(DType t, const ConvGeometry& g, const void* x) {
    const int64_t pixels = int64_t(g.N) * g.H * g.W;
    void* xp = grow(pad_x_, size_t(pixels) * kPaddedChannels * dtype_size(t), "padded input");
    pad_channels(t, x, xp, pixels, g.C, kPaddedChannels, stream());
    return xp;
  }
  ConvLaunch choose(ConvPass pass, DType t, const ConvGeometry& g, size_t out_bytes,
                    const ConvAutotuner::Runner& run, bool accumulate = false) {
    Stopwatch clock;
    const ConvLaunch l =
        tuner_.choose(*this, stream(), sm_count(), pass, t, g, out_bytes, run, accumulate);
    search_seconds_ += clock.seconds();
    return l;
  }

  AlgorithmSearch algorithm_search() const override {
    return {search_seconds_, tuner_.searches(), tuner_.cache().hits(), tuner_.cache().path()};
  }

  ConvAutotuner tuner_;
  double search_seconds_ = 0;
  Scratch pad_x_, pad_w_, pad_dw_;
};

}  // namespace
}  // namespace gpu

std::unique_ptr<Backend> make_cuda_backend() { return std::make_unique<gpu::CudaBackend>(); }

}  // namespace tb
