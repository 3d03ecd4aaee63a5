// Convolution and inner product have the same shape of work: a forward, a backward-data and
// a backward-weights primitive over x, w, bias, y. WeightedPlan runs any such triple with the
// graph's plain tensors, staging each operand into the layout its primitive chose (blocked
// layouts for the AVX-512 kernels) and back; the weights' reordered copies are cached.
#pragma once
#include "ops/onednn/onednn_state.h"

namespace tb::onednn {

// The graph's layouts of the four operands; bias is a zero desc when there is none.
struct PlainDescs {
  memory::desc x, w, bias, y;
};

class WeightedPlan final : public PlanBase {
 public:
  // The primitive descriptors were made with format_tag::any for x, w, y; the primitives
  // themselves are created on first use of each direction.
  WeightedPlan(const PlainDescs& plain, dnnl::primitive_desc fwd, dnnl::primitive_desc bwd_data,
               dnnl::primitive_desc bwd_weights);

  // x, w, bias (null if none) -> y
  void forward(State& s, const void* x, const void* w, const void* bias, void* y);
  // dy -> dx (skipped if null; added to when accumulate_dx), dw, dbias (if the op has one)
  void backward(State& s, const void* x, const void* w, const void* dy, void* dx, void* dw,
                void* dbias, bool accumulate_dx);

 private:
  void make_forward(Runtime& rt);
  void make_backward_data(Runtime& rt);
  void make_backward_weights(Runtime& rt);

  PlainDescs plain_;
  bool has_bias_;
  dnnl::primitive_desc fwd_pd_, bwd_data_pd_, bwd_weights_pd_;

  Exec fwd_;
  InputStage fwd_x_;
  OutputStage fwd_y_;

  Exec bwd_data_;
  InputStage bwd_data_dy_;
  OutputStage bwd_data_dx_;

  Exec bwd_weights_;
  InputStage bwd_weights_x_, bwd_weights_dy_;
  OutputStage bwd_weights_dw_;
};

}  // namespace tb::onednn
