// Batch gather from the dataset kept on the GPU. One thread per output value; each recomputes
// its item's three augmentation draws (three hashes, far cheaper than a round trip).
#include "ops/cuda/dataset_kernels.h"
#include "ops/cuda/gpu_types.cuh"
#include "ops/cuda/pdl.cuh"

namespace tb::gpu {
namespace {

template <class T>
__global__ void gather_kernel(GatherSpec sp, const uint8_t* __restrict__ images,
                              const int32_t* __restrict__ labels,
                              const int32_t* __restrict__ order, const GpuStepState* st, T* out,
                              int32_t* out_labels) {
  pdl_begin();
  const int64_t item_size = int64_t(sp.C) * sp.H * sp.W;
  const int64_t total = int64_t(sp.n) * item_size;
  const int64_t first = (st->step - st->epoch_first_step) * int64_t(sp.batch);
  const uint64_t epoch = uint64_t(st->epoch);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int b = int(i / item_size);
    int64_t r = i % item_size;  // channels-last: (y, x, c)
    const int c = int(r % sp.C);
    r /= sp.C;
    const int x = int(r % sp.W), y = int(r / sp.W);
    const int64_t idx = order[first + b];
    // Where the item's pixels and label are: its own row, or its row in this step's slot.
    const int64_t row =
        sp.stream_slots ? ((first / sp.batch) % sp.stream_slots) * sp.batch + b : idx;
    int dy = 0, dx = 0;
    bool flip = false;
    if (sp.crop_pad > 0 || sp.flip) {
      const uint64_t base = uint64_t(idx) * 4;
      const int span = 2 * sp.crop_pad + 1;
      if (sp.crop_pad > 0) {
        dy = min(int(counter_uniform_dev(sp.seed, epoch, base + 0) * float(span)), span - 1) - sp.crop_pad;
        dx = min(int(counter_uniform_dev(sp.seed, epoch, base + 1) * float(span)), span - 1) - sp.crop_pad;
      }
      flip = sp.flip && counter_uniform_dev(sp.seed, epoch, base + 2) < 0.5f;
    }
    const int sy = y + dy;
    const int sx = (flip ? sp.W - 1 - x : x) + dx;
    float v = 0.0f;
    if (sy >= 0 && sy < sp.H && sx >= 0 && sx < sp.W)
      // Rounded like the host's x * scale + bias (no fused multiply-add), bit for bit.
      v = __fadd_rn(__fmul_rn(float(images[row * item_size + (int64_t(c) * sp.H + sy) * sp.W + sx]),
                              sp.scale[c]),
                    sp.bias[c]);
    out[i] = from_float<T>(v);
    if (r == 0 && c == 0) out_labels[b] = labels[row];
  }
}

}  // namespace

void gather_batch(DType t, const GatherSpec& spec, const uint8_t* images, const int32_t* labels,
                  const int32_t* order, const GpuStepState* state, void* out,
                  int32_t* out_labels, cudaStream_t s) {
  const int64_t total = int64_t(spec.n) * spec.C * spec.H * spec.W;
  if (total == 0) return;
  TB_GPU_DISPATCH(t, T, {
    launch_kernel(gather_kernel<T>, blocks_for(total, 256), 256, 0, s, spec, images, labels, order,
                  state, static_cast<T*>(out), out_labels);
  });
}

}  // namespace tb::gpu
