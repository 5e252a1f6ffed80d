// carousel's CPU kernel for a whole LSTM run with its backward through time (carousel.runners.native),
// for the LSTM cells the fused kernels cannot run: layer normalisation (Ba, Kiros & Hinton 2016,
// "Layer Normalization", sec. 3.1 applied to the LSTM as in their eq. 20-22: of the recurrent
// product and of c_t) and a recurrent-dropout mask on h_{t-1}. The same step, in the same letters,
// as carousel/cells/lstm_explicit.py (LSTMExplicitStep), whose written-out derivative it follows:
//
//   r = (h_{t-1} * m) W_hh^T,  a = px_t + (LN_hh(r) or r),  i, f, g, o = s(a_i), s(a_f), tanh(a_g), s(a_o)
//   c_t = f c_{t-1} + i g,  k = tanh(LN_c(c_t) or c_t),  h_t = o k
//
// The time loop runs here, not in Python: per step one matrix product (ATen's) and one pass over the
// batch rows for everything element-wise, forward and backward. The weight gradients (dW_hh and the
// layer norms' gains and biases) are left to one product / reduction over all steps in Python.
// Rows past their length (steps[b]) keep their state, output 0 and pass gradients straight through.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/mul.h>
#include <ATen/ops/zeros.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>
#include <c10/core/GradMode.h>
#include <omp.h>

#include <cstdlib>
#include <exception>
#include <string>

#include "common.h"

namespace {

using namespace carousel_native;

// v W^T by oneDNN's linear with a weight prepacked in Python (torch.ops.mkldnn._reorder_linear_weight):
// on CPU about 1.5x faster than the BLAS product for a large recurrent layer (see right_product in
// carousel/cells/lstm_explicit.py, which chooses when to pack)
at::Tensor packed_linear(const at::Tensor& v, const at::Tensor& packed) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("mkldnn::_linear_pointwise", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                                         c10::string_view, c10::List<std::optional<c10::Scalar>>,
                                         std::optional<c10::string_view>)>();
  return op.call(v, packed, std::nullopt, "none", c10::List<std::optional<c10::Scalar>>(), std::nullopt);
}

// v M (M = W^T forward, W backward), by its prepacked form when given
at::Tensor product(const at::Tensor& v, const at::Tensor& M, const c10::optional<at::Tensor>& packed) {
  return packed.has_value() ? packed_linear(v, *packed) : at::mm(v, M);
}

// How many chunks of batch rows a run is cut into when it runs in one parallel region (each chunk all
// steps on its own, handed out to whichever thread is free: fewer regions to wait for on a busy machine):
// two per thread, with at least two rows each; 1 = step by step instead.
inline int64_t row_chunks(int64_t B, int64_t row_work) {
  // opt-in (CAROUSEL_NATIVE_ONE_REGION=1): on a quiet machine the per-step products of the whole batch with
  // oneDNN's prepacked weight are faster (layer-norm LSTM 1.34 x torch.nn.LSTM against 1.66 x), on a busy
  // one this is (866 against 2,648 ms); see README "A busy machine"
  static const bool on = std::getenv("CAROUSEL_NATIVE_ONE_REGION") && std::string(std::getenv("CAROUSEL_NATIVE_ONE_REGION")) == "1";
  const int64_t threads = omp_get_max_threads();
  if (!on || threads < 2 || row_work < (int64_t(1) << 15)) return 1;
  return std::min<int64_t>(2 * threads, B / 2) >= threads ? std::min<int64_t>(2 * threads, B / 2) : 1;
}

// f(i) for i in [0, n) in one OpenMP region, dynamic schedule; grad mode off in every thread (it is per
// thread) and an exception carried out of the region.
template <typename F>
void in_one_region(int64_t n, const F& f) {
  std::exception_ptr error = nullptr;
#pragma omp parallel
  {
    c10::AutoGradMode grad_off(false);
#pragma omp for schedule(dynamic, 1)
    for (int64_t i = 0; i < n; ++i) {
      try {
        f(i);
      } catch (...) {
#pragma omp critical
        error = std::current_exception();
      }
    }
  }
  if (error) std::rethrow_exception(error);
}

struct Options {
  bool ln = false, mask = false;
  double eps_hh = 1e-5, eps_c = 1e-5;
};

// mean and 1/std of x[0:n] (biased variance, as layer normalisation uses)
template <typename T>
inline void moments(const T* x, int64_t n, double eps, T& mu, T& rs) {
  T s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t j = 0; j < n; ++j) s += x[j];
  mu = s / T(n);
  T v = 0;
#pragma omp simd reduction(+ : v)
  for (int64_t j = 0; j < n; ++j) v += (x[j] - mu) * (x[j] - mu);
  rs = T(1) / std::sqrt(v / T(n) + T(eps));
}

// d = layer norm's input gradient for output gradient dy (before the gain), x-hat = (x - mu) rs:
// dx = rs (dy g - mean(dy g) - x-hat mean(dy g x-hat))
template <typename T>
inline void ln_backward(const T* dy, const T* x, const T* gain, T mu, T rs, int64_t n, T* dx) {
  T m1 = 0, m2 = 0;
#pragma omp simd reduction(+ : m1, m2)
  for (int64_t j = 0; j < n; ++j) {
    const T d = dy[j] * gain[j];
    m1 += d;
    m2 += d * (x[j] - mu) * rs;
  }
  m1 /= T(n);
  m2 /= T(n);
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) dx[j] = rs * (dy[j] * gain[j] - m1 - (x[j] - mu) * rs * m2);
}

template <typename T>
void forward_rows(const Options& op, int64_t t, int64_t Tn, int64_t B, int64_t H, const T* px, const T* r_all, T* R,
                  const T* g_hh, const T* b_hh, const T* g_c, const T* b_c, const int64_t* steps, T* A, T* C, T* K,
                  T* stats, T* hs_out, T* h_cur, T* c_cur) {
  const int64_t G = 4 * H;
  const bool ln = op.ln;
  at::parallel_for(0, B, grain(B, B * G), [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      T* __restrict a = A + b * G;
      T* __restrict c = C + b * H;
      T* __restrict k = K + b * H;
      T* st = stats + b * 4;
      T* __restrict out = hs_out + b * H;
      if (steps && t >= steps[b]) {  // finished: the state stays, the output is 0, the saved rows are 0
        for (int64_t j = 0; j < G; ++j) a[j] = T(0);
        if (R)
          for (int64_t j = 0; j < G; ++j) R[b * G + j] = T(0);
        for (int64_t j = 0; j < H; ++j) c[j] = k[j] = out[j] = T(0);
        st[0] = st[1] = st[2] = st[3] = T(0);
        continue;
      }
      const T* __restrict p = px + (b * Tn + t) * G;
      const T* __restrict r = r_all + b * G;
      if (ln) {
        T mu, rs;
        moments(r, G, op.eps_hh, mu, rs);
        st[0] = mu;
        st[1] = rs;
        if (R) {
          T* __restrict keep_r = R + b * G;
#pragma omp simd
          for (int64_t j = 0; j < G; ++j) keep_r[j] = r[j];
        }
#pragma omp simd
        for (int64_t j = 0; j < G; ++j) a[j] = p[j] + (r[j] - mu) * rs * g_hh[j] + b_hh[j];
      } else {
#pragma omp simd
        for (int64_t j = 0; j < G; ++j) a[j] = p[j] + r[j];
      }
      T* __restrict cc = c_cur + b * H;
#pragma omp simd
      for (int64_t j = 0; j < H; ++j) {
        const T i = sigmoid(a[j]), f = sigmoid(a[H + j]), g = tanh_(a[2 * H + j]), o = sigmoid(a[3 * H + j]);
        a[j] = i;
        a[H + j] = f;
        a[2 * H + j] = g;
        a[3 * H + j] = o;
        c[j] = f * cc[j] + i * g;
      }
      T* __restrict hc = h_cur + b * H;
      if (ln) {
        T mu, rs;
        moments(c, H, op.eps_c, mu, rs);
        st[2] = mu;
        st[3] = rs;
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) k[j] = tanh_((c[j] - mu) * rs * g_c[j] + b_c[j]);
      } else {
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) k[j] = tanh_(c[j]);
      }
#pragma omp simd
      for (int64_t j = 0; j < H; ++j) {
        const T h = a[3 * H + j] * k[j];
        out[j] = h;
        hc[j] = h;
        cc[j] = c[j];
      }
    }
  });
}

// Fills the buffers hs (T+1, B, H), A (S, B, 4H), C, K (S, B, H), R (T, B, 4H; only with layer norm and a
// backward to come, else empty) and stats (S, B, 4), S = T when a backward follows, else 2 (alternating
// slots); the caller owns them (and reuses them between runs). Returns the final h and c (B, H).
std::vector<at::Tensor> lstm_forward(const at::Tensor& px, const at::Tensor& h0, const at::Tensor& c0, const at::Tensor& W,
                                     const c10::optional<at::Tensor>& h_mask, const c10::optional<at::Tensor>& g_hh,
                                     const c10::optional<at::Tensor>& b_hh, const c10::optional<at::Tensor>& g_c,
                                     const c10::optional<at::Tensor>& b_c, double eps_hh, double eps_c,
                                     const c10::optional<at::Tensor>& steps, const c10::optional<at::Tensor>& W_packed,
                                     at::Tensor hs, at::Tensor A, at::Tensor C, at::Tensor K, at::Tensor R, at::Tensor stats) {
  TORCH_CHECK(px.dim() == 3 && px.is_contiguous() && px.device().is_cpu(), "px must be a contiguous CPU (B, T, 4H) tensor");
  const int64_t B = px.size(0), Tn = px.size(1), H = h0.size(1), G = 4 * H;
  TORCH_CHECK(px.size(2) == G && W.size(0) == G && W.size(1) == H, "px (B, T, 4H) and W (4H, H) must agree with h0 (B, H)");
  TORCH_CHECK(h0.sizes() == c0.sizes() && h0.size(0) == B, "h0 and c0 must be (B, H)");
  const int64_t slots = A.size(0);
  TORCH_CHECK((slots == Tn || slots == 2) && A.size(1) == B && A.size(2) == G && C.sizes() == K.sizes() &&
                  C.size(0) == slots && hs.size(0) == Tn + 1 && stats.size(0) == slots && stats.size(2) == 4,
              "buffers of the wrong shape");
  Options op;
  op.ln = g_hh.has_value();
  op.mask = h_mask.has_value();
  op.eps_hh = eps_hh;
  op.eps_c = eps_c;
  const bool keep_r = op.ln && R.numel() > 0;
  TORCH_CHECK(!keep_r || (R.size(0) == Tn && R.size(2) == G), "R must be (T, B, 4H)");
  at::Tensor h_cur = h0.contiguous().clone(), c_cur = c0.contiguous().clone();
  hs[0].copy_(h_cur);
  at::Tensor Wt = W.t(), hm = op.mask ? at::empty({B, H}, px.options()) : at::Tensor();
  const int64_t* st = steps.has_value() ? steps->data_ptr<int64_t>() : nullptr;
  const int64_t chunks = row_chunks(B, B * G);
  AT_DISPATCH_FLOATING_TYPES(px.scalar_type(), "carousel_lstm_forward", [&] {
    const scalar_t* ghh = op.ln ? g_hh->data_ptr<scalar_t>() : nullptr;
    const scalar_t* bhh = op.ln ? b_hh->data_ptr<scalar_t>() : nullptr;
    const scalar_t* gc = op.ln ? g_c->data_ptr<scalar_t>() : nullptr;
    const scalar_t* bc = op.ln ? b_c->data_ptr<scalar_t>() : nullptr;
    if (chunks > 1) {  // the whole run in one parallel region: each chunk of rows runs every step on its own
      const int64_t rows = (B + chunks - 1) / chunks;
      in_one_region(chunks, [&](int64_t ci) {
        const int64_t b0 = ci * rows, nb = std::min(B, b0 + rows) - b0;
        if (nb <= 0) return;
        at::Tensor hc = h_cur.narrow(0, b0, nb), mask = op.mask ? h_mask->narrow(0, b0, nb) : at::Tensor();
        for (int64_t t = 0; t < Tn; ++t) {
          const int64_t s = slots == Tn ? t : t % 2;
          const at::Tensor r = at::mm(op.mask ? at::mul(hc, mask) : hc, Wt);  // (nb, 4H), one thread
          forward_rows<scalar_t>(op, t, Tn, nb, H, px.data_ptr<scalar_t>() + b0 * Tn * G, r.data_ptr<scalar_t>(),
                                 keep_r ? R[t].data_ptr<scalar_t>() + b0 * G : nullptr, ghh, bhh, gc, bc, st ? st + b0 : nullptr,
                                 A[s].data_ptr<scalar_t>() + b0 * G, C[s].data_ptr<scalar_t>() + b0 * H,
                                 K[s].data_ptr<scalar_t>() + b0 * H, stats[s].data_ptr<scalar_t>() + b0 * 4,
                                 hs[t + 1].data_ptr<scalar_t>() + b0 * H, h_cur.data_ptr<scalar_t>() + b0 * H,
                                 c_cur.data_ptr<scalar_t>() + b0 * H);
        }
      });
      return;
    }
    for (int64_t t = 0; t < Tn; ++t) {
      const int64_t s = slots == Tn ? t : t % 2;
      if (op.mask) at::mul_out(hm, h_cur, *h_mask);
      const at::Tensor r = product(op.mask ? hm : h_cur, Wt, W_packed);  // (B, 4H)
      forward_rows<scalar_t>(op, t, Tn, B, H, px.data_ptr<scalar_t>(), r.data_ptr<scalar_t>(),
                             keep_r ? R[t].data_ptr<scalar_t>() : nullptr, ghh, bhh, gc, bc, st,
                             A[s].data_ptr<scalar_t>(), C[s].data_ptr<scalar_t>(), K[s].data_ptr<scalar_t>(),
                             stats[s].data_ptr<scalar_t>(), hs[t + 1].data_ptr<scalar_t>(), h_cur.data_ptr<scalar_t>(),
                             c_cur.data_ptr<scalar_t>());
    }
  });
  return {h_cur, c_cur};
}

template <typename T>
void backward_rows(const Options& op, int64_t t, int64_t B, int64_t H, const T* grad_out, const T* A, const T* C,
                   const T* C_prev, const T* K, const T* R, const T* stats, const T* g_hh, const T* g_c,
                   const int64_t* steps, const T* dh_in, T* dc_carry, T* dA, T* dR, T* acc, int64_t slot = -1) {
  const int64_t G = 4 * H;
  const bool ln = op.ln;
  at::parallel_for(0, B, grain(B, B * G), [&](int64_t begin, int64_t end) {
    std::vector<T> dl(H), dcl(H);
    // this thread's sums over steps and rows of the layer norms' gain and bias gradients: [g_hh, b_hh, g_c, b_c]
    // slot: the chunk of rows (one region for the run), else this thread's number (a static split): either
    // way the same rows are summed in the same order from run to run
    T* __restrict sums = acc + (slot >= 0 ? slot : at::get_thread_num()) * (2 * G + 2 * H);
    for (int64_t b = begin; b < end; ++b) {
      T* __restrict da = dA + b * G;
      T* dr = dR + b * G;
      if (steps && t >= steps[b]) {  // finished: nothing reaches px or W; dc passes through unchanged
        for (int64_t j = 0; j < G; ++j) da[j] = T(0);
        if (dr != da)
          for (int64_t j = 0; j < G; ++j) dr[j] = T(0);
        continue;
      }
      const T* __restrict a = A + b * G;
      const T* __restrict c = C + b * H;
      const T* __restrict cp = C_prev + b * H;
      const T* __restrict k = K + b * H;
      const T* __restrict go = grad_out + b * H;
      const T* __restrict dhc = dh_in + b * H;
      T* __restrict dcc = dc_carry + b * H;
      const T* st = stats + b * 4;
#pragma omp simd
      for (int64_t j = 0; j < H; ++j) {
        const T dh = go[j] + dhc[j], kk = k[j], o = a[3 * H + j];
        da[3 * H + j] = dh * kk * o * (T(1) - o);  // da_o
        dl[j] = dh * o * (T(1) - kk * kk);         // gradient reaching LN_c(c) (or c)
      }
      if (ln) {
        const T mu = st[2], rs = st[3];
        T* __restrict sg = sums + 2 * G;
        T* __restrict sb = sums + 2 * G + H;
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) {
          sg[j] += dl[j] * (c[j] - mu) * rs;
          sb[j] += dl[j];
        }
        ln_backward(dl.data(), c, g_c, mu, rs, H, dcl.data());
      } else {
        for (int64_t j = 0; j < H; ++j) dcl[j] = dl[j];
      }
#pragma omp simd
      for (int64_t j = 0; j < H; ++j) {
        const T dc = dcc[j] + dcl[j], i = a[j], f = a[H + j], g = a[2 * H + j];
        da[j] = dc * g * i * (T(1) - i);
        da[H + j] = dc * cp[j] * f * (T(1) - f);
        da[2 * H + j] = dc * i * (T(1) - g * g);
        dcc[j] = dc * f;
      }
      if (ln) {
        const T* __restrict r = R + b * G;
        const T mu = st[0], rs = st[1];
        T* __restrict sg = sums;
        T* __restrict sb = sums + G;
#pragma omp simd
        for (int64_t j = 0; j < G; ++j) {
          sg[j] += da[j] * (r[j] - mu) * rs;
          sb[j] += da[j];
        }
        ln_backward(da, r, g_hh, mu, rs, G, dr);
      }
    }
  });
}

// grad_out (T, B, H) time-major. Returns dA (T, B, 4H), the gradient of px; dR, the gradient of the
// recurrent products r (dR_buffer filled, with layer norm; dA itself without); dh0, dc0; and with layer
// norm the gradients of g_hh, b_hh, g_c, b_c (summed over all steps and rows).
std::vector<at::Tensor> lstm_backward(const at::Tensor& grad_out, const at::Tensor& grad_hT, const at::Tensor& grad_cT,
                                      const at::Tensor& c0, const at::Tensor& W, const at::Tensor& A, const at::Tensor& C,
                                      const at::Tensor& K, const at::Tensor& R, const at::Tensor& stats,
                                      const c10::optional<at::Tensor>& h_mask, const c10::optional<at::Tensor>& g_hh,
                                      const c10::optional<at::Tensor>& g_c, const c10::optional<at::Tensor>& steps,
                                      const c10::optional<at::Tensor>& Wt_packed, at::Tensor dR_buffer) {
  const int64_t Tn = A.size(0), B = A.size(1), G = A.size(2), H = G / 4;
  TORCH_CHECK(grad_out.is_contiguous() && grad_out.size(0) == Tn && grad_out.size(1) == B && grad_out.size(2) == H,
              "grad_out must be a contiguous (T, B, H) tensor");
  Options op;
  op.ln = g_hh.has_value();
  op.mask = h_mask.has_value();
  TORCH_CHECK(!op.ln || (R.size(0) == Tn && dR_buffer.sizes() == A.sizes()), "layer norm needs R and dR_buffer (T, B, 4H)");
  auto o = A.options();
  at::Tensor dA = at::empty({Tn, B, G}, o), dR = op.ln ? dR_buffer : dA;
  const int64_t width = 2 * G + 2 * H, chunks = row_chunks(B, B * G);
  at::Tensor acc = at::zeros({op.ln ? std::max<int64_t>(at::get_num_threads(), chunks) : 0, width}, o);
  at::Tensor dh = grad_hT.contiguous().clone(), dc = grad_cT.contiguous().clone(), c0c = c0.contiguous();
  const int64_t* st = steps.has_value() ? steps->data_ptr<int64_t>() : nullptr;
  AT_DISPATCH_FLOATING_TYPES(A.scalar_type(), "carousel_lstm_backward", [&] {
    const scalar_t* ghh = op.ln ? g_hh->data_ptr<scalar_t>() : nullptr;
    const scalar_t* gc = op.ln ? g_c->data_ptr<scalar_t>() : nullptr;
    if (chunks > 1) {  // as the forward: each chunk of rows runs every step back on its own
      const int64_t rows = (B + chunks - 1) / chunks;
      in_one_region(chunks, [&](int64_t ci) {
        const int64_t b0 = ci * rows, nb = std::min(B, b0 + rows) - b0;
        if (nb <= 0) return;
        at::Tensor dh_c = dh.narrow(0, b0, nb).clone(), mask = op.mask ? h_mask->narrow(0, b0, nb) : at::Tensor();
        for (int64_t t = Tn - 1; t >= 0; --t) {
          backward_rows<scalar_t>(op, t, nb, H, grad_out[t].data_ptr<scalar_t>() + b0 * H, A[t].data_ptr<scalar_t>() + b0 * G,
                                  C[t].data_ptr<scalar_t>() + b0 * H, (t > 0 ? C[t - 1] : c0c).data_ptr<scalar_t>() + b0 * H,
                                  K[t].data_ptr<scalar_t>() + b0 * H, op.ln ? R[t].data_ptr<scalar_t>() + b0 * G : nullptr,
                                  stats[t].data_ptr<scalar_t>() + b0 * 4, ghh, gc, st ? st + b0 : nullptr,
                                  dh_c.data_ptr<scalar_t>(), dc.data_ptr<scalar_t>() + b0 * H,
                                  dA[t].data_ptr<scalar_t>() + b0 * G, dR[t].data_ptr<scalar_t>() + b0 * G,
                                  op.ln ? acc.data_ptr<scalar_t>() : nullptr, ci);
          at::Tensor dh_next = at::mm(dR[t].narrow(0, b0, nb), W);  // (nb, H), one thread
          if (op.mask) dh_next.mul_(mask);
          if (st) {
            scalar_t* dn = dh_next.data_ptr<scalar_t>();
            const scalar_t* d = dh_c.data_ptr<scalar_t>();
            for (int64_t b = 0; b < nb; ++b)
              if (t >= st[b0 + b])
                for (int64_t j = 0; j < H; ++j) dn[b * H + j] = d[b * H + j];
          }
          dh_c = dh_next;
        }
        dh.narrow(0, b0, nb).copy_(dh_c);
      });
      return;
    }
    for (int64_t t = Tn - 1; t >= 0; --t) {
      backward_rows<scalar_t>(op, t, B, H, grad_out[t].data_ptr<scalar_t>(), A[t].data_ptr<scalar_t>(),
                              C[t].data_ptr<scalar_t>(), (t > 0 ? C[t - 1] : c0c).data_ptr<scalar_t>(),
                              K[t].data_ptr<scalar_t>(), op.ln ? R[t].data_ptr<scalar_t>() : nullptr,
                              stats[t].data_ptr<scalar_t>(), ghh, gc, st, dh.data_ptr<scalar_t>(),
                              dc.data_ptr<scalar_t>(), dA[t].data_ptr<scalar_t>(), dR[t].data_ptr<scalar_t>(),
                              op.ln ? acc.data_ptr<scalar_t>() : nullptr);
      at::Tensor dh_next = product(dR[t], W, Wt_packed);  // dR W (= dR (W^T)^T): (B, H)
      if (op.mask) dh_next.mul_(*h_mask);
      if (st) {  // finished rows: h's gradient passes through (their dR rows are 0, so the product gave 0)
        scalar_t* dn = dh_next.data_ptr<scalar_t>();
        const scalar_t* d = dh.data_ptr<scalar_t>();
        for (int64_t b = 0; b < B; ++b)
          if (t >= st[b])
            for (int64_t j = 0; j < H; ++j) dn[b * H + j] = d[b * H + j];
      }
      dh = dh_next;
    }
  });
  std::vector<at::Tensor> out{dA, dR, dh, dc};
  if (op.ln) {
    at::Tensor total = acc.sum(0);  // (2G + 2H,)
    out.push_back(total.narrow(0, 0, G));
    out.push_back(total.narrow(0, G, G));
    out.push_back(total.narrow(0, 2 * G, H));
    out.push_back(total.narrow(0, 2 * G + H, H));
  }
  return out;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(carousel_native, m) {
  m.def("lstm_forward(Tensor px, Tensor h0, Tensor c0, Tensor W, Tensor? h_mask, Tensor? g_hh, Tensor? b_hh, Tensor? g_c, "
        "Tensor? b_c, float eps_hh, float eps_c, Tensor? steps, Tensor? W_packed, Tensor hs, Tensor A, "
        "Tensor C, Tensor K, Tensor R, Tensor stats) -> Tensor[]");
  m.def("lstm_backward(Tensor grad_out, Tensor grad_hT, Tensor grad_cT, Tensor c0, Tensor W, Tensor A, Tensor C, Tensor K, "
        "Tensor R, Tensor stats, Tensor? h_mask, Tensor? g_hh, Tensor? g_c, Tensor? steps, Tensor? Wt_packed, "
        "Tensor dR_buffer) -> Tensor[]");
}

TORCH_LIBRARY_IMPL(carousel_native, CPU, m) {
  m.impl("lstm_forward", lstm_forward);
  m.impl("lstm_backward", lstm_backward);
}

// a prepacked oneDNN weight among the arguments makes the dispatcher look for this key
TORCH_LIBRARY_IMPL(carousel_native, MkldnnCPU, m) {
  m.impl("lstm_forward", lstm_forward);
  m.impl("lstm_backward", lstm_backward);
}
