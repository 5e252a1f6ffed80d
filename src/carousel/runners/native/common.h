// Shared by carousel's CPU kernels (carousel.runners.native): element-wise functions written so that
// the loops calling them vectorise (no calls, no branches for float; double uses the C library).
#pragma once

#include <cmath>
#include <cstdint>

namespace carousel_native {

// exp for float as a polynomial (relative error below 2e-7 on [-87, 88]; Cody-Waite reduction by ln 2,
// a degree-6 polynomial); no calls and no branches, so the loops that use it vectorise.
inline float fast_exp(float x) {
  x = x < -87.3f ? -87.3f : (x > 88.3f ? 88.3f : x);
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round to nearest (1.5 * 2^23)
  const float r = (x - n * 0.693145751953125f) - n * 1.428606765330187e-06f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = (p * r * r + r) + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;  // 2^n
  return p * __builtin_bit_cast(float, bits);
}
inline double fast_exp(double x) { return std::exp(x); }

template <typename T>
inline T sigmoid(T k) { return T(1) / (T(1) + fast_exp(-k)); }

template <typename T>
inline T tanh_(T x) { return T(1) - T(2) / (T(1) + fast_exp(T(2) * x)); }  // saturates to +-1, never NaN
inline double tanh_(double x) { return std::tanh(x); }

constexpr int64_t SLICE = 64;  // hidden units per task of the scan kernels

// The grain for at::parallel_for over `tasks` tasks that together touch `elements` numbers: all of
// them in one thread when the work is small (waking threads costs more than it saves, and on a busy
// machine a parallel region waits for its slowest thread), else one task at a time.
inline int64_t grain(int64_t tasks, int64_t elements) { return elements < (int64_t(1) << 15) ? (tasks > 0 ? tasks : 1) : 1; }

}  // namespace carousel_native
