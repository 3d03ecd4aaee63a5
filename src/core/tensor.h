// A tensor view: a pointer into memory owned elsewhere (an arena, a dataset), plus what is
// needed to read it. Views are cheap to copy; they never own or free memory.
#pragma once
#include <cstdint>

#include "core/dtype.h"
#include "core/error.h"
#include "core/shape.h"

namespace tb {

struct Tensor {
  void* data = nullptr;
  DType dtype = DType::f32;
  Device device{};
  Shape shape{};
  std::array<int64_t, Shape::kMaxRank> strides{};  // in elements

  Tensor() = default;
  Tensor(void* p, DType t, Shape s, Device d = {}) : data(p), dtype(t), device(d), shape(s) {
    int64_t stride = 1;
    for (int i = s.rank - 1; i >= 0; --i) {
      strides[i] = stride;
      stride *= s.dims[i];
    }
  }

  int64_t numel() const { return shape.numel(); }
  size_t bytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
  bool defined() const { return data != nullptr; }

  bool contiguous() const {
    int64_t stride = 1;
    for (int i = shape.rank - 1; i >= 0; --i) {
      if (shape.dims[i] != 1 && strides[i] != stride) return false;
      stride *= shape.dims[i];
    }
    return true;
  }

  template <class T>
  T* ptr() const {
    TB_CHECK(dtype_of<T>() == dtype, "tensor holds {}, asked as {}", dtype_name(dtype),
             dtype_name(dtype_of<T>()));
    return static_cast<T*>(data);
  }

  // The first n items of the outermost dimension (a smaller batch in the same memory).
  Tensor first(int64_t n) const {
    TB_CHECK(shape.rank > 0 && n <= shape.dims[0], "first({}) of {}", n, shape.to_string());
    Tensor t = *this;
    t.shape.dims[0] = n;
    return t;
  }

  // The same memory seen with another (equal-sized) contiguous shape.
  Tensor reshaped(Shape s) const {
    TB_CHECK(s.numel() == numel(), "reshape {} to {}", shape.to_string(), s.to_string());
    return Tensor(data, dtype, s, device);
  }
};

}  // namespace tb
