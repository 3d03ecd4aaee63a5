// Argument checks of the oneDNN backend's ops: a wrong shape or type becomes a message
// naming the op and the tensor instead of a primitive reading out of bounds.
#pragma once
#include <cstdint>

#include "core/error.h"
#include "core/tensor.h"
#include "ops/backend.h"

namespace tb::onednn {

// Fails unless t is a defined, contiguous host tensor of `numel` elements of type `dtype`.
inline void expect(OpKind op, const char* what, const Tensor& t, int64_t numel,
                   DType dtype = DType::f32) {
  TB_CHECK(t.defined(), "onednn {}: {} is undefined", op_name(op), what);
  TB_CHECK(t.device.kind == DeviceKind::cpu, "onednn {}: {} lives on cuda:{}, not the host",
           op_name(op), what, t.device.index);
  TB_CHECK(t.dtype == dtype, "onednn {}: {} holds {}, expected {}", op_name(op), what,
           dtype_name(t.dtype), dtype_name(dtype));
  TB_CHECK(t.contiguous(), "onednn {}: {} is not contiguous", op_name(op), what);
  TB_CHECK(t.numel() == numel, "onednn {}: {} has {} elements, the params say {}", op_name(op),
           what, t.numel(), numel);
}

// The float data of t, or null when t is undefined (a dx nobody needs).
inline float* optional_f32(OpKind op, const char* what, const Tensor& t, int64_t numel) {
  if (!t.defined()) return nullptr;
  expect(op, what, t, numel);
  return static_cast<float*>(t.data);
}

// The float data of t: required when `present`, null otherwise (a bias the layer lacks).
inline float* f32_if(bool present, OpKind op, const char* what, const Tensor& t, int64_t numel) {
  if (!present) return nullptr;
  expect(op, what, t, numel);
  return static_cast<float*>(t.data);
}

inline float* f32(OpKind op, const char* what, const Tensor& t, int64_t numel) {
  expect(op, what, t, numel);
  return static_cast<float*>(t.data);
}

}  // namespace tb::onednn
