// A tensor's shape: up to five dimensions, outermost first (N, C, H, W for images).
#pragma once
#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "core/error.h"

namespace tb {

struct Shape {
  static constexpr int kMaxRank = 5;
  std::array<int64_t, kMaxRank> dims{};
  int rank = 0;

  Shape() = default;
  Shape(std::initializer_list<int64_t> d) {
    TB_CHECK(d.size() <= kMaxRank, "shape rank {} exceeds {}", d.size(), kMaxRank);
    for (int64_t v : d) dims[rank++] = v;
  }

  int64_t operator[](int i) const { return dims[i]; }
  int64_t& operator[](int i) { return dims[i]; }

  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < rank; ++i) n *= dims[i];
    return n;
  }

  // The same shape with a batch dimension N put in front.
  Shape with_batch(int64_t n) const {
    Shape s;
    s.rank = rank + 1;
    s.dims[0] = n;
    for (int i = 0; i < rank; ++i) s.dims[i + 1] = dims[i];
    return s;
  }

  // The shape without its first dimension.
  Shape drop_batch() const {
    Shape s;
    s.rank = rank - 1;
    for (int i = 1; i < rank; ++i) s.dims[i - 1] = dims[i];
    return s;
  }

  bool operator==(const Shape& o) const {
    if (rank != o.rank) return false;
    for (int i = 0; i < rank; ++i)
      if (dims[i] != o.dims[i]) return false;
    return true;
  }

  std::string to_string() const {
    std::string s = "[";
    for (int i = 0; i < rank; ++i) s += (i ? "x" : "") + std::to_string(dims[i]);
    return s + "]";
  }
};

}  // namespace tb
