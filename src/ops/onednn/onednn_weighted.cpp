#include "ops/onednn/onednn_weighted.h"

namespace tb::onednn {

WeightedPlan::WeightedPlan(const PlainDescs& plain, dnnl::primitive_desc fwd,
                           dnnl::primitive_desc bwd_data, dnnl::primitive_desc bwd_weights)
    : plain_(plain),
      has_bias_(plain.bias.get_size() > 0),
      fwd_pd_(std::move(fwd)),
      bwd_data_pd_(std::move(bwd_data)),
      bwd_weights_pd_(std::move(bwd_weights)) {}

void WeightedPlan::make_forward(Runtime& rt) {
  const dnnl::primitive_desc& pd = fwd_pd_;
  fwd_x_ = InputStage(rt, plain_.x, pd.src_desc(), kSlotIn);
  fwd_y_ = OutputStage(rt, pd.dst_desc(), plain_.y, kSlotOut);
  if (has_bias_)
    fwd_ = Exec(rt, pd, {{DNNL_ARG_SRC, pd.src_desc()}, {DNNL_ARG_WEIGHTS, pd.weights_desc()},
                         {DNNL_ARG_BIAS, plain_.bias}, {DNNL_ARG_DST, pd.dst_desc()}});
  else
    fwd_ = Exec(rt, pd, {{DNNL_ARG_SRC, pd.src_desc()}, {DNNL_ARG_WEIGHTS, pd.weights_desc()},
                         {DNNL_ARG_DST, pd.dst_desc()}});
}

void WeightedPlan::make_backward_data(Runtime& rt) {
  const dnnl::primitive_desc& pd = bwd_data_pd_;
  bwd_data_dy_ = InputStage(rt, plain_.y, pd.diff_dst_desc(), kSlotIn);
  bwd_data_dx_ = OutputStage(rt, pd.diff_src_desc(), plain_.x, kSlotOut);
  bwd_data_ = Exec(rt, pd, {{DNNL_ARG_DIFF_DST, pd.diff_dst_desc()},
                            {DNNL_ARG_WEIGHTS, pd.weights_desc()},
                            {DNNL_ARG_DIFF_SRC, pd.diff_src_desc()}});
}

void WeightedPlan::make_backward_weights(Runtime& rt) {
  const dnnl::primitive_desc& pd = bwd_weights_pd_;
  // x goes through kSlotOut: backward data is done with it by then, and dy may still sit in
  // kSlotIn from backward data, reusable when both primitives want the same layout.
  bwd_weights_x_ = InputStage(rt, plain_.x, pd.src_desc(), kSlotOut);
  bwd_weights_dy_ = InputStage(rt, plain_.y, pd.diff_dst_desc(), kSlotIn);
  bwd_weights_dw_ = OutputStage(rt, pd.diff_weights_desc(), plain_.w, kSlotExtra);
  if (has_bias_)
    bwd_weights_ = Exec(rt, pd, {{DNNL_ARG_SRC, pd.src_desc()},
                                 {DNNL_ARG_DIFF_DST, pd.diff_dst_desc()},
                                 {DNNL_ARG_DIFF_WEIGHTS, pd.diff_weights_desc()},
                                 {DNNL_ARG_DIFF_BIAS, plain_.bias}});
  else
    bwd_weights_ = Exec(rt, pd, {{DNNL_ARG_SRC, pd.src_desc()},
                                 {DNNL_ARG_DIFF_DST, pd.diff_dst_desc()},
                                 {DNNL_ARG_DIFF_WEIGHTS, pd.diff_weights_desc()}});
}

void WeightedPlan::forward(State& s, const void* x, const void* w, const void* bias, void* y) {
  Runtime& rt = s.rt;
  if (!fwd_.ready()) make_forward(rt);
  fwd_.bind(DNNL_ARG_SRC, fwd_x_.stage(rt, x));
  fwd_.bind(DNNL_ARG_WEIGHTS, s.weights.get(rt, w, plain_.w, fwd_pd_.weights_desc()));
  if (has_bias_) fwd_.bind(DNNL_ARG_BIAS, bias);
  fwd_.bind(DNNL_ARG_DST, fwd_y_.target(rt, y, false));
  fwd_.run(rt);
  fwd_y_.finish(rt, y, false);
}

void WeightedPlan::backward(State& s, const void* x, const void* w, const void* dy, void* dx,
                            void* dw, void* dbias, bool accumulate_dx) {
  Runtime& rt = s.rt;
  const void* staged_dy = nullptr;  // dy in backward data's layout, while kSlotIn holds it
  if (dx) {
    if (!bwd_data_.ready()) make_backward_data(rt);
    staged_dy = bwd_data_dy_.stage(rt, dy);
    bwd_data_.bind(DNNL_ARG_DIFF_DST, staged_dy);
    bwd_data_.bind(DNNL_ARG_WEIGHTS, s.weights.get(rt, w, plain_.w, bwd_data_pd_.weights_desc()));
    bwd_data_.bind(DNNL_ARG_DIFF_SRC, bwd_data_dx_.target(rt, dx, accumulate_dx));
    bwd_data_.run(rt);
    bwd_data_dx_.finish(rt, dx, accumulate_dx);
  }

  if (!bwd_weights_.ready()) make_backward_weights(rt);
  const bool reuse_dy = staged_dy && bwd_weights_dy_.want() == bwd_data_dy_.want();
  bwd_weights_.bind(DNNL_ARG_SRC, bwd_weights_x_.stage(rt, x));
  bwd_weights_.bind(DNNL_ARG_DIFF_DST, reuse_dy ? staged_dy : bwd_weights_dy_.stage(rt, dy));
  bwd_weights_.bind(DNNL_ARG_DIFF_WEIGHTS, bwd_weights_dw_.target(rt, dw, false));
  if (has_bias_) bwd_weights_.bind(DNNL_ARG_DIFF_BIAS, dbias);
  bwd_weights_.run(rt);
  bwd_weights_dw_.finish(rt, dw, false);
}

}  // namespace tb::onednn
