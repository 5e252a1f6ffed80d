// carousel's CPU kernels for the linear recurrences of minGRU and minLSTM (carousel.runners.native).
//
// One pass over a block of time fuses what the eager scan does in some thirty passes: the
// coefficients a_t, b_t of h_t = a_t * h_{t-1} + b_t are computed from the projected input px and
// used at once, in registers; the backward recomputes them from px and runs the reverse recurrence
// g_t = dh_t + a_{t+1} g_{t+1} in the same loop, writing the gradient of px. Work is split over
// (batch row, slice of the hidden units); inside a slice the loop over units is written so that
// the compiler vectorises it (no calls: exp is a polynomial for float, std::exp for double).
//
// minGRU, px = [k, h~]:            z = sigmoid(k), a = 1 - z, b = z h~
// minLSTM, px = [k_f, k_i, h~]:    f' = sigmoid(k_f) / (sigmoid(k_f) + sigmoid(k_i)), i' = 1 - f' (as its
//   own ratio), a = f', b = i' h~; with m = min(k_f, k_i, 0) every exponent below is <= 0 and one term
//   of the denominator is 1, so nothing overflows and nothing divides 0 by 0:
//   f' = (e^m + e^(m - k_i)) / (2 e^m + e^(m - k_f) + e^(m - k_i)), i' = (e^m + e^(m - k_f)) / (same).
// Rows past their length (steps[b]) keep their state: a = 1, b = 0, no gradient reaches px there.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <torch/library.h>

#include "common.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace {

using namespace carousel_native;

// minLSTM's normalised gates f', i' from k_f, k_i.
template <typename T>
inline void minlstm_gates(T kf, T ki, T& fp, T& ip) {
  T m = kf < ki ? kf : ki;
  m = m < T(0) ? m : T(0);
  const T e0 = fast_exp(m), ef = fast_exp(m - kf), ei = fast_exp(m - ki);
  const T inv = T(1) / (T(2) * e0 + ef + ei);
  fp = (e0 + ei) * inv;
  ip = (e0 + ef) * inv;
}

template <typename T, bool LSTM>
void forward_kernel(const T* px, const T* h0, const int64_t* steps, T* h, int64_t hb, int64_t B, int64_t Tn, int64_t H) {
  const int64_t G = (LSTM ? 3 : 2) * H, slices = (H + SLICE - 1) / SLICE;
  at::parallel_for(0, B * slices, grain(B * slices, B * Tn * H), [&](int64_t begin, int64_t end) {
    T state[SLICE];
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / slices, j0 = (task % slices) * SLICE, n = std::min(SLICE, H - j0);
      const int64_t live = steps ? std::min(Tn, std::max<int64_t>(0, steps[b])) : Tn;
      for (int64_t j = 0; j < n; ++j) state[j] = h0[b * H + j0 + j];
      for (int64_t t = 0; t < Tn; ++t) {
        const T* __restrict p = px + (b * Tn + t) * G + j0;
        T* __restrict out = h + b * hb + t * H + j0;
        if (t < live) {
          if constexpr (LSTM) {
#pragma omp simd
            for (int64_t j = 0; j < n; ++j) {
              T fp, ip;
              minlstm_gates(p[j], p[H + j], fp, ip);
              state[j] = fp * state[j] + ip * p[2 * H + j];
              out[j] = state[j];
            }
          } else {
#pragma omp simd
            for (int64_t j = 0; j < n; ++j) {
              const T z = sigmoid(p[j]);
              state[j] = (T(1) - z) * state[j] + z * p[H + j];
              out[j] = state[j];
            }
          }
        } else {
          for (int64_t j = 0; j < n; ++j) out[j] = state[j];
        }
      }
    }
  });
}

template <typename T, bool LSTM>
void backward_kernel(const T* px, const T* h, int64_t hb, const T* h0, const T* grad_h, int64_t gb, const T* grad_last,
                     const int64_t* steps, T* grad_px, T* grad_h0, int64_t B, int64_t Tn, int64_t H) {
  const int64_t G = (LSTM ? 3 : 2) * H, slices = (H + SLICE - 1) / SLICE;
  at::parallel_for(0, B * slices, grain(B * slices, B * Tn * H), [&](int64_t begin, int64_t end) {
    T carry[SLICE];  // a_{t+1} g_{t+1}: what the step after t sends back to h_t
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / slices, j0 = (task % slices) * SLICE, n = std::min(SLICE, H - j0);
      const int64_t live = steps ? std::min(Tn, std::max<int64_t>(0, steps[b])) : Tn;
      for (int64_t j = 0; j < n; ++j) carry[j] = grad_last[b * H + j0 + j];
      for (int64_t t = Tn - 1; t >= 0; --t) {
        const T* __restrict p = px + (b * Tn + t) * G + j0;
        const T* __restrict dh = grad_h + b * gb + t * H + j0;
        const T* __restrict prev = t > 0 ? h + b * hb + (t - 1) * H + j0 : h0 + b * H + j0;
        T* __restrict dp = grad_px + (b * Tn + t) * G + j0;
        if (t >= live) {  // frozen: a = 1, b = 0
          for (int64_t j = 0; j < n; ++j) {
            carry[j] += dh[j];
            dp[j] = T(0);
            dp[H + j] = T(0);
            if constexpr (LSTM) dp[2 * H + j] = T(0);
          }
          continue;
        }
        if constexpr (LSTM) {
#pragma omp simd
          for (int64_t j = 0; j < n; ++j) {
            const T kf = p[j], ki = p[H + j], ht = p[2 * H + j];
            T fp, ip;
            minlstm_gates(kf, ki, fp, ip);
            const T g = dh[j] + carry[j];
            const T s = fp * ip * (g * prev[j] - g * ht);  // f' i' (da - db h~), da = g h_{t-1}, db = g
            dp[j] = s / (T(1) + fast_exp(kf));              // s (1 - sigmoid(k_f))
            dp[H + j] = -s / (T(1) + fast_exp(ki));         // -s (1 - sigmoid(k_i))
            dp[2 * H + j] = g * ip;
            carry[j] = fp * g;
          }
        } else {
#pragma omp simd
          for (int64_t j = 0; j < n; ++j) {
            const T k = p[j], ht = p[H + j];
            const T z = sigmoid(k);
            const T g = dh[j] + carry[j];
            dp[j] = (g * ht - g * prev[j]) * z * (T(1) - z);  // (db h~ - da) z (1 - z)
            dp[H + j] = g * z;
            carry[j] = (T(1) - z) * g;
          }
        }
      }
      for (int64_t j = 0; j < n; ++j) grad_h0[b * H + j0 + j] = carry[j];
    }
  });
}

void check(const at::Tensor& px, const at::Tensor& h0, int64_t blocks) {
  TORCH_CHECK(px.dim() == 3 && px.is_contiguous() && px.device().is_cpu(), "px must be a contiguous CPU (B, T, G) tensor");
  TORCH_CHECK(px.size(2) % blocks == 0, "px's last size must be a multiple of ", blocks);
  TORCH_CHECK(h0.dim() == 2 && h0.is_contiguous() && h0.size(0) == px.size(0) && h0.size(1) * blocks == px.size(2),
              "h0 must be a contiguous (B, H) tensor");
  TORCH_CHECK(h0.scalar_type() == px.scalar_type(), "h0 and px must have one dtype");
}

const int64_t* steps_ptr(const c10::optional<at::Tensor>& steps, int64_t B) {
  if (!steps.has_value()) return nullptr;
  TORCH_CHECK(steps->scalar_type() == at::kLong && steps->is_contiguous() && steps->numel() == B,
              "steps must be a contiguous int64 (B,) tensor");
  return steps->data_ptr<int64_t>();
}

// h, grad_h and h_out may be views of a longer sequence: (B, T, H) with unit strides over T and H.
void check_rows(const at::Tensor& v, int64_t B, int64_t Tn, int64_t H, const char* name) {
  TORCH_CHECK(v.dim() == 3 && v.size(0) == B && v.size(1) == Tn && v.size(2) == H && (H <= 1 || v.stride(2) == 1) &&
                  (Tn <= 1 || v.stride(1) == H),
              name, " must be (B, T, H) with unit strides over T and H");  // a stride of a size-1 dimension is never used
}

at::Tensor scan_forward(const at::Tensor& px, const at::Tensor& h0, const c10::optional<at::Tensor>& steps, bool lstm,
                        const c10::optional<at::Tensor>& h_out) {
  check(px, h0, lstm ? 3 : 2);
  const int64_t B = px.size(0), Tn = px.size(1), H = h0.size(1);
  at::Tensor h = h_out.has_value() ? *h_out : at::empty({B, Tn, H}, px.options());
  check_rows(h, B, Tn, H, "h_out");
  TORCH_CHECK(h.scalar_type() == px.scalar_type(), "h_out must have px's dtype");
  const int64_t* st = steps_ptr(steps, B);
  AT_DISPATCH_FLOATING_TYPES(px.scalar_type(), "carousel_scan_forward", [&] {
    auto run = lstm ? forward_kernel<scalar_t, true> : forward_kernel<scalar_t, false>;
    run(px.data_ptr<scalar_t>(), h0.data_ptr<scalar_t>(), st, h.data_ptr<scalar_t>(), h.stride(0), B, Tn, H);
  });
  return h;
}

std::tuple<at::Tensor, at::Tensor> scan_backward(const at::Tensor& px, const at::Tensor& h, const at::Tensor& h0,
                                                 const at::Tensor& grad_h, const at::Tensor& grad_last,
                                                 const c10::optional<at::Tensor>& steps, bool lstm,
                                                 const c10::optional<at::Tensor>& grad_px_out) {
  check(px, h0, lstm ? 3 : 2);
  const int64_t B = px.size(0), Tn = px.size(1), H = h0.size(1);
  check_rows(h, B, Tn, H, "h");
  check_rows(grad_h, B, Tn, H, "grad_h");
  TORCH_CHECK(grad_last.is_contiguous(), "grad_last must be contiguous");
  TORCH_CHECK(grad_last.sizes() == h0.sizes(), "grad_last must be (B, H)");
  TORCH_CHECK(h.scalar_type() == px.scalar_type() && grad_h.scalar_type() == px.scalar_type() &&
              grad_last.scalar_type() == px.scalar_type(), "all tensors must have px's dtype");
  at::Tensor grad_px = grad_px_out.has_value() ? *grad_px_out : at::empty_like(px), grad_h0 = at::empty_like(h0);
  TORCH_CHECK(grad_px.sizes() == px.sizes() && grad_px.is_contiguous() && grad_px.scalar_type() == px.scalar_type(),
              "grad_px_out must be a contiguous tensor like px");
  const int64_t* st = steps_ptr(steps, B);
  AT_DISPATCH_FLOATING_TYPES(px.scalar_type(), "carousel_scan_backward", [&] {
    auto run = lstm ? backward_kernel<scalar_t, true> : backward_kernel<scalar_t, false>;
    run(px.data_ptr<scalar_t>(), h.data_ptr<scalar_t>(), h.stride(0), h0.data_ptr<scalar_t>(), grad_h.data_ptr<scalar_t>(),
        grad_h.stride(0), grad_last.data_ptr<scalar_t>(), st, grad_px.data_ptr<scalar_t>(), grad_h0.data_ptr<scalar_t>(), B,
        Tn, H);
  });
  return {grad_px, grad_h0};
}

}  // namespace

TORCH_LIBRARY(carousel_native, m) {
  m.def("scan_forward(Tensor px, Tensor h0, Tensor? steps, bool lstm, Tensor? h_out=None) -> Tensor");
  m.def("scan_backward(Tensor px, Tensor h, Tensor h0, Tensor grad_h, Tensor grad_last, Tensor? steps, bool lstm, Tensor? grad_px_out=None) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(carousel_native, CPU, m) {
  m.impl("scan_forward", scan_forward);
  m.impl("scan_backward", scan_backward);
}
