#include "ops/backend.h"

namespace tb {

// The snake-case names used in messages, benchmark tables and result files.
const char* op_name(OpKind op) {
  switch (op) {
    case OpKind::conv2d:
      return "conv2d";
    case OpKind::linear:
      return "linear";
    case OpKind::relu:
      return "relu";
    case OpKind::max_pool2d:
      return "max_pool2d";
    case OpKind::avg_pool2d:
      return "avg_pool2d";
    case OpKind::global_avg_pool:
      return "global_avg_pool";
    case OpKind::batch_norm:
      return "batch_norm";
    case OpKind::batch_norm_relu:
      return "batch_norm_relu";
    case OpKind::dropout:
      return "dropout";
    case OpKind::add:
      return "add";
    case OpKind::softmax_cross_entropy:
      return "softmax_cross_entropy";
    case OpKind::sgd_update:
      return "sgd_update";
    case OpKind::adam_update:
      return "adam_update";
    case OpKind::copy:
      return "copy";
    case OpKind::conv2d_relu:
      return "conv2d_relu";
    case OpKind::linear_relu:
      return "linear_relu";
  }
  return "unknown_op";
}

}  // namespace tb
