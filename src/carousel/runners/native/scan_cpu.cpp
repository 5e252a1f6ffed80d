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
#include <ATen/ops/addmm.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>
#include <omp.h>
#include <c10/core/GradMode.h>

#include <exception>
#include <vector>

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

// The recurrence over `count` steps of one batch row, for hidden units [j0, j0 + n): p points at px of
// the first step (G numbers a step), out at h of the first step (H a step); the first `live` steps run,
// the rest keep the state. `state` (the row's H numbers) is read and left at the last state.
template <typename T, bool LSTM>
inline void forward_span(const T* p, T* out, int64_t count, int64_t live, int64_t j0, int64_t n, int64_t G, int64_t H,
                         T* state) {
  T* __restrict s = state + j0;
  for (int64_t t = 0; t < count; ++t) {
    const T* __restrict q = p + t * G + j0;
    T* __restrict o = out + t * H + j0;
    if (t < live) {
      if constexpr (LSTM) {
#pragma omp simd
        for (int64_t j = 0; j < n; ++j) {
          T fp, ip;
          minlstm_gates(q[j], q[H + j], fp, ip);
          s[j] = fp * s[j] + ip * q[2 * H + j];
          o[j] = s[j];
        }
      } else {
#pragma omp simd
        for (int64_t j = 0; j < n; ++j) {
          const T z = sigmoid(q[j]);
          s[j] = (T(1) - z) * s[j] + z * q[H + j];
          o[j] = s[j];
        }
      }
    } else {
      for (int64_t j = 0; j < n; ++j) o[j] = s[j];
    }
  }
}

// Its backward, steps count-1 .. 0: h and dh point at the span's first step (H a step), prev0 at the
// state entering it, dp at the gradient of px (G a step); `carry` (the row's H numbers, a_{t+1} g_{t+1})
// comes in from the step after the span and leaves as the gradient of the state entering it.
template <typename T, bool LSTM>
inline void backward_span(const T* p, const T* h, const T* prev0, const T* dh_all, T* dp_all, int64_t count,
                          int64_t live, int64_t j0, int64_t n, int64_t G, int64_t H, T* carry) {
  T* __restrict c = carry + j0;
  for (int64_t t = count - 1; t >= 0; --t) {
    const T* __restrict q = p + t * G + j0;
    const T* __restrict dh = dh_all + t * H + j0;
    const T* __restrict prev = (t > 0 ? h + (t - 1) * H : prev0) + j0;
    T* __restrict dp = dp_all + t * G + j0;
    if (t >= live) {  // frozen: a = 1, b = 0
      for (int64_t j = 0; j < n; ++j) {
        c[j] += dh[j];
        dp[j] = T(0);
        dp[H + j] = T(0);
        if constexpr (LSTM) dp[2 * H + j] = T(0);
      }
      continue;
    }
    if constexpr (LSTM) {
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) {
        const T kf = q[j], ki = q[H + j], ht = q[2 * H + j];
        T fp, ip;
        minlstm_gates(kf, ki, fp, ip);
        const T g = dh[j] + c[j];
        const T sv = fp * ip * (g * prev[j] - g * ht);  // f' i' (da - db h~), da = g h_{t-1}, db = g
        dp[j] = sv / (T(1) + fast_exp(kf));              // s (1 - sigmoid(k_f))
        dp[H + j] = -sv / (T(1) + fast_exp(ki));         // -s (1 - sigmoid(k_i))
        dp[2 * H + j] = g * ip;
        c[j] = fp * g;
      }
    } else {
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) {
        const T k = q[j], ht = q[H + j];
        const T z = sigmoid(k);
        const T g = dh[j] + c[j];
        dp[j] = (g * ht - g * prev[j]) * z * (T(1) - z);  // (db h~ - da) z (1 - z)
        dp[H + j] = g * z;
        c[j] = (T(1) - z) * g;
      }
    }
  }
}

inline int64_t live_steps(const int64_t* steps, int64_t b, int64_t t0, int64_t count) {
  return steps ? std::min(count, std::max<int64_t>(0, steps[b] - t0)) : count;
}

// A block (px given): tasks over (batch row, slice of hidden units), each the whole block.
template <typename T, bool LSTM>
void forward_kernel(const T* px, const T* h0, const int64_t* steps, T* h, int64_t hb, int64_t B, int64_t Tn, int64_t H) {
  const int64_t G = (LSTM ? 3 : 2) * H, slices = (H + SLICE - 1) / SLICE;
  at::parallel_for(0, B * slices, grain(B * slices, B * Tn * H), [&](int64_t begin, int64_t end) {
    std::vector<T> state(H);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / slices, j0 = (task % slices) * SLICE, n = std::min(SLICE, H - j0);
      for (int64_t j = 0; j < n; ++j) state[j0 + j] = h0[b * H + j0 + j];
      forward_span<T, LSTM>(px + b * Tn * G, h + b * hb, Tn, live_steps(steps, b, 0, Tn), j0, n, G, H, state.data());
    }
  });
}

template <typename T, bool LSTM>
void backward_kernel(const T* px, const T* h, int64_t hb, const T* h0, const T* grad_h, int64_t gb, const T* grad_last,
                     const int64_t* steps, T* grad_px, T* grad_h0, int64_t B, int64_t Tn, int64_t H) {
  const int64_t G = (LSTM ? 3 : 2) * H, slices = (H + SLICE - 1) / SLICE;
  at::parallel_for(0, B * slices, grain(B * slices, B * Tn * H), [&](int64_t begin, int64_t end) {
    std::vector<T> carry(H);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / slices, j0 = (task % slices) * SLICE, n = std::min(SLICE, H - j0);
      for (int64_t j = 0; j < n; ++j) carry[j0 + j] = grad_last[b * H + j0 + j];
      backward_span<T, LSTM>(px + b * Tn * G, h + b * hb, h0 + b * H, grad_h + b * gb, grad_px + b * Tn * G, Tn,
                             live_steps(steps, b, 0, Tn), j0, n, G, H, carry.data());
      for (int64_t j = 0; j < n; ++j) grad_h0[b * H + j0 + j] = carry[j0 + j];
    }
  });
}

// A whole run in ONE parallel region: batch rows are handed out one at a time to whichever thread is
// free (a thread descheduled by another process does not hold up the others, as a region per block
// and per matrix product would); each row computes its own projection, block after block of `chunk`
// steps (a small single-threaded product, still in cache when the recurrence reads it).
template <typename T, bool LSTM>
void run_forward_rows(const at::Tensor& x, const at::Tensor& Wt, const c10::optional<at::Tensor>& bias, const T* h0,
                      const int64_t* steps, at::Tensor& px_all, at::Tensor& h, int64_t chunk) {
  const int64_t B = x.size(0), Tn = x.size(1), H = h.size(2), G = Wt.size(1);
  std::exception_ptr error = nullptr;  // an exception must not leave a parallel region: kept, rethrown after it
#pragma omp parallel
  {
    c10::AutoGradMode grad_off(false);  // grad mode is per thread, and these are OpenMP's threads, not the caller's
    std::vector<T> state(H);
#pragma omp for schedule(dynamic, 1)
    for (int64_t b = 0; b < B; ++b) {
      try {
      for (int64_t j = 0; j < H; ++j) state[j] = h0[b * H + j];
      at::Tensor xb = x[b], pb = px_all[b];
      for (int64_t t0 = 0; t0 < Tn; t0 += chunk) {
        const int64_t count = std::min(chunk, Tn - t0);
        at::Tensor pc = pb.narrow(0, t0, count);
        if (bias.has_value())
          at::addmm_out(pc, *bias, xb.narrow(0, t0, count), Wt);
        else
          at::mm_out(pc, xb.narrow(0, t0, count), Wt);
        forward_span<T, LSTM>(pc.data_ptr<T>(), h.data_ptr<T>() + (b * Tn + t0) * H, count, live_steps(steps, b, t0, count),
                              0, H, G, H, state.data());
      }
      } catch (...) {
#pragma omp critical
        error = std::current_exception();
      }
    }
  }
  if (error) std::rethrow_exception(error);
}

template <typename T, bool LSTM>
void run_backward_rows(const at::Tensor& x, const at::Tensor& W, const at::Tensor& px_all, const at::Tensor& h,
                       const T* h0, const at::Tensor& grad_h, const T* grad_last, const int64_t* steps, int64_t chunk,
                       at::Tensor& grad_x, at::Tensor& gW_threads, at::Tensor& gb_threads, T* grad_h0, bool want_x, bool want_b) {
  const int64_t B = x.size(0), Tn = x.size(1), H = h.size(2), G = W.size(0);
  std::exception_ptr error = nullptr;
#pragma omp parallel
  {
    c10::AutoGradMode grad_off(false);
    std::vector<T> carry(H);
    at::Tensor dp = at::empty({chunk, G}, px_all.options());  // this thread's gradient of one block's px
    // groups of rows, each summed in order into its own slot (which thread takes a group does not change
    // the sums: the weight gradient is the same from run to run)
    const int64_t groups = gW_threads.size(0), per = (B + groups - 1) / groups;
#pragma omp for schedule(dynamic, 1)
    for (int64_t grp = 0; grp < groups; ++grp) {
    at::Tensor gW = gW_threads[grp], gb = gb_threads[grp];
    for (int64_t b = grp * per; b < std::min(B, (grp + 1) * per); ++b) {
      try {
      for (int64_t j = 0; j < H; ++j) carry[j] = grad_last[b * H + j];
      at::Tensor xb = x[b];
      const int64_t last = ((Tn - 1) / chunk) * chunk;
      for (int64_t t0 = last; t0 >= 0; t0 -= chunk) {
        const int64_t count = std::min(chunk, Tn - t0);
        at::Tensor dpc = dp.narrow(0, 0, count);
        const T* hb = h.data_ptr<T>() + b * Tn * H;
        backward_span<T, LSTM>(px_all.data_ptr<T>() + (b * Tn + t0) * G, hb + t0 * H, t0 > 0 ? hb + (t0 - 1) * H : h0 + b * H,
                               grad_h.data_ptr<T>() + b * grad_h.stride(0) + t0 * H, dpc.data_ptr<T>(), count,
                               live_steps(steps, b, t0, count), 0, H, G, H, carry.data());
        at::Tensor xc = xb.narrow(0, t0, count);
        gW.addmm_(dpc.t(), xc);  // dW += dpx^T x
        if (want_b) gb.add_(dpc.sum(0));
        if (want_x) {
          at::Tensor gx = grad_x[b].narrow(0, t0, count);
          at::mm_out(gx, dpc, W);  // dx = dpx W
        }
      }
      for (int64_t j = 0; j < H; ++j) grad_h0[b * H + j] = carry[j];
      } catch (...) {
#pragma omp critical
        error = std::current_exception();
      }
    }
    }
  }
  if (error) std::rethrow_exception(error);
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

// The whole run with the projection fused, in one parallel region (run_forward_rows): x (B, T, I), W (G, I),
// bias (G,) or None, h0 (B, H); fills px_all (B, T, G) and h (B, T, H).
void scan_run_forward(const at::Tensor& x, const at::Tensor& W, const c10::optional<at::Tensor>& bias, const at::Tensor& h0,
                      const c10::optional<at::Tensor>& steps, bool lstm, int64_t chunk, at::Tensor px_all, at::Tensor h) {
  TORCH_CHECK(x.dim() == 3 && x.is_contiguous() && W.dim() == 2 && W.size(1) == x.size(2), "x (B, T, I) and W (G, I)");
  TORCH_CHECK(px_all.is_contiguous() && h.is_contiguous() && h0.is_contiguous(), "buffers must be contiguous");
  const int64_t B = x.size(0);
  const int64_t* st = steps_ptr(steps, B);
  at::Tensor Wt = W.t();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "carousel_scan_run_forward", [&] {
    if (lstm)
      run_forward_rows<scalar_t, true>(x, Wt, bias, h0.data_ptr<scalar_t>(), st, px_all, h, chunk);
    else
      run_forward_rows<scalar_t, false>(x, Wt, bias, h0.data_ptr<scalar_t>(), st, px_all, h, chunk);
  });
}

// Its backward: returns grad_x (B, T, I; empty unless want_x), grad_W (G, I), grad_b (G,), grad_h0 (B, H).
std::vector<at::Tensor> scan_run_backward(const at::Tensor& x, const at::Tensor& W, const at::Tensor& px_all,
                                          const at::Tensor& h, const at::Tensor& h0, const at::Tensor& grad_h,
                                          const at::Tensor& grad_last, const c10::optional<at::Tensor>& steps, bool lstm,
                                          int64_t chunk, bool want_x, bool want_b) {
  const int64_t B = x.size(0), Tn = x.size(1), I = x.size(2), G = W.size(0);
  TORCH_CHECK(grad_h.stride(2) == 1 && (Tn <= 1 || grad_h.stride(1) == h.size(2)) && grad_last.is_contiguous(),
              "grad_h must have unit strides over T and H");
  const int64_t* st = steps_ptr(steps, B);
  const int64_t groups = std::min<int64_t>(B, std::max<int64_t>(8, 2 * omp_get_max_threads()));  // rows summed apart
  at::Tensor gW = at::zeros({groups, G, I}, x.options()), gb = at::zeros({groups, G}, x.options());
  at::Tensor grad_x = want_x ? at::empty_like(x) : at::empty({0}, x.options()), grad_h0 = at::empty_like(h0);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "carousel_scan_run_backward", [&] {
    auto run = lstm ? run_backward_rows<scalar_t, true> : run_backward_rows<scalar_t, false>;
    run(x, W, px_all, h, h0.data_ptr<scalar_t>(), grad_h, grad_last.data_ptr<scalar_t>(), st, chunk, grad_x, gW, gb,
        grad_h0.data_ptr<scalar_t>(), want_x, want_b);
  });
  return {grad_x, gW.sum(0), gb.sum(0), grad_h0};
}

}  // namespace

TORCH_LIBRARY(carousel_native, m) {
  m.def("scan_forward(Tensor px, Tensor h0, Tensor? steps, bool lstm, Tensor? h_out=None) -> Tensor");
  m.def("scan_run_forward(Tensor x, Tensor W, Tensor? bias, Tensor h0, Tensor? steps, bool lstm, int chunk, Tensor px_all, "
        "Tensor h) -> ()");
  m.def("scan_run_backward(Tensor x, Tensor W, Tensor px_all, Tensor h, Tensor h0, Tensor grad_h, Tensor grad_last, "
        "Tensor? steps, bool lstm, int chunk, bool want_x, bool want_b) -> Tensor[]");
  m.def("scan_backward(Tensor px, Tensor h, Tensor h0, Tensor grad_h, Tensor grad_last, Tensor? steps, bool lstm, Tensor? grad_px_out=None) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(carousel_native, CPU, m) {
  m.impl("scan_forward", scan_forward);
  m.impl("scan_backward", scan_backward);
  m.impl("scan_run_forward", scan_run_forward);
  m.impl("scan_run_backward", scan_run_backward);
}
