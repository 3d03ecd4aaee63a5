// Every op of the GPU backends (cuda, cudnn) against the ref backend, in fp32 (relative error
// <= 1e-4), bf16 and fp16 (<= 2e-2), over shapes with odd sizes, stride 2
// and batch 1. Inputs are rounded to the tested dtype first, so both sides compute on the
// same values. Skipped where no GPU is present.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <initializer_list>
#include <string>
#include <tuple>
#include <vector>

#include "gpu_test_util.h"
#include "test_util.h"
#include "ops/ref/ref_backend.h"
#include "ops/ref/ref_kernels.h"
#ifdef TB_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "ops/cuda/conv_kernels.h"
#endif

namespace tb {
namespace {

using namespace gputest;

struct GpuCase {
  const char* impl;
  DType dtype;
};

std::string case_name(const ::testing::TestParamInfo<GpuCase>& info) {
  return std::string(info.param.impl) + "_" + dtype_name(info.param.dtype);
}

struct ConvShape {
  int N, C, H, W, K, kernel, stride, pad;
  bool bias;
};

class GpuOps : public ::testing::TestWithParam<GpuCase> {
 protected:
  void SetUp() override {
    gpu = backend_or_null(GetParam().impl);
    if (!gpu) GTEST_SKIP() << "--impl " << GetParam().impl << " is unavailable here";
    dev = std::make_unique<DeviceData>(*gpu);
  }
  DType t() const { return GetParam().dtype; }
  double tol() const { return tolerance(t()); }
  // Random values already representable in the tested dtype.
  std::vector<float> in(int64_t n, float lo = -1.0f, float hi = 1.0f) {
    return rounded(t(), uniform(n, rng, lo, hi));
  }

  // Forward and backward of one convolution shape against ref.
  void check_conv(const ConvShape& c, bool accumulate);
#ifdef TB_HAVE_CUDA
  std::vector<int> check_conv_launches(const ConvShape& c, const char* only);
#endif
  // check_conv on each shape under each value of a cudnn route switch (cudnn only).
  void check_cudnn_routes(const char* variable, std::initializer_list<const char*> routes,
                          std::initializer_list<ConvShape> shapes);
  // Forward and backward of a few linear shapes, with and without bias, against ref.
  void check_linear();

  std::unique_ptr<Backend> gpu;
  std::unique_ptr<Backend> ref = make_ref_backend();
  std::unique_ptr<DeviceData> dev;
  Rng rng{20251121};
};

#define EXPECT_MATCH(got, want, what) \
  EXPECT_LE(rel_error(got, want), tol()) << what << " (" << GetParam().impl << ", " << dtype_name(t()) << ")"

// ---- convolution and linear -------------------------------------------------------------

const ConvShape kConvShapes[] = {
    {2, 3, 9, 7, 5, 3, 1, 1, true},      // odd sizes, 3 channels: the FMA engine
    {2, 3, 9, 7, 16, 3, 1, 1, false},    // a stem: 16-bit types pad 3 channels to 8
    {1, 8, 8, 8, 16, 3, 2, 1, false},    // batch 1, stride 2
    {3, 16, 6, 6, 8, 1, 2, 0, false},    // 1x1 stride-2 projection shortcut
    {2, 32, 10, 10, 32, 3, 1, 1, true},  // tensor cores
    {2, 1, 12, 12, 8, 5, 1, 0, true},    // simple_cnn's 5x5 on one channel
    {4, 64, 8, 8, 128, 3, 2, 1, false},  // a ResNet downsampling conv
    {2, 72, 5, 7, 24, 3, 1, 1, false},   // odd image, partial tiles everywhere
    {16, 64, 16, 16, 64, 3, 1, 1, false},  // enough rows for several tiles and splits
    // Tensor-core data gradients by output parity class (stride > 1), weight gradients
    // over many k-tiles with P*Q not a multiple of the 32-position k-tile.
    {1, 16, 9, 9, 24, 3, 2, 1, false},    // batch 1, odd image: classes of unequal size
    {2, 32, 10, 10, 16, 3, 2, 1, true},   // even image
    {2, 24, 7, 9, 16, 1, 2, 0, false},    // 1x1 shortcut, odd image: 3 of 4 classes tapless
    {1, 16, 8, 8, 32, 1, 2, 0, false},    // 1x1 shortcut, even image, batch 1
    {3, 8, 1, 3, 8, 3, 2, 1, false},      // one image row: the odd-row classes are empty
    {40, 8, 5, 9, 16, 3, 2, 1, false},    // P*Q = 15: a k-tile spans two images
    {8, 16, 15, 15, 16, 3, 1, 1, false},  // P*Q = 225, 57 weight-gradient k-tiles
    {64, 16, 4, 4, 16, 3, 1, 1, false},   // P*Q = 16, 32 k-tiles of two images each
    {2, 8, 12, 12, 8, 5, 3, 2, false},    // stride 3: 9 classes, 1 or 2 taps per axis
};

TEST_P(GpuOps, Conv2dForwardAndBackwardMatchRef) {
  int index = 0;
  for (const ConvShape& c : kConvShapes) check_conv(c, index++ % 2 == 1);
}

// cudnn runs a 1x1 stride-2 pass directly (the default) or through gathered pixels (every pass
// or the forward alone, on cuDNN or as a cuBLASLt product), whole or in chunks of images:
// every route must match.
TEST_P(GpuOps, CudnnStridedPointwiseRoutesMatchRef) {
  check_cudnn_routes("TB_CUDNN_STRIDED_1X1",
                     {"direct", "gathered", "gathered:2", "gathered-forward", "gathered-forward:2",
                      "gemm-forward", "gemm-forward:2", "auto", "auto:2"},
                     {{3, 16, 6, 6, 8, 1, 2, 0, false},
                      {2, 24, 7, 9, 16, 1, 2, 0, true},
                      {5, 8, 5, 5, 8, 1, 3, 0, false}});
}

// cudnn runs convolutions with fewer than 8 input channels as cuBLASLt products over im2col
// rows (16-bit types; the default), whole or in chunks of images, or through cuDNN: every
// route must match, strided and padded, with and without a data gradient to add to.
TEST_P(GpuOps, CudnnSmallChannelRoutesMatchRef) {
  check_cudnn_routes("TB_CUDNN_SMALL_C", {"gemm", "gemm:2", "cudnn"},
                     {{5, 3, 9, 7, 16, 3, 1, 1, true},     // a stem, odd image
                      {3, 3, 9, 9, 8, 3, 2, 1, false},     // stride 2
                      {2, 1, 12, 12, 8, 5, 1, 0, false},   // 5x5 on one channel
                      {4, 4, 6, 5, 24, 3, 1, 2, false}});  // padding beyond the kernel
}

void GpuOps::check_cudnn_routes(const char* variable, std::initializer_list<const char*> routes,
                                std::initializer_list<ConvShape> shapes) {
  if (std::string(GetParam().impl) != "cudnn") GTEST_SKIP() << "cudnn's routes only";
  for (const char* route : routes) {
    tb::testing::ScopedEnv env(variable, route);
    dev.reset();  // its buffers belong to the backend being replaced
    gpu = backend_or_null("cudnn");
    dev = std::make_unique<DeviceData>(*gpu);
    for (const ConvShape& c : shapes)
      for (bool accumulate : {false, true}) {
        SCOPED_TRACE(std::string(variable) + "=" + route + (accumulate ? " accumulate" : ""));
        check_conv(c, accumulate);
      }
  }
}

void GpuOps::check_conv(const ConvShape& c, bool accumulate) {
  const Conv2dParams p{c.N, c.C, c.H, c.W, c.K, c.kernel, c.stride, c.pad, c.bias};
  const Shape xs{p.N, p.C, p.H, p.W}, ws{p.K, p.C, p.kernel, p.kernel}, ys{p.N, p.K, p.P(), p.Q()};
  std::vector<float> x = in(p.x_numel()), w = in(p.w_numel(), -0.3f, 0.3f), b = uniform(p.K, rng);
  std::vector<float> dy = in(p.y_numel()), dx0 = in(p.x_numel());
  std::vector<float> y(p.y_numel()), dx = accumulate ? dx0 : std::vector<float>(p.x_numel());
  std::vector<float> dw(p.w_numel()), db(p.K);
  ref->conv2d_forward(p, host(x, xs), host(w, ws), c.bias ? host(b, Shape{p.K}) : Tensor(),
                      host(y, ys));
  ref->conv2d_backward(p, host(x, xs), host(w, ws), host(dy, ys), host(dx, xs), host(dw, ws),
                       c.bias ? host(db, Shape{p.K}) : Tensor(), accumulate);

  const Tensor gx = dev->upload(x, xs, t()), gw = dev->upload(w, ws, DType::f32, false);
  const Tensor gb = dev->upload(b, Shape{p.K}, DType::f32), gy = dev->empty(ys, t());
  const Tensor gdy = dev->upload(dy, ys, t()), gdx = dev->upload(dx0, xs, t());
  const Tensor gdw = dev->empty(ws, DType::f32), gdb = dev->empty(Shape{p.K}, DType::f32);
  gpu->conv2d_forward(p, gx, gw, c.bias ? gb : Tensor(), gy);
  gpu->conv2d_backward(p, gx, gw, gdy, gdx, gdw, c.bias ? gdb : Tensor(), accumulate);
  const std::string what = "conv N" + std::to_string(c.N) + " C" + std::to_string(c.C) + " K" +
                           std::to_string(c.K) + " k" + std::to_string(c.kernel) + " s" +
                           std::to_string(c.stride);
  EXPECT_MATCH(dev->download(gy), y, what + " y");
  EXPECT_MATCH(dev->download(gdx), dx, what + " dx");
  EXPECT_MATCH(dev->download(gdw, false), dw, what + " dw");
  if (c.bias) EXPECT_MATCH(dev->download(gdb), db, what + " dbias");
}

#ifdef TB_HAVE_CUDA
// Every launch the autotuner may choose (each tile and split count of each pass), called
// directly: the test above only meets the launch that won the timing on the test GPU. The
// non-accumulating data gradient writes over garbage, so every dx pixel must be written.
// Every candidate launch of the autotuner (tile, split count) for each pass of one shape
// against ref; with `only`, just the launches whose name contains it. Returns how many ran
// per pass.
std::vector<int> GpuOps::check_conv_launches(const ConvShape& c, const char* only) {
  using namespace tb::gpu;
  std::vector<int> ran(3, 0);
  int sm_count = 0;
  EXPECT_EQ(cudaDeviceGetAttribute(&sm_count, cudaDevAttrMultiProcessorCount, 0), cudaSuccess);
  const Conv2dParams p{c.N, c.C, c.H, c.W, c.K, c.kernel, c.stride, c.pad, false};
  const ConvGeometry g{c.N, c.C, c.H, c.W, c.K, c.kernel, c.kernel, c.stride, c.pad, p.P(), p.Q()};
  const Shape xs{p.N, p.C, p.H, p.W}, ws{p.K, p.C, p.kernel, p.kernel};
  const Shape ys{p.N, p.K, p.P(), p.Q()};
  std::vector<float> x = in(p.x_numel()), w = in(p.w_numel(), -0.3f, 0.3f);
  std::vector<float> dy = in(p.y_numel()), dx0 = in(p.x_numel());
  std::vector<float> y(p.y_numel()), dx(p.x_numel()), dx_acc = dx0, dw(p.w_numel());
  ref->conv2d_forward(p, host(x, xs), host(w, ws), Tensor(), host(y, ys));
  ref->conv2d_backward(p, host(x, xs), host(w, ws), host(dy, ys), host(dx, xs), host(dw, ws),
                       Tensor(), false);
  ref->conv2d_backward(p, host(x, xs), host(w, ws), host(dy, ys), host(dx_acc, xs), host(dw, ws),
                       Tensor(), true);

  const Tensor gx = dev->upload(x, xs, t()), gw = dev->upload(w, ws, DType::f32, false);
  const Tensor gdy = dev->upload(dy, ys, t()), gwk = dev->empty(ws, t());
  gpu->synchronize();
  weights_to_krsc(t(), gw.ptr<float>(), gwk.data, p.K, p.C, p.kernel, p.kernel, 0);
  const std::string shape = "conv N" + std::to_string(c.N) + " C" + std::to_string(c.C) + " " +
                            std::to_string(c.H) + "x" + std::to_string(c.W) + " K" +
                            std::to_string(c.K) + " k" + std::to_string(c.kernel) + " s" +
                            std::to_string(c.stride);
  for (ConvPass pass : {ConvPass::fprop, ConvPass::dgrad, ConvPass::wgrad}) {
    ConvLaunch launches[kMaxConvCandidates];
    const int count = conv_candidates(pass, t(), g, sm_count, launches, kMaxConvCandidates);
    EXPECT_GT(count, 0) << shape;
    for (int i = 0; i < count; ++i) {
      const ConvLaunch& l = launches[i];
      if (only && conv_launch_name(l).find(only) == std::string::npos) continue;
      ++ran[int(pass)];
      const std::string what = shape + " pass " + std::to_string(int(pass)) + " " +
                               conv_launch_name(l) + (l.tensor_cores ? " mma" : " fma");
      void* ws_ptr = l.workspace ? gpu->allocate(l.workspace) : nullptr;
      if (pass == ConvPass::fprop) {
        const Tensor gy = dev->empty(ys, t());
        gpu->synchronize();
        conv_fprop(l, t(), g, gx.data, gwk.data, nullptr, gy.data, ws_ptr, 0);
        EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess) << what;
        EXPECT_MATCH(dev->download(gy), y, what + " y");
      } else if (pass == ConvPass::dgrad) {
        for (bool accumulate : {false, true}) {
          const Tensor gdx = dev->upload(dx0, xs, t());
          gpu->synchronize();
          conv_dgrad(l, t(), g, gdy.data, gwk.data, gdx.data, accumulate, ws_ptr, 0);
          EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess) << what;
          EXPECT_MATCH(dev->download(gdx), accumulate ? dx_acc : dx,
                       what + (accumulate ? " dx (accumulate)" : " dx"));
        }
      } else {
        const Tensor gdw = dev->empty(ws, DType::f32);
        gpu->synchronize();
        conv_wgrad(l, t(), g, gx.data, gdy.data, gdw.ptr<float>(), ws_ptr, 0);
        EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess) << what;
        EXPECT_MATCH(dev->download(gdw, false), dw, what + " dw");
      }
      if (ws_ptr) gpu->release(ws_ptr);
    }
  }
  return ran;
}

TEST_P(GpuOps, ConvEveryCandidateLaunchMatchesRef) {
  if (std::string(GetParam().impl) != "cuda") GTEST_SKIP() << "our kernels only";
  for (const ConvShape& c : kConvShapes) {
    check_conv_launches(c, nullptr);
    if (HasFatalFailure()) return;
  }
}

// The 3x3 halo kernels (conv_wgmma_halo.cu, Hopper only) on the shapes they take: more tiles
// than SMs (each block walks several, through both halo buffers; the weight gradient then
// adds one partial per block), an image height that is not a multiple of the 4-row tiles,
// two blocks of 64 output channels (K = 128 forward, C = 128 data gradient).
TEST_P(GpuOps, ConvHaloKernelMatchesRef) {
  if (std::string(GetParam().impl) != "cuda" || t() == DType::f32)
    GTEST_SKIP() << "our 16-bit kernels only";
  if (!tb::gpu::wgmma_available()) GTEST_SKIP() << "no wgmma on this GPU";
  // Two launches each: the shifted copies loaded from L2, or built in shared memory.
  const std::vector<int> many = check_conv_launches({24, 64, 30, 32, 64, 3, 1, 1, false}, "halo");
  EXPECT_EQ(many[0], 2);
  EXPECT_EQ(many[1], 2);
  EXPECT_EQ(many[2], 2);
  EXPECT_EQ(check_conv_launches({3, 64, 10, 32, 128, 3, 1, 1, false}, "halo")[0], 2);
  EXPECT_EQ(check_conv_launches({2, 128, 7, 32, 64, 3, 1, 1, false}, "halo")[1], 2);
}

// The weight layout conversions (fp32 K,C,R,S <-> K,R,S,C in the tested dtype) put every
// element in its place: one tensor at a time, many through one segment table, and back.
// The shapes take one and several blocks per filter (channels beyond a block's tile), 1x1
// filters, and a filter whose taps overflow the tile (handled element by element).
TEST_P(GpuOps, WeightLayoutConversionsPutEveryElementInPlace) {
  if (std::string(GetParam().impl) != "cuda") GTEST_SKIP() << "shared kernels: run once";
  using namespace tb::gpu;
  // 16-byte vector paths where C and each block's channels are multiples of the vector
  // (64 and 512 channels of 3x3: one block per filter, or 448 + 64 channels), scalar ones
  // elsewhere.
  const Shape shapes[] = {{5, 3, 3, 3},    {7, 600, 3, 3}, {3, 4500, 1, 1}, {2, 3, 65, 65},
                          {10, 512, 1, 1}, {4, 9, 7, 7},   {6, 64, 3, 3},   {3, 512, 3, 3}};
  std::vector<KrscSegment> table;
  std::vector<Tensor> batched;
  std::vector<std::vector<float>> masters;
  int64_t blocks = 0;
  for (const Shape& s : shapes) {
    const int K = int(s[0]), C = int(s[1]), R = int(s[2]), S = int(s[3]);
    const std::string what = "K" + std::to_string(K) + " C" + std::to_string(C) + " " +
                             std::to_string(R) + "x" + std::to_string(S);
    masters.push_back(in(s.numel()));  // representable in t(): conversions are exact
    const Tensor w = dev->upload(masters.back(), s, DType::f32, false);
    const Tensor one = dev->empty(s, t()), back = dev->empty(s, DType::f32);
    batched.push_back(dev->empty(s, t()));
    gpu->synchronize();
    weights_to_krsc(t(), w.ptr<float>(), one.data, K, C, R, S, 0);
    weights_from_krsc(t(), one.data, back.ptr<float>(), K, C, R, S, 0);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess) << what;
    EXPECT_EQ(dev->download(one), masters.back()) << what << " to K,R,S,C";  // read as KRSC
    EXPECT_EQ(dev->download(back, false), masters.back()) << what << " back to K,C,R,S";
    table.push_back({w.ptr<float>(), batched.back().data, K, C, R, S, blocks});
    blocks += krsc_blocks(K, C, R, S);
  }
  const Tensor gtable = dev->empty(Shape{int64_t(table.size() * sizeof(KrscSegment))}, DType::u8);
  gpu->copy_from_host(gtable.data, table.data(), table.size() * sizeof(KrscSegment));
  gpu->synchronize();
  weights_to_krsc(t(), static_cast<const KrscSegment*>(gtable.data), int(table.size()), blocks, 0);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  for (size_t i = 0; i < table.size(); ++i)
    EXPECT_EQ(dev->download(batched[i]), masters[i]) << "segment " << i;
  // And the whole table back (deferred filter gradients): into fresh fp32 tensors.
  std::vector<Tensor> returned;
  for (size_t i = 0; i < table.size(); ++i) {
    returned.push_back(dev->empty(shapes[i], DType::f32));
    table[i].kcrs = returned.back().ptr<float>();
  }
  gpu->copy_from_host(gtable.data, table.data(), table.size() * sizeof(KrscSegment));
  weights_from_krsc(t(), static_cast<const KrscSegment*>(gtable.data), int(table.size()), blocks,
                    0);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  for (size_t i = 0; i < table.size(); ++i)
    EXPECT_EQ(dev->download(returned[i], false), masters[i]) << "segment " << i << " back";
}
#endif

// On cudnn, biases ride in cuBLASLt's epilogues (the default) or run as separate kernels.
TEST_P(GpuOps, LinearForwardAndBackwardMatchRef) {
  const bool cudnn = std::string(GetParam().impl) == "cudnn";
  for (const char* epilogue : {"fused", "separate"}) {
    if (!cudnn && std::string(epilogue) == "separate") continue;
    tb::testing::ScopedEnv env("TB_CUBLASLT_EPILOGUE", epilogue);
    SCOPED_TRACE(std::string("TB_CUBLASLT_EPILOGUE=") + epilogue);
    dev.reset();  // its buffers belong to the backend being replaced
    gpu = backend_or_null(GetParam().impl);
    dev = std::make_unique<DeviceData>(*gpu);
    check_linear();
  }
}

void GpuOps::check_linear() {
  struct Case {
    int N, in, out;
    bool bias, accumulate;
  };
  for (const Case c : {Case{5, 37, 10, true, false}, Case{64, 512, 128, true, true},
                       Case{1, 16, 8, false, false}, Case{33, 6272, 512, true, false}}) {
    const LinearParams p{c.N, c.in, c.out, c.bias};
    std::vector<float> x = in(int64_t(c.N) * c.in), w = in(int64_t(c.out) * c.in, -0.1f, 0.1f);
    std::vector<float> b = uniform(c.out, rng), dy = in(int64_t(c.N) * c.out);
    std::vector<float> dx0 = in(int64_t(c.N) * c.in), y(size_t(c.N) * c.out);
    std::vector<float> dx = c.accumulate ? dx0 : std::vector<float>(dx0.size());
    std::vector<float> dw(w.size()), db(size_t(c.out));
    const Shape xs{c.N, c.in}, ws{c.out, c.in}, ys{c.N, c.out}, bs{c.out};
    ref->linear_forward(p, host(x, xs), host(w, ws), c.bias ? host(b, bs) : Tensor(), host(y, ys));
    ref->linear_backward(p, host(x, xs), host(w, ws), host(dy, ys), host(dx, xs), host(dw, ws),
                         c.bias ? host(db, bs) : Tensor(), c.accumulate);
    const Tensor gx = dev->upload(x, xs, t()), gw = dev->upload(w, ws, DType::f32);
    const Tensor gb = dev->upload(b, bs, DType::f32), gy = dev->empty(ys, t());
    const Tensor gdy = dev->upload(dy, ys, t()), gdx = dev->upload(dx0, xs, t());
    const Tensor gdw = dev->empty(ws, DType::f32), gdb = dev->empty(bs, DType::f32);
    gpu->linear_forward(p, gx, gw, c.bias ? gb : Tensor(), gy);
    gpu->linear_backward(p, gx, gw, gdy, gdx, gdw, c.bias ? gdb : Tensor(), c.accumulate);
    const std::string what = "linear " + std::to_string(c.in) + "->" + std::to_string(c.out);
    EXPECT_MATCH(dev->download(gy), y, what + " y");
    EXPECT_MATCH(dev->download(gdx), dx, what + " dx");
    EXPECT_MATCH(dev->download(gdw), dw, what + " dw");
    if (c.bias) EXPECT_MATCH(dev->download(gdb), db, what + " dbias");
  }
}

// ---- elementwise ------------------------------------------------------------------------

TEST_P(GpuOps, ReluAddAndCopyMatchRef) {
  const Shape s{2, 3, 5, 7};
  const int64_t n = s.numel();
  std::vector<float> x = in(n), b = in(n), dy = in(n), dx0 = in(n);
  std::vector<float> y(n), sum(n), dx = dx0;
  ref->relu_forward(host(x, s), host(y, s));
  ref->relu_backward(host(y, s), host(dy, s), host(dx, s), true);
  ref->add_forward(host(x, s), host(b, s), host(sum, s));
  const Tensor gx = dev->upload(x, s, t()), gb = dev->upload(b, s, t()), gy = dev->empty(s, t());
  const Tensor gdy = dev->upload(dy, s, t()), gdx = dev->upload(dx0, s, t());
  const Tensor gsum = dev->empty(s, t());
  gpu->relu_forward(gx, gy);
  gpu->relu_backward(gy, gdy, gdx, true);
  gpu->add_forward(gx, gb, gsum);
  EXPECT_MATCH(dev->download(gy), y, "relu y");
  EXPECT_MATCH(dev->download(gdx), dx, "relu dx");
  EXPECT_MATCH(dev->download(gsum), sum, "add");

  // Flatten: channels-last 4-D to the C,H,W feature order, and back with accumulation.
  const Shape flat{2, 105};
  std::vector<float> f(n), back = dx0;
  ref->copy(host(x, s), host(f, flat), false);
  ref->copy(host(f, flat), host(back, s), true);
  const Tensor gf = dev->empty(flat, t()), gback = dev->upload(dx0, s, t());
  gpu->copy(gx, gf, false);
  gpu->copy(gf, gback, true);
  EXPECT_MATCH(dev->download(gf), f, "flatten");
  EXPECT_MATCH(dev->download(gback), back, "unflatten (accumulate)");

  // More than one 32 x 32 tile each way (40 channels, 35 pixels), written back without adding.
  const Shape big{3, 40, 7, 5}, big_flat{3, 1400};
  std::vector<float> bx = in(big.numel()), bf(size_t(big.numel())), bback(size_t(big.numel()));
  ref->copy(host(bx, big), host(bf, big_flat), false);
  ref->copy(host(bf, big_flat), host(bback, big), false);
  const Tensor gbx = dev->upload(bx, big, t()), gbf = dev->empty(big_flat, t());
  const Tensor gbback = dev->empty(big, t());
  gpu->copy(gbx, gbf, false);
  gpu->copy(gbf, gbback, false);
  EXPECT_MATCH(dev->download(gbf), bf, "flatten, several tiles");
  EXPECT_MATCH(dev->download(gbback), bback, "unflatten, several tiles");
}

TEST_P(GpuOps, DropoutDrawsTheRefMask) {
  for (const Shape s : {Shape{2, 6, 5, 5}, Shape{8, 50}}) {
    const int64_t n = s.numel();
    const DropoutParams p{n, 0.3f, 99, (uint64_t(17) << 16) ^ 4};
    std::vector<float> x = in(n), dy = in(n), y(n), dx(n);
    std::vector<uint8_t> mask(static_cast<size_t>(n));
    ref->dropout_forward(p, host(x, s), host(y, s), Tensor(mask.data(), DType::u8, s));
    ref->dropout_backward(p, host(dy, s), Tensor(mask.data(), DType::u8, s), host(dx, s), false);
    const Tensor gx = dev->upload(x, s, t()), gy = dev->empty(s, t()), gm = dev->empty(s, DType::u8);
    const Tensor gdy = dev->upload(dy, s, t()), gdx = dev->empty(s, t());
    gpu->dropout_forward(p, gx, gy, gm);
    gpu->dropout_backward(p, gdy, gm, gdx, false);
    std::vector<uint8_t> m = dev->download_u8(gm);
    std::vector<float> mf(m.begin(), m.end());
    if (s.rank == 4) mf = to_nchw(mf, s[0], s[1], s[2], s[3]);
    EXPECT_EQ(mf, std::vector<float>(mask.begin(), mask.end())) << "dropout mask";
    EXPECT_MATCH(dev->download(gy), y, "dropout y");
    EXPECT_MATCH(dev->download(gdx), dx, "dropout dx");
  }
}

// ---- pooling ----------------------------------------------------------------------------

TEST_P(GpuOps, PoolingMatchesRef) {
  struct Case {
    bool max;
    Pool2dParams p;
  };
  // Windows that tile the image with whole 16-byte vectors of channels take the GPU's tiled
  // kernels (C = 16 or 8, 2x2 on even images); the rest the general ones. Each max case runs
  // adding into dx and writing it, on random values and on values with many ties (the winner
  // is the first maximum).
  const Case cases[] = {{true, {2, 5, 7, 9, 2, 2, 0}},  {true, {1, 16, 8, 8, 3, 2, 1}},
                        {true, {2, 16, 8, 6, 2, 2, 0}}, {true, {3, 8, 4, 4, 2, 2, 0}},
                        {true, {2, 16, 9, 6, 3, 3, 0}}, {true, {2, 24, 7, 6, 2, 2, 0}},
                        {false, {2, 4, 6, 6, 2, 2, 0}}, {false, {3, 8, 7, 5, 3, 1, 1}}};
  for (const Case& c : cases)
    for (const bool accumulate : {true, false})
      for (const bool ties : {false, true}) {
        if (!c.max && (ties || !accumulate)) continue;
        const Pool2dParams& p = c.p;
        const Shape xs{p.N, p.C, p.H, p.W}, ys{p.N, p.C, p.P(), p.Q()};
        std::vector<float> x = in(p.x_numel()), dy = in(p.y_numel()), dx0 = in(p.x_numel());
        if (ties)
          for (float& v : x) v = std::round(v * 2.0f);  // -2 .. 2
        std::vector<float> y(p.y_numel()), dx = accumulate ? dx0 : std::vector<float>(dx0.size());
        const Tensor gx = dev->upload(x, xs, t()), gy = dev->empty(ys, t());
        const Tensor gdy = dev->upload(dy, ys, t()), gdx = dev->upload(dx0, xs, t());
        if (c.max) {
          ref->max_pool2d_forward(p, host(x, xs), host(y, ys));
          ref->max_pool2d_backward(p, host(x, xs), host(y, ys), host(dy, ys), host(dx, xs),
                                   accumulate);
          gpu->max_pool2d_forward(p, gx, gy);
          gpu->max_pool2d_backward(p, gx, gy, gdy, gdx, accumulate);
        } else {
          ref->avg_pool2d_forward(p, host(x, xs), host(y, ys));
          ref->avg_pool2d_backward(p, host(dy, ys), host(dx, xs), true);
          gpu->avg_pool2d_forward(p, gx, gy);
          gpu->avg_pool2d_backward(p, gdy, gdx, true);
        }
        const std::string what = std::string(c.max ? "max" : "avg") + " pool " +
                                 std::to_string(p.kernel) + "/" + std::to_string(p.stride) +
                                 " C=" + std::to_string(p.C) + (ties ? " ties" : "") +
                                 (accumulate ? " accumulate" : "");
        EXPECT_MATCH(dev->download(gy), y, what + " y");
        EXPECT_MATCH(dev->download(gdx), dx, what + " dx");
      }
  const GlobalPoolParams g{3, 16, 5, 5};
  const Shape xs{3, 16, 5, 5}, ys{3, 16};
  std::vector<float> x = in(xs.numel()), dy = in(ys.numel()), y(ys.numel()), dx(xs.numel());
  ref->global_avg_pool_forward(g, host(x, xs), host(y, ys));
  ref->global_avg_pool_backward(g, host(dy, ys), host(dx, xs), false);
  const Tensor gx = dev->upload(x, xs, t()), gy = dev->empty(ys, t());
  const Tensor gdy = dev->upload(dy, ys, t()), gdx = dev->empty(xs, t());
  gpu->global_avg_pool_forward(g, gx, gy);
  gpu->global_avg_pool_backward(g, gdy, gdx, false);
  EXPECT_MATCH(dev->download(gy), y, "global avg pool y");
  EXPECT_MATCH(dev->download(gdx), dx, "global avg pool dx");
}

// ---- batch norm -------------------------------------------------------------------------

TEST_P(GpuOps, BatchNormMatchesRef) {
  // The last two have many partial sums (1,024 chunks) for the finish to add: 64 channels
  // vectorised, 100 channels not (16-bit types).
  for (const Shape s : {Shape{4, 12, 5, 3}, Shape{2, 64, 8, 8}, Shape{16, 40},
                        Shape{9, 64, 128, 128}, Shape{4, 100, 128, 128}}) {
    BatchNormParams p;
    p.N = int(s[0]);
    p.C = int(s[1]);
    p.spatial = s.rank == 4 ? int(s[2] * s[3]) : 1;
    const Shape cs{p.C};
    // An offset mean, so the variance must not cancel.
    std::vector<float> x = in(s.numel(), 2.0f, 4.0f), dy = in(s.numel()), dx0 = in(s.numel());
    std::vector<float> gamma = uniform(p.C, rng, 0.5f, 1.5f), beta = uniform(p.C, rng);
    std::vector<float> rm = uniform(p.C, rng), rv = uniform(p.C, rng, 0.5f, 2.0f);
    std::vector<float> y(s.numel()), ye(s.numel()), sm(p.C), si(p.C), dx = dx0, dg(p.C), dbt(p.C);
    std::vector<float> rm_ref = rm, rv_ref = rv;
    ref->batch_norm_forward_train(p, host(x, s), host(gamma, cs), host(beta, cs), host(y, s),
                                  host(rm_ref, cs), host(rv_ref, cs), host(sm, cs), host(si, cs));
    ref->batch_norm_forward_eval(p, host(x, s), host(gamma, cs), host(beta, cs), host(rm_ref, cs),
                                 host(rv_ref, cs), host(ye, s));
    ref->batch_norm_backward(p, host(x, s), host(gamma, cs), host(sm, cs), host(si, cs),
                             host(dy, s), host(dx, s), host(dg, cs), host(dbt, cs), true);

    const Tensor gx = dev->upload(x, s, t()), gy = dev->empty(s, t()), gye = dev->empty(s, t());
    const Tensor gg = dev->upload(gamma, cs, DType::f32), gb = dev->upload(beta, cs, DType::f32);
    const Tensor grm = dev->upload(rm, cs, DType::f32), grv = dev->upload(rv, cs, DType::f32);
    const Tensor gsm = dev->empty(cs, DType::f32), gsi = dev->empty(cs, DType::f32);
    const Tensor gdy = dev->upload(dy, s, t()), gdx = dev->upload(dx0, s, t());
    const Tensor gdg = dev->empty(cs, DType::f32), gdb = dev->empty(cs, DType::f32);
    gpu->batch_norm_forward_train(p, gx, gg, gb, gy, grm, grv, gsm, gsi);
    gpu->batch_norm_forward_eval(p, gx, gg, gb, grm, grv, gye);
    gpu->batch_norm_backward(p, gx, gg, gsm, gsi, gdy, gdx, gdg, gdb, true);
    const std::string what = "batch norm " + s.to_string();
    EXPECT_MATCH(dev->download(gy), y, what + " y");
    EXPECT_MATCH(dev->download(gye), ye, what + " eval y");
    EXPECT_MATCH(dev->download(gsm), sm, what + " mean");
    EXPECT_MATCH(dev->download(gsi), si, what + " invstd");
    EXPECT_MATCH(dev->download(grm), rm_ref, what + " running mean");
    EXPECT_MATCH(dev->download(grv), rv_ref, what + " running var");
    EXPECT_MATCH(dev->download(gdx), dx, what + " dx");
    EXPECT_MATCH(dev->download(gdg), dg, what + " dgamma");
    EXPECT_MATCH(dev->download(gdb), dbt, what + " dbeta");
  }
}

// ---- batch norm fused with ReLU (and residual add) --------------------------------------

BatchNormParams bn_params(const Shape& s) {
  BatchNormParams p;
  p.N = int(s[0]);
  p.C = int(s[1]);
  p.spatial = s.rank == 4 ? int(s[2] * s[3]) : 1;
  return p;
}

// The fused ops against ref's (which runs the separate ops): odd channel counts (scalar
// path), a vectorised 2-D shape and a 1-D one, each plain and with a residual, with and
// without accumulation into dx and the residual's gradient.
TEST_P(GpuOps, BatchNormReluMatchesRef) {
  int index = 0;
  for (const Shape s : {Shape{4, 12, 5, 3}, Shape{2, 64, 8, 8}, Shape{16, 40}, Shape{3, 24, 7, 5}})
    for (bool residual : {false, true}) {
      const bool accumulate = index++ % 2 == 1;
      const BatchNormParams p = bn_params(s);
      const Shape cs{p.C};
      const int64_t n = s.numel();
      // Mean near zero, so about half the outputs are cut by the ReLU.
      std::vector<float> x = in(n, -1.0f, 1.2f), r = in(n), dy = in(n), dx0 = in(n), dr0 = in(n);
      std::vector<float> gamma = uniform(p.C, rng, 0.5f, 1.5f), beta = uniform(p.C, rng, -0.3f, 0.3f);
      std::vector<float> rm = uniform(p.C, rng), rv = uniform(p.C, rng, 0.5f, 2.0f);
      std::vector<float> y(n), ye(n), sm(p.C), si(p.C), dx = dx0, dr = dr0, dg(p.C), dbt(p.C);
      std::vector<float> rm_ref = rm, rv_ref = rv, dy_scratch = dy;
      const Tensor hr = residual ? host(r, s) : Tensor{};
      ref->batch_norm_relu_forward_train(p, host(x, s), host(gamma, cs), host(beta, cs), hr,
                                         host(y, s), host(rm_ref, cs), host(rv_ref, cs),
                                         host(sm, cs), host(si, cs));
      ref->batch_norm_relu_forward_eval(p, host(x, s), host(gamma, cs), host(beta, cs), hr,
                                        host(rm_ref, cs), host(rv_ref, cs), host(ye, s));
      const Tensor gx = dev->upload(x, s, t()), gy = dev->empty(s, t()), gye = dev->empty(s, t());
      const Tensor gr = residual ? dev->upload(r, s, t()) : Tensor{};
      const Tensor gg = dev->upload(gamma, cs, DType::f32), gb = dev->upload(beta, cs, DType::f32);
      const Tensor grm = dev->upload(rm, cs, DType::f32), grv = dev->upload(rv, cs, DType::f32);
      const Tensor gsm = dev->empty(cs, DType::f32), gsi = dev->empty(cs, DType::f32);
      const Tensor gdy = dev->upload(dy, s, t()), gdx = dev->upload(dx0, s, t());
      const Tensor gdr = residual ? dev->upload(dr0, s, t()) : Tensor{};
      const Tensor gdg = dev->empty(cs, DType::f32), gdb = dev->empty(cs, DType::f32);
      gpu->batch_norm_relu_forward_train(p, gx, gg, gb, gr, gy, grm, grv, gsm, gsi);
      gpu->batch_norm_relu_forward_eval(p, gx, gg, gb, gr, grm, grv, gye);
      // Both sides take their ReLU mask from the GPU's own y (which a backward without a
      // residual rebuilds from x instead of reading), so an output that lands on the other
      // side of zero in ref's arithmetic cannot flip one mask bit.
      std::vector<float> mask_ref = dev->download(gy);
      ref->batch_norm_relu_backward(p, host(x, s), host(gamma, cs), host(beta, cs), host(sm, cs),
                                    host(si, cs), host(mask_ref, s), host(dy_scratch, s),
                                    host(dx, s), host(dg, cs), host(dbt, cs),
                                    residual ? host(dr, s) : Tensor{}, accumulate, accumulate);
      gpu->batch_norm_relu_backward(p, gx, gg, gb, gsm, gsi, gy, gdy, gdx, gdg, gdb, gdr,
                                    accumulate, accumulate);
      const std::string what = "batch norm relu " + s.to_string() + (residual ? " + residual" : "") +
                               (accumulate ? " accumulating" : "");
      EXPECT_MATCH(dev->download(gy), y, what + " y");
      EXPECT_MATCH(dev->download(gye), ye, what + " eval y");
      EXPECT_MATCH(dev->download(gsm), sm, what + " mean");
      EXPECT_MATCH(dev->download(gsi), si, what + " invstd");
      EXPECT_MATCH(dev->download(grm), rm_ref, what + " running mean");
      EXPECT_MATCH(dev->download(grv), rv_ref, what + " running var");
      EXPECT_MATCH(dev->download(gdx), dx, what + " dx");
      EXPECT_MATCH(dev->download(gdg), dg, what + " dgamma");
      EXPECT_MATCH(dev->download(gdb), dbt, what + " dbeta");
      if (residual) EXPECT_MATCH(dev->download(gdr), dr, what + " dresidual");
      // The fused backward leaves dy as it was (only the composed default uses it as scratch).
      EXPECT_EQ(dev->download(gdy), rounded(t(), dy)) << what << " dy was modified";
    }
}

// Our fused kernels store what our separate kernels store, bit for bit: the same
// reductions, and intermediate values rounded to the activation type between steps. The
// cudnn backend runs cuDNN's batch norm (unless TB_CUDNN_BATCH_NORM=ours), whose fused
// kernels add the residual before rounding: there the two agree within the dtype's tolerance.
TEST_P(GpuOps, BatchNormReluEqualsTheSeparateGpuOpsBitForBit) {
  const char* library_bn = std::getenv("TB_CUDNN_BATCH_NORM");
  const bool exact = std::string(GetParam().impl) == "cuda" ||
                     (library_bn && std::string(library_bn) == "ours");
  for (const Shape s : {Shape{4, 12, 5, 3}, Shape{2, 64, 8, 8}, Shape{16, 40}})
    for (bool residual : {false, true}) {
      const BatchNormParams p = bn_params(s);
      const Shape cs{p.C};
      const int64_t n = s.numel();
      std::vector<float> x = in(n, -1.0f, 1.2f), r = in(n), dy = in(n), dr0 = in(n);
      std::vector<float> gamma = uniform(p.C, rng, 0.5f, 1.5f), beta = uniform(p.C, rng, -0.3f, 0.3f);
      std::vector<float> rm = uniform(p.C, rng), rv = uniform(p.C, rng, 0.5f, 2.0f);
      const Tensor gx = dev->upload(x, s, t()), gr = dev->upload(r, s, t());
      const Tensor gg = dev->upload(gamma, cs, DType::f32), gb = dev->upload(beta, cs, DType::f32);
      const Tensor gdy = dev->upload(dy, s, t());
      struct Out {
        Tensor y, rm, rv, sm, si, dx, dr, dg, db;
      };
      auto outputs = [&]() {
        return Out{dev->empty(s, t()), dev->upload(rm, cs, DType::f32), dev->upload(rv, cs, DType::f32),
                   dev->empty(cs, DType::f32), dev->empty(cs, DType::f32), dev->empty(s, t()),
                   dev->upload(dr0, s, t()), dev->empty(cs, DType::f32), dev->empty(cs, DType::f32)};
      };
      const Out fused = outputs(), plain = outputs();
      gpu->batch_norm_relu_forward_train(p, gx, gg, gb, residual ? gr : Tensor{}, fused.y, fused.rm,
                                         fused.rv, fused.sm, fused.si);
      gpu->batch_norm_relu_backward(p, gx, gg, gb, fused.sm, fused.si, fused.y, gdy, fused.dx,
                                    fused.dg, fused.db, residual ? fused.dr : Tensor{}, false,
                                    true);
      // The unfused graph: batch norm, add, ReLU; ReLU backward, add backward, BN backward.
      const Tensor bn_out = dev->empty(s, t()), sum = dev->empty(s, t()), g = dev->empty(s, t());
      gpu->batch_norm_forward_train(p, gx, gg, gb, bn_out, plain.rm, plain.rv, plain.sm, plain.si);
      if (residual) gpu->add_forward(bn_out, gr, sum);
      gpu->relu_forward(residual ? sum : bn_out, plain.y);
      // With cuDNN's batch norm the two ys may differ in the last bit, and an output near zero
      // may land on either side of it: both backward passes take the fused op's mask then.
      gpu->relu_backward(exact ? plain.y : fused.y, gdy, g, false);
      if (residual) gpu->copy(g, plain.dr, true);
      gpu->batch_norm_backward(p, gx, gg, plain.sm, plain.si, g, plain.dx, plain.dg, plain.db, false);
      const std::string what = s.to_string() + (residual ? " + residual" : "");
      using Pair = std::tuple<Tensor, Tensor, const char*>;
      const Pair pairs[] = {{fused.y, plain.y, "y"},           {fused.rm, plain.rm, "running mean"},
                            {fused.rv, plain.rv, "running var"}, {fused.sm, plain.sm, "mean"},
                            {fused.si, plain.si, "invstd"},      {fused.dx, plain.dx, "dx"},
                            {fused.dg, plain.dg, "dgamma"},      {fused.db, plain.db, "dbeta"},
                            {fused.dr, plain.dr, "dresidual"}};
      for (const auto& [a, b, name] : pairs) {
        if (exact)
          EXPECT_EQ(dev->download(a), dev->download(b)) << what << " " << name;
        else
          EXPECT_MATCH(dev->download(a), dev->download(b), what + " " + name);
      }
    }
}

// ---- loss and optimizers ----------------------------------------------------------------

TEST_P(GpuOps, CrossEntropyMatchesRef) {
  const CrossEntropyParams p{7, 10, 0.1f};
  const Shape ls{7, 10}, ns{7};
  std::vector<float> logits = in(70, -3.0f, 3.0f), probs(70), losses(7), dl(70);
  std::vector<int32_t> labels{0, 9, 3, 3, 7, 1, 5};
  Tensor hl(labels.data(), DType::i32, ns);
  ref->cross_entropy_forward(p, host(logits, ls), hl, host(probs, ls), host(losses, ns));
  ref->cross_entropy_backward(p, host(probs, ls), hl, host(dl, ls));
  const Tensor gl = dev->upload(logits, ls, t()), glab = dev->upload_i32(labels);
  const Tensor gp = dev->empty(ls, DType::f32), gloss = dev->empty(ns, DType::f32);
  const Tensor gdl = dev->empty(ls, t());
  gpu->cross_entropy_forward(p, gl, glab, gp, gloss);
  gpu->cross_entropy_backward(p, gp, glab, gdl);
  EXPECT_MATCH(dev->download(gp), probs, "softmax");
  EXPECT_MATCH(dev->download(gloss), losses, "losses");
  EXPECT_MATCH(dev->download(gdl), dl, "dlogits");
}

TEST_P(GpuOps, OptimizerUpdatesMatchRef) {
  if (t() != DType::f32) GTEST_SKIP() << "updates run on the fp32 master weights only";
  for (int variant = 0; variant < 4; ++variant) {
    const int64_t n = 1000 + variant;  // 16-byte steps, then a tail of 0 to 3 elements
    const Shape s{n};
    std::vector<float> w = uniform(n, rng), a(n), b(n);
    const Tensor gw = dev->upload(w, s, DType::f32), ga = dev->empty(s, DType::f32);
    const Tensor gbuf = dev->empty(s, DType::f32);
    for (int step = 1; step <= 3; ++step) {
      std::vector<float> g = uniform(n, rng);
      const Tensor gg = dev->upload(g, s, DType::f32);
      if (variant < 2) {
        const SgdUpdateParams p{n, 0.1f, 0.9f, variant ? 5e-4f : 0.0f, variant == 1};
        ref->sgd_update(p, host(w, s), host(g, s), host(a, s));
        gpu->sgd_update(p, gw, gg, ga);
      } else {
        AdamUpdateParams p;
        p.n = n;
        p.weight_decay = 0.01f;
        p.decoupled_weight_decay = variant == 3;
        p.step = step;
        ref->adam_update(p, host(w, s), host(g, s), host(a, s), host(b, s));
        gpu->adam_update(p, gw, gg, ga, gbuf);
      }
    }
    EXPECT_MATCH(dev->download(gw), w, "optimizer variant " + std::to_string(variant));
  }
}

// One launch over several spans (a planned graph's gradient blocks; more than fit in one
// launch's table, of sizes with and without a tail, one misaligned) gives the bits of one
// update per span.
TEST_P(GpuOps, SgdUpdateSpansMatchOneUpdateEach) {
  if (t() != DType::f32) GTEST_SKIP() << "updates run on the fp32 master weights only";
  const SgdUpdateParams p{0, 0.1f, 0.9f, 5e-4f, true};
  std::vector<Backend::SgdSpan> spans, singles;
  for (int i = 0; i < 19; ++i) {
    const int64_t n = 1 + 977 * i + (i % 4);
    const Shape s{n};
    const std::vector<float> w = uniform(n, rng), g = uniform(n, rng), m = uniform(n, rng);
    for (auto* list : {&spans, &singles})
      list->push_back({dev->upload(w, s, DType::f32), dev->upload(g, s, DType::f32),
                       dev->upload(m, s, DType::f32)});
  }
  // A span that starts 4 bytes into its allocation takes the scalar path.
  const std::vector<float> w = uniform(65, rng), g = uniform(65, rng), m = uniform(65, rng);
  for (auto* list : {&spans, &singles}) {
    auto offset = [](const Tensor& x) {
      return Tensor(static_cast<float*>(x.data) + 1, DType::f32, Shape{64}, x.device);
    };
    const Shape s{65};
    list->push_back({offset(dev->upload(w, s, DType::f32)), offset(dev->upload(g, s, DType::f32)),
                     offset(dev->upload(m, s, DType::f32))});
  }
  gpu->sgd_update_spans(p, spans);
  for (const Backend::SgdSpan& one : singles) {
    SgdUpdateParams q = p;
    q.n = one.param.numel();
    gpu->sgd_update(q, one.param, one.grad, one.momentum);
  }
  for (size_t i = 0; i < spans.size(); ++i) {
    EXPECT_EQ(dev->download(spans[i].param), dev->download(singles[i].param)) << "span " << i;
    EXPECT_EQ(dev->download(spans[i].momentum), dev->download(singles[i].momentum)) << "span " << i;
  }
}

// Clipping by global norm over several tensors (one spanning many partial sums, a tail
// of odd size), once clipping and once below the limit.
TEST_P(GpuOps, ClipGradNormMatchesRef) {
  if (t() != DType::f32) GTEST_SKIP() << "gradients are the fp32 master copies only";
  for (const float max_norm : {1.0f, 1e4f}) {
    std::vector<std::vector<float>> g;
    std::vector<Tensor> on_gpu;
    std::vector<float*> on_host;
    std::vector<int64_t> sizes;
    for (const int64_t n : {100003, 7, 4096}) {
      g.push_back(uniform(n, rng));
      on_gpu.push_back(dev->upload(g.back(), Shape{n}, DType::f32));
      sizes.push_back(n);
    }
    for (auto& v : g) on_host.push_back(v.data());
    ref::clip_grad_norm(max_norm, on_host.data(), sizes.data(), g.size());
    gpu->clip_grad_norm(max_norm, on_gpu);
    for (size_t i = 0; i < g.size(); ++i)
      EXPECT_MATCH(dev->download(on_gpu[i]), g[i], "clipped gradient " + std::to_string(i));
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, GpuOps,
                         ::testing::Values(GpuCase{"cuda", DType::f32}, GpuCase{"cuda", DType::bf16},
                                           GpuCase{"cuda", DType::f16}, GpuCase{"cudnn", DType::f32},
                                           GpuCase{"cudnn", DType::bf16},
                                           GpuCase{"cudnn", DType::f16}),
                         case_name);

}  // namespace
}  // namespace tb
