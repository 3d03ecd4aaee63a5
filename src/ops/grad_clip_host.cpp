// Backend::clip_grad_norm's default: the plain loop (ref::clip_grad_norm) on host memory,
// shared by the CPU backends. A GPU backend overrides it; reaching this with device memory
// is a bug, said plainly rather than read through a device pointer.
#include <vector>

#include "core/error.h"
#include "ops/backend.h"
#include "ops/ref/ref_kernels.h"

namespace tb {

void Backend::clip_grad_norm(float max_norm, const std::vector<Tensor>& grads) {
  TB_CHECK(max_norm > 0, "{} clip_grad_norm: max_norm must be > 0, got {}", name(), max_norm);
  std::vector<float*> data;
  std::vector<int64_t> sizes;
  for (const Tensor& g : grads) {
    TB_CHECK(g.defined() && g.dtype == DType::f32 && g.contiguous() &&
                 g.device.kind == DeviceKind::cpu,
             "{} clip_grad_norm: gradients must be contiguous fp32 host tensors", name());
    data.push_back(g.ptr<float>());
    sizes.push_back(g.numel());
  }
  ref::clip_grad_norm(max_norm, data.data(), sizes.data(), data.size());
}

}  // namespace tb
