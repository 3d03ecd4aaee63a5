// Fully connected layer on the packed GEMM (row-major, so no transposed copies):
//   y[N,out]   = x[N,in] * w[out,in]^T + bias   (bias as the GEMM's column epilogue)
//   dx[N,in]  (+)= dy[N,out] * w[out,in]
//   dw[out,in]  = dy[N,out]^T * x[N,in]
#include "ops/cpu/cpu_backend.h"
#include "ops/cpu/cpu_op_checks.h"
#include "ops/cpu/gemm.h"

namespace tb {

using cpu_ops::expect;
using cpu_ops::fptr;

void CpuBackend::linear_forward(const LinearParams& p, const Tensor& x, const Tensor& w,
                                const Tensor& bias, const Tensor& y) {
  constexpr OpKind op = OpKind::linear;
  expect(op, "x", x, int64_t(p.N) * p.in);
  expect(op, "w", w, int64_t(p.out) * p.in);
  expect(op, "y", y, int64_t(p.N) * p.out);
  cpu::SgemmEpilogue epilogue;
  epilogue.bias_col = cpu_ops::needed_ptr(op, "bias", p.has_bias, bias, p.out);
  epilogue.relu = p.relu;
  cpu::SgemmOptions options;
  options.epilogue = &epilogue;
  options.pool = pool_.get();
  cpu::sgemm(false, true, p.N, p.out, p.in, 1.0f, fptr(x), p.in, fptr(w), p.in, 0.0f, fptr(y),
             p.out, options);
}

void CpuBackend::linear_backward(const LinearParams& p, const Tensor& x, const Tensor& w,
                                 const Tensor& dy, const Tensor& dx, const Tensor& dw,
                                 const Tensor& dbias, bool accumulate_dx) {
  constexpr OpKind op = OpKind::linear;
  expect(op, "x", x, int64_t(p.N) * p.in);
  expect(op, "w", w, int64_t(p.out) * p.in);
  expect(op, "dy", dy, int64_t(p.N) * p.out);
  expect(op, "dw", dw, int64_t(p.out) * p.in);
  float* dx_data = cpu_ops::optional_ptr(op, "dx", dx, int64_t(p.N) * p.in);
  float* dbias_data = cpu_ops::needed_ptr(op, "dbias", p.has_bias, dbias, p.out);
  cpu::SgemmOptions options;
  options.pool = pool_.get();
  const float* dyd = fptr(dy);
  if (dx_data)
    cpu::sgemm(false, false, p.N, p.in, p.out, 1.0f, dyd, p.out, fptr(w), p.in,
               accumulate_dx ? 1.0f : 0.0f, dx_data, p.in, options);
  cpu::sgemm(true, false, p.out, p.in, p.N, 1.0f, dyd, p.out, fptr(x), p.in, 0.0f, fptr(dw), p.in,
             options);
  if (dbias_data) {  // per output, in double, over the batch in order
    cpu_ops::parallel_elements(*pool_, p.out, [&](int64_t lo, int64_t hi) {
      for (int64_t o = lo; o < hi; ++o) {
        double sum = 0;
        for (int n = 0; n < p.N; ++n) sum += double(dyd[int64_t(n) * p.out + o]);
        dbias_data[o] = float(sum);
      }
    });
  }
}

}  // namespace tb
