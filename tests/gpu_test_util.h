// Helpers for the GPU tests (suites named Gpu*): getting a GPU backend or skipping, moving
// float data to and from device tensors of any dtype and layout, rounding to 16-bit types on
// the host, and relative errors.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/rng.h"
#include "ops/backend.h"

namespace tb::gputest {

// The backend, or null when this build or machine cannot run it (no CUDA, no GPU).
inline std::unique_ptr<Backend> backend_or_null(const std::string& impl) {
  try {
    return make_backend(impl, 0);
  } catch (const InputError&) {
    return nullptr;
  }
}

#define TB_GPU_BACKEND_OR_SKIP(var, impl)                                                   \
  auto var = ::tb::gputest::backend_or_null(impl);                                          \
  if (!var) GTEST_SKIP() << "--impl " << (impl) << " is unavailable here (no GPU or no CUDA)"

// Rounds to the nearest value of dtype t (round to nearest even), as the GPU conversion does.
inline float round_to(DType t, float v) {
  if (t == DType::bf16) {
    uint32_t bits;
    std::memcpy(&bits, &v, 4);
    if ((bits & 0x7f800000u) == 0x7f800000u) return v;  // inf, NaN
    bits += 0x7fffu + ((bits >> 16) & 1u);
    bits &= 0xffff0000u;
    std::memcpy(&v, &bits, 4);
    return v;
  }
  if (t == DType::f16) return float(static_cast<_Float16>(v));
  return v;
}

inline std::vector<float> rounded(DType t, std::vector<float> v) {
  for (float& x : v) x = round_to(t, x);
  return v;
}

inline std::vector<float> uniform(int64_t n, Rng& rng, float lo = -1.0f, float hi = 1.0f) {
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = float(rng.uniform(lo, hi));
  return v;
}

// N,C,H,W <-> N,H,W,C on the host.
inline std::vector<float> to_nhwc(const std::vector<float>& v, int64_t N, int64_t C, int64_t H,
                                  int64_t W) {
  std::vector<float> out(v.size());
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t p = 0; p < H * W; ++p) out[size_t((n * H * W + p) * C + c)] = v[size_t((n * C + c) * H * W + p)];
  return out;
}
inline std::vector<float> to_nchw(const std::vector<float>& v, int64_t N, int64_t C, int64_t H,
                                  int64_t W) {
  std::vector<float> out(v.size());
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t p = 0; p < H * W; ++p) out[size_t((n * C + c) * H * W + p)] = v[size_t((n * H * W + p) * C + c)];
  return out;
}

// ||a - b|| / ||b|| (b the reference); NaN anywhere gives infinity.
inline double rel_error(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    if (std::isnan(a[i]) || std::isnan(b[i])) return INFINITY;
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(b[i]) * b[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

// Device tensors made from host floats, freed with the object. A 4-D shape means the GPU
// backends' channels-last layout: upload() takes N,C,H,W data and reorders it.
class DeviceData {
 public:
  explicit DeviceData(Backend& b) : b_(b) {}
  ~DeviceData() {
    for (void* p : owned_) b_.release(p);
  }
  Tensor empty(Shape s, DType t) {
    void* p = b_.allocate(size_t(s.numel()) * dtype_size(t));
    owned_.push_back(p);
    Tensor out(p, t, s, b_.device());
    b_.fill_zero(out);
    return out;
  }
  // channels_last: a 4-D shape is an activation (reordered); weights pass false.
  Tensor upload(const std::vector<float>& nchw, Shape s, DType t, bool channels_last = true) {
    const std::vector<float> v =
        s.rank == 4 && channels_last ? to_nhwc(nchw, s[0], s[1], s[2], s[3]) : nchw;
    Tensor staging = empty(s, DType::f32);
    b_.copy_from_host(staging.data, v.data(), v.size() * sizeof(float));
    if (t == DType::f32) return staging;
    Tensor out = empty(s, t);
    b_.copy(staging, out, false);
    return out;
  }
  Tensor upload_i32(const std::vector<int32_t>& v) {
    Tensor t = empty(Shape{int64_t(v.size())}, DType::i32);
    b_.copy_from_host(t.data, v.data(), v.size() * sizeof(int32_t));
    return t;
  }
  Tensor upload_u8(const std::vector<uint8_t>& v, Shape s) {
    Tensor t = empty(s, DType::u8);
    b_.copy_from_host(t.data, v.data(), v.size());
    return t;
  }
  // Back to host floats in N,C,H,W order.
  std::vector<float> download(const Tensor& t, bool channels_last = true) {
    Tensor f = t;
    if (t.dtype != DType::f32) {
      f = empty(t.shape, DType::f32);
      b_.copy(t, f, false);
    }
    std::vector<float> v(size_t(t.numel()));
    b_.copy_to_host(v.data(), f.data, v.size() * sizeof(float));
    const Shape& s = t.shape;
    return s.rank == 4 && channels_last ? to_nchw(v, s[0], s[1], s[2], s[3]) : v;
  }
  std::vector<uint8_t> download_u8(const Tensor& t) {
    std::vector<uint8_t> v(size_t(t.numel()));
    b_.copy_to_host(v.data(), t.data, v.size());
    return v;
  }

 private:
  Backend& b_;
  std::vector<void*> owned_;
};

// A host tensor view for the ref backend.
inline Tensor host(std::vector<float>& v, Shape s) { return Tensor(v.data(), DType::f32, s); }

// The allowed relative error of a dtype's results against the fp32 ref.
inline double tolerance(DType t) { return t == DType::f32 ? 1e-4 : 2e-2; }

}  // namespace tb::gputest
