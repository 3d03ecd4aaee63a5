// Argument checks of GpuBackend's ops: a GPU tensor of the expected size and dtype, named in
// the message with the backend and the op. Used inside GpuBackend members (they read impl_).
#pragma once
#include "core/error.h"

#define GPU_EXPECT(t, numel_, what)                                                            \
  do {                                                                                         \
    TB_CHECK((t).defined(), "{} {}: {} is undefined", impl_, __func__, what);                  \
    TB_CHECK((t).device.kind == DeviceKind::cuda, "{} {}: {} lives on the host", impl_,        \
             __func__, what);                                                                  \
    TB_CHECK((t).contiguous(), "{} {}: {} is not contiguous", impl_, __func__, what);          \
    TB_CHECK((t).numel() == (numel_), "{} {}: {} has {} elements, expected {}", impl_,         \
             __func__, what, (t).numel(), int64_t(numel_));                                    \
  } while (0)
#define GPU_EXPECT_DTYPE(t, dt, what)                                                          \
  TB_CHECK((t).dtype == (dt), "{} {}: {} is {}, expected {}", impl_, __func__, what,           \
           dtype_name((t).dtype), dtype_name(dt))
