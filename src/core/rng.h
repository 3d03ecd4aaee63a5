// Random numbers, seeded and reproducible.
//
// Two kinds, for two jobs:
//  - Rng: a small stateful generator (xoshiro256**), for weight init and shuffles. Its state
//    is four integers, so a checkpoint can carry it.
//  - counter_uniform(): a stateless hash of (seed, stream, index). Dropout masks and
//    augmentation draws come from it, so every backend (CPU loops, SIMD, GPU threads) can
//    produce the same numbers in any order, and a resumed run draws exactly what an
//    uninterrupted one would have.
#pragma once
#include <array>
#include <cmath>
#include <cstdint>

namespace tb {

inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// The part of counter_hash that depends on (seed, stream) only: loops over many indices of
// one stream compute it once and leave one splitmix64 round per index.
inline uint64_t counter_key(uint64_t seed, uint64_t stream) {
  return splitmix64(splitmix64(seed) ^ stream);
}

// A well-mixed 64-bit value for the triple (seed, stream, index).
inline uint64_t counter_hash(uint64_t seed, uint64_t stream, uint64_t index) {
  return splitmix64(counter_key(seed, stream) ^ index);
}

// Uniform in [0, 1) with 24 bits, exactly representable as float: counter_uniform(seed,
// stream, index) == counter_uniform_keyed(counter_key(seed, stream), index).
inline float counter_uniform_keyed(uint64_t key, uint64_t index) {
  return static_cast<float>(splitmix64(key ^ index) >> 40) * (1.0f / 16777216.0f);
}
inline float counter_uniform(uint64_t seed, uint64_t stream, uint64_t index) {
  return counter_uniform_keyed(counter_key(seed, stream), index);
}

class Rng {
 public:
  explicit Rng(uint64_t seed = 0) { reseed(seed); }

  void reseed(uint64_t seed) {
    uint64_t x = seed;
    for (auto& s : state_) {
      x = splitmix64(x);
      s = x;
    }
  }

  uint64_t next_u64() {
    const uint64_t result = rotl(state_[1] * 5, 7) * 9;
    const uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = rotl(state_[3], 45);
    return result;
  }

  // Uniform in [0, 1) with 53 bits.
  double uniform() { return static_cast<double>(next_u64() >> 11) * (1.0 / 9007199254740992.0); }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }

  // Uniform integer in [0, n), without modulo bias.
  uint64_t below(uint64_t n) {
    const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = next_u64(); while (x >= limit);
    return x % n;
  }

  double normal() {
    double u1 = uniform(), u2 = uniform();
    if (u1 < 1e-300) u1 = 1e-300;
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

  const std::array<uint64_t, 4>& state() const { return state_; }
  void set_state(const std::array<uint64_t, 4>& s) { state_ = s; }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::array<uint64_t, 4> state_{};
};

// Fisher-Yates shuffle of [0, n) driven by rng.
template <class Index>
void shuffle_indices(Index* idx, int64_t n, Rng& rng) {
  for (int64_t i = n - 1; i > 0; --i) {
    int64_t j = static_cast<int64_t>(rng.below(static_cast<uint64_t>(i + 1)));
    Index t = idx[i];
    idx[i] = idx[j];
    idx[j] = t;
  }
}

}  // namespace tb
