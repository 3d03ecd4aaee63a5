// Convolution and linear layers through oneDNN's convolution and inner-product primitives.
// x, y and the convolution weights are described with format_tag::any so that oneDNN picks
// its fastest (blocked) layouts; WeightedPlan stages the graph's plain tensors into them.
#include "ops/onednn/onednn_backend.h"
#include "ops/onednn/onednn_checks.h"
#include "ops/onednn/onednn_state.h"
#include "ops/onednn/onednn_weighted.h"

namespace tb {

using namespace onednn;
using dnnl::memory;
using tag = memory::format_tag;

namespace {

memory::desc plain_desc(const memory::dims& dims, tag t) {
  return memory::desc(dims, memory::data_type::f32, t);
}
memory::desc any_desc(const memory::dims& dims) {
  return memory::desc(dims, memory::data_type::f32, tag::any);
}

std::unique_ptr<WeightedPlan> make_conv_plan(Runtime& rt, const Conv2dParams& p) {
  const memory::dims x{p.N, p.C, p.H, p.W}, w{p.K, p.C, p.kernel, p.kernel},
      y{p.N, p.K, p.P(), p.Q()}, strides{p.stride, p.stride}, pad{p.pad, p.pad};
  const PlainDescs plain{plain_desc(x, tag::nchw), plain_desc(w, tag::oihw),
                         p.has_bias ? plain_desc({p.K}, tag::x) : memory::desc(),
                         plain_desc(y, tag::nchw)};
  const auto alg = dnnl::algorithm::convolution_direct;
  const auto fwd_desc =
      p.has_bias ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, alg,
                                                   any_desc(x), any_desc(w), plain.bias,
                                                   any_desc(y), strides, pad, pad)
                 : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, alg,
                                                   any_desc(x), any_desc(w), any_desc(y),
                                                   strides, pad, pad);
  const dnnl::convolution_forward::primitive_desc fwd(fwd_desc, rt.attr(), rt.engine);
  const dnnl::convolution_backward_data::primitive_desc bwd_data(
      dnnl::convolution_backward_data::desc(alg, any_desc(x), any_desc(w), any_desc(y), strides,
                                            pad, pad),
      rt.attr(), rt.engine, fwd);
  const auto bwd_weights_desc =
      p.has_bias ? dnnl::convolution_backward_weights::desc(alg, any_desc(x), any_desc(w),
                                                            plain.bias, any_desc(y), strides,
                                                            pad, pad)
                 : dnnl::convolution_backward_weights::desc(alg, any_desc(x), any_desc(w),
                                                            any_desc(y), strides, pad, pad);
  const dnnl::convolution_backward_weights::primitive_desc bwd_weights(bwd_weights_desc,
                                                                       rt.attr(), rt.engine, fwd);
  return std::make_unique<WeightedPlan>(plain, fwd, bwd_data, bwd_weights);
}

// The weights stay in the graph's plain [out, in] layout: oneDNN's blocked layout runs a
// little faster, but the weights change every step, and the reorders to it (for forward and
// backward data) and back (the gradient) cost more than it saves: 10.9 against 13.6 ms a
// step for cifar_cnn's 4096 -> 512 layer at batch 64 on one core.
std::unique_ptr<WeightedPlan> make_linear_plan(Runtime& rt, const LinearParams& p) {
  const memory::dims x{p.N, p.in}, w{p.out, p.in}, y{p.N, p.out};
  const PlainDescs plain{plain_desc(x, tag::nc), plain_desc(w, tag::oi),
                         p.has_bias ? plain_desc({p.out}, tag::x) : memory::desc(),
                         plain_desc(y, tag::nc)};
  const auto fwd_desc =
      p.has_bias ? dnnl::inner_product_forward::desc(dnnl::prop_kind::forward_training,
                                                     any_desc(x), plain.w, plain.bias,
                                                     any_desc(y))
                 : dnnl::inner_product_forward::desc(dnnl::prop_kind::forward_training,
                                                     any_desc(x), plain.w, any_desc(y));
  const dnnl::inner_product_forward::primitive_desc fwd(fwd_desc, rt.attr(), rt.engine);
  const dnnl::inner_product_backward_data::primitive_desc bwd_data(
      dnnl::inner_product_backward_data::desc(any_desc(x), plain.w, any_desc(y)), rt.attr(),
      rt.engine, fwd);
  const auto bwd_weights_desc =
      p.has_bias ? dnnl::inner_product_backward_weights::desc(any_desc(x), plain.w,
                                                              plain.bias, any_desc(y))
                 : dnnl::inner_product_backward_weights::desc(any_desc(x), plain.w,
                                                              any_desc(y));
  const dnnl::inner_product_backward_weights::primitive_desc bwd_weights(
      bwd_weights_desc, rt.attr(), rt.engine, fwd);
  return std::make_unique<WeightedPlan>(plain, fwd, bwd_data, bwd_weights);
}

void check_conv(const Conv2dParams& p) {
  TB_CHECK(p.N > 0 && p.C > 0 && p.K > 0 && p.kernel > 0 && p.stride > 0 && p.pad >= 0,
           "onednn conv2d: bad params N={} C={} K={} kernel={} stride={} pad={}", p.N, p.C, p.K,
           p.kernel, p.stride, p.pad);
  TB_CHECK(p.P() > 0 && p.Q() > 0,
           "onednn conv2d: a {}x{} kernel does not fit a {}x{} input, pad {}", p.kernel,
           p.kernel, p.H, p.W, p.pad);
}

WeightedPlan& conv_plan(State& s, const Conv2dParams& p) {
  check_conv(p);
  const OpKey key = OpKey(kConv) << p.N << p.C << p.H << p.W << p.K << p.kernel << p.stride
                                 << p.pad << p.has_bias;
  return s.plan<WeightedPlan>(key, [&] { return make_conv_plan(s.rt, p); });
}

WeightedPlan& linear_plan(State& s, const LinearParams& p) {
  TB_CHECK(p.N > 0 && p.in > 0 && p.out > 0, "onednn linear: bad params N={} in={} out={}", p.N,
           p.in, p.out);
  const OpKey key = OpKey(kLinear) << p.N << p.in << p.out << p.has_bias;
  return s.plan<WeightedPlan>(key, [&] { return make_linear_plan(s.rt, p); });
}

}  // namespace

void OneDnnBackend::conv2d_forward(const Conv2dParams& p, const Tensor& x, const Tensor& w,
                                   const Tensor& bias, const Tensor& y) {
  constexpr OpKind op = OpKind::conv2d;
  TB_CHECK(!p.relu, "onednn: conv2d_relu is not one of its ops (supports() says so)");
  use_threads();
  WeightedPlan& plan = conv_plan(*state_, p);
  plan.forward(*state_, f32(op, "x", x, p.x_numel()), f32(op, "w", w, p.w_numel()),
               f32_if(p.has_bias, op, "bias", bias, p.K), f32(op, "y", y, p.y_numel()));
}

void OneDnnBackend::conv2d_backward(const Conv2dParams& p, const Tensor& x, const Tensor& w,
                                    const Tensor& dy, const Tensor& dx, const Tensor& dw,
                                    const Tensor& dbias, bool accumulate_dx) {
  constexpr OpKind op = OpKind::conv2d;
  use_threads();
  WeightedPlan& plan = conv_plan(*state_, p);
  plan.backward(*state_, f32(op, "x", x, p.x_numel()), f32(op, "w", w, p.w_numel()),
                f32(op, "dy", dy, p.y_numel()), optional_f32(op, "dx", dx, p.x_numel()),
                f32(op, "dw", dw, p.w_numel()), f32_if(p.has_bias, op, "dbias", dbias, p.K),
                accumulate_dx);
}

void OneDnnBackend::linear_forward(const LinearParams& p, const Tensor& x, const Tensor& w,
                                   const Tensor& bias, const Tensor& y) {
  constexpr OpKind op = OpKind::linear;
  TB_CHECK(!p.relu, "onednn: linear_relu is not one of its ops (supports() says so)");
  use_threads();
  WeightedPlan& plan = linear_plan(*state_, p);
  plan.forward(*state_, f32(op, "x", x, int64_t(p.N) * p.in),
               f32(op, "w", w, int64_t(p.out) * p.in), f32_if(p.has_bias, op, "bias", bias, p.out),
               f32(op, "y", y, int64_t(p.N) * p.out));
}

void OneDnnBackend::linear_backward(const LinearParams& p, const Tensor& x, const Tensor& w,
                                    const Tensor& dy, const Tensor& dx, const Tensor& dw,
                                    const Tensor& dbias, bool accumulate_dx) {
  constexpr OpKind op = OpKind::linear;
  use_threads();
  WeightedPlan& plan = linear_plan(*state_, p);
  plan.backward(*state_, f32(op, "x", x, int64_t(p.N) * p.in),
                f32(op, "w", w, int64_t(p.out) * p.in), f32(op, "dy", dy, int64_t(p.N) * p.out),
                optional_f32(op, "dx", dx, int64_t(p.N) * p.in),
                f32(op, "dw", dw, int64_t(p.out) * p.in),
                f32_if(p.has_bias, op, "dbias", dbias, p.out), accumulate_dx);
}

}  // namespace tb
