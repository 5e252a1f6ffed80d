r"""Decoding an encoder–decoder: greedy, sampling and batched beam search, all incremental.

Each search calls ``decoder.step(tokens (B,), state, memory) -> (logits (B, V), state, weights (B, S)
or None)`` once per emitted token and carries the state (the prefix is never run again); beam
search also calls ``decoder.reorder_state(state, index)``. ``decoder`` is anything with ``step``,
``reorder_state``, ``start_id``, ``end_id`` and ``pad_id`` (``carousel.models.AttentionDecoder``).
``pad_id`` is never emitted. Every sequence ends at its first ``end_id`` (included in its length)
or after ``max_length`` tokens.

Beam search keeps ``beam_size`` live hypotheses per row (B x beam rows in one batch). At each step
the 2 x beam best extensions of a row are ranked by log-probability; those among the first
``beam_size`` that end with ``end_id`` are set apart as finished, scored with GNMT's length penalty
(Wu et al. 2016, "Google's Neural Machine Translation System", eq. 14, without the coverage term):

.. math::
    s(Y) = \log P(Y \mid X) / lp(Y), \qquad lp(Y) = \frac{(5 + |Y|)^\alpha}{(5 + 1)^\alpha}

and the best ``beam_size`` that do not end continue. A row stops when it holds ``beam_size``
finished hypotheses all scoring at least as well as its best live one (scored as if it ended
now), or at ``max_length``, where its live hypotheses count as finished. The best finished
hypothesis is returned. With ``beam_size=1`` this is greedy decoding exactly.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from .._checks import ShapeError, check_number, check_size, shape_str
from ..models.draw import check_sampling, next_token
from ..state import map_state


class Hypotheses(NamedTuple):
    """``tokens`` (B, L) ids, the end token included and ``pad_id`` after it; ``lengths`` (B,) int64 on
    the CPU, counting the end token (``max_length`` when it never ended); ``scores`` (B,) the log-probability in nats (beam
    search: divided by the length penalty); ``attention`` (B, L, S) the weights of each emitted token
    (0 past a length), or None when the decoder gives none."""

    tokens: Tensor
    lengths: Tensor
    scores: Tensor
    attention: Tensor | None


def gnmt_length_penalty(length: int | Tensor, alpha: float) -> Any:
    """GNMT's ``lp(Y) = ((5 + |Y|) / 6) ** alpha`` (Wu et al. 2016, eq. 14); 1 for ``alpha = 0``."""
    return ((5 + length) / 6) ** alpha


def _check_decoder(decoder: Any, beam: bool = False) -> None:
    need = ("step", "start_id", "end_id", "pad_id") + (("reorder_state",) if beam else ())
    missing = [n for n in need if not hasattr(decoder, n)]
    if missing:
        raise TypeError(f"expected a decoder with step, start_id, end_id, pad_id{', reorder_state' if beam else ''} "
                        f"(an AttentionDecoder), got {type(decoder).__name__} without {', '.join(missing)}")


def _batch_size(state: Any) -> int:
    sizes: list[int] = []
    map_state(lambda t: sizes.append(t.shape[0]) or t, state, keep_others=True)
    if not sizes:
        raise ValueError("expected a decoder state holding at least one tensor (B, ...), got none")
    return sizes[0]


class _EvalMode:
    """The decoder in evaluation mode (no dropout) and without gradients for the block; restored after."""

    def __init__(self, decoder: Any) -> None:
        self.module = decoder if isinstance(decoder, nn.Module) else None
        self.grad = torch.no_grad()

    def __enter__(self) -> None:
        self.was = self.module.training if self.module is not None else None
        if self.module is not None:
            self.module.eval()
        self.grad.__enter__()

    def __exit__(self, *exc: Any) -> None:
        self.grad.__exit__(*exc)
        if self.module is not None:
            self.module.train(self.was)


def _run(decoder: Any, state: Any, memory: Any, max_length: int, choose) -> Hypotheses:
    """Greedy or sampled decoding: ``choose(logits (B, V)) -> (B,)`` picks each next token."""
    _check_decoder(decoder)
    L = check_size(max_length, "max_length")
    with _EvalMode(decoder):
        B = _batch_size(state)
        prev = None
        tokens, maps, score = [], [], None
        done = None
        lengths = torch.full((B,), L, dtype=torch.long)
        for t in range(L):
            if prev is None:
                prev = torch.full((B,), decoder.start_id, dtype=torch.long, device=_device(state))
            z, state, w = decoder.step(prev, state, memory)  # (B, V)
            logp = torch.log_softmax(z.float(), dim=-1)
            logp[:, decoder.pad_id] = float("-inf")
            c = choose(z).to(z.device)  # (B,)
            if done is None:
                done = torch.zeros(B, dtype=torch.bool, device=z.device)
                score = torch.zeros(B, dtype=torch.float32, device=z.device)
            c = torch.where(done, torch.full_like(c, decoder.pad_id), c)
            score = score + torch.where(done, torch.zeros_like(score), logp.gather(1, c.unsqueeze(1)).squeeze(1))
            tokens.append(c)
            maps.append(None if w is None else w * (~done).unsqueeze(1).to(w.dtype))
            ended = (c == decoder.end_id) & ~done
            lengths[ended.cpu()] = t + 1
            done = done | ended
            if bool(done.all()):
                break
            prev = c
    attention = None if maps[0] is None else torch.stack(maps, dim=1)  # (B, L', S)
    return Hypotheses(torch.stack(tokens, dim=1), lengths, score, attention)


def _device(state: Any) -> torch.device:
    devices: list[torch.device] = []
    map_state(lambda t: devices.append(t.device) or t, state, keep_others=True)
    return devices[0] if devices else torch.device("cpu")


def greedy_decode(decoder: Any, state: Any, memory: Any, *, max_length: int) -> Hypotheses:
    """The most likely token at every step (never ``pad_id``), from ``state`` (B rows) until every row
    emitted ``end_id`` or ``max_length`` tokens. ``scores``: the log-probability of each sequence."""

    def choose(z: Tensor) -> Tensor:
        z = z.float().clone()
        z[:, decoder.pad_id] = float("-inf")
        return z.argmax(dim=-1)

    return _run(decoder, state, memory, max_length, choose)


def sample_decode(decoder: Any, state: Any, memory: Any, *, max_length: int, temperature: float = 1.0, top_k: int = 0,
                  top_p: float = 1.0, generator: torch.Generator | None = None) -> Hypotheses:
    """Each token drawn by ``carousel.models.draw.next_token``: from ``softmax(z / temperature)`` over the
    ``top_k`` largest logits (0: all) and the nucleus ``top_p`` (1: all), never ``pad_id``;
    ``temperature = 0`` is greedy. ``scores``: the log-probability under the model (temperature 1).
    Raises ``TypeError``/``ValueError`` for options of the wrong type or range."""
    check_sampling(temperature, top_k, top_p)
    return _run(decoder, state, memory, max_length, lambda z: next_token(
        z.cpu(), temperature=temperature, top_k=top_k, top_p=top_p, banned=decoder.pad_id, generator=generator))


class StepDecoder(nn.Module):
    """A model with ``step(inputs (B, T), state) -> (logits (B, T, V), state)`` and ``start_id``/``end_id``/
    ``pad_id`` (``carousel.models.SequenceGenerator``) as a decoder for these searches: one token per
    step, no memory (pass ``memory=None``), the state's rows reordered by ``index_select``.
    ``beam_search(StepDecoder(gen), gen.initial_state(cond), None, beam_size=4)``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        missing = [n for n in ("step", "start_id", "end_id", "pad_id") if not hasattr(model, n)]
        if missing:
            raise TypeError(f"expected a model with step(inputs, state), start_id, end_id and pad_id, got "
                            f"{type(model).__name__} without {', '.join(missing)}")
        self.model = model
        self.start_id, self.end_id, self.pad_id = model.start_id, model.end_id, model.pad_id

    def step(self, tokens: Tensor, state: Any, memory: Any = None) -> tuple[Tensor, Any, None]:
        if memory is not None:
            raise ValueError("this decoder attends to nothing; expected memory=None")
        z, state = self.model.step(tokens.unsqueeze(1), state)  # (B, 1, V)
        return z[:, 0], state, None

    def reorder_state(self, state: Any, index: Tensor) -> Any:
        return map_state(lambda t: t.index_select(0, index.to(t.device)), state)


def _check_memory_rows(memory: Any, B: int) -> None:
    """``ShapeError`` unless every tensor of ``memory`` has the state's ``B`` rows: checked before the
    beam repeats them, so the message names the shapes the caller gave, not B x beam."""
    found: list[Tensor] = []
    map_state(lambda t: found.append(t) or t, memory, keep_others=True)
    for t in found:
        if t.dim() == 0 or t.shape[0] != B:
            raise ShapeError(f"expected memory tensors of {B} rows, one per row of the decoder state (B={B}), got shape {shape_str(t.shape)}")


def _expand(memory: Any, k: int) -> Any:
    """Every tensor of ``memory`` with each row repeated ``k`` times in place: (B, ...) -> (B k, ...)."""
    return map_state(lambda t: t.repeat_interleave(k, dim=0), memory, keep_others=True)


def beam_search(decoder: Any, state: Any, memory: Any, *, beam_size: int = 5, max_length: int = 50,
                length_penalty: float = 0.6) -> Hypotheses:
    """The best hypothesis per row found by a beam of ``beam_size`` (see the module docstring);
    ``length_penalty`` is GNMT's alpha (0: plain log-probability). ``scores`` are the length-normalised
    scores. Raises ``TypeError``/``ValueError`` for a decoder without the needed methods or bad options."""
    _check_decoder(decoder, beam=True)
    K = check_size(beam_size, "beam_size")
    L = check_size(max_length, "max_length")
    alpha = check_number(length_penalty, "length_penalty", low=0.0)
    lp = gnmt_length_penalty
    end, pad = decoder.end_id, decoder.pad_id
    with _EvalMode(decoder):
        B = _batch_size(state)
        device = _device(state)
        rows = torch.arange(B, device=device).repeat_interleave(K)  # (B K,)
        _check_memory_rows(memory, B)
        state = decoder.reorder_state(state, rows)
        memory = _expand(memory, K)
        scores = torch.full((B, K), float("-inf"), device=device)
        scores[:, 0] = 0.0  # one live hypothesis per row at first
        history = torch.zeros(B * K, 0, dtype=torch.long, device=device)  # (B K, t)
        attn_history: Tensor | None = None  # (B K, t, S)
        finished: list[list[tuple[float, Tensor, Tensor | None]]] = [[] for _ in range(B)]
        done = [False] * B
        prev = torch.full((B * K,), decoder.start_id, dtype=torch.long, device=device)
        for t in range(L):
            z, state, w = decoder.step(prev, state, memory)  # (B K, V)
            logp = torch.log_softmax(z.float(), dim=-1)
            logp[:, pad] = float("-inf")
            V = logp.shape[-1]
            cand = (scores.reshape(B * K, 1) + logp).reshape(B, K * V)  # (B, K V)
            n = min(2 * K, K * V)
            top, index = cand.topk(n, dim=1)  # (B, 2K), best first
            beam, token = index // V, index % V  # (B, 2K)
            source = (torch.arange(B, device=device).unsqueeze(1) * K + beam)  # (B, 2K) rows of B K
            is_end = token == end
            # finished: end tokens among the first K candidates with a finite score
            ranks = torch.arange(n, device=device).unsqueeze(0)
            new_done = (is_end & (ranks < K) & torch.isfinite(top)).nonzero().tolist()
            for b, j in new_done:
                if done[b]:
                    continue
                r = int(source[b, j])
                seq = torch.cat([history[r], token[b, j].view(1)])  # (t+1,)
                att = None
                if w is not None:
                    step_w = w[r].unsqueeze(0)  # (1, S)
                    att = step_w if attn_history is None else torch.cat([attn_history[r], step_w])  # (t+1, S)
                finished[b].append((float(top[b, j]) / lp(t + 1, alpha), seq, att))
            # live: the K best candidates that do not end
            order = torch.sort((is_end | ~torch.isfinite(top)).to(torch.long) * n + ranks, dim=1).indices[:, :K]  # (B, K)
            scores = top.gather(1, order)  # (B, K)
            src = source.gather(1, order).reshape(-1)  # (B K,)
            tok = token.gather(1, order).reshape(-1)  # (B K,)
            history = torch.cat([history.index_select(0, src), tok.unsqueeze(1)], dim=1)
            if w is not None:
                step_w = w.index_select(0, src).unsqueeze(1)  # (B K, 1, S)
                attn_history = step_w if attn_history is None else torch.cat([attn_history.index_select(0, src), step_w], dim=1)
            state = decoder.reorder_state(state, src)
            prev = tok
            best_live = (scores.max(dim=1).values / lp(t + 1, alpha)).tolist()  # (B,)
            for b in range(B):
                if not done[b] and len(finished[b]) >= K:
                    kth = sorted((f[0] for f in finished[b]), reverse=True)[K - 1]
                    done[b] = kth >= best_live[b]
            if all(done):
                break
        for b in range(B):
            if not done[b]:  # max_length reached: the live hypotheses count as finished
                for k in range(K):
                    s = float(scores[b, k])
                    if s > float("-inf"):
                        r = b * K + k
                        finished[b].append((s / lp(history.shape[1], alpha), history[r],
                                            None if attn_history is None else attn_history[r]))
    best = [max(f, key=lambda x: x[0]) for f in finished]
    lengths = torch.tensor([h[1].numel() for h in best], dtype=torch.long)
    Lmax = int(lengths.max())
    tokens = torch.full((B, Lmax), pad, dtype=torch.long, device=device)
    attention = None
    if best[0][2] is not None:
        attention = torch.zeros(B, Lmax, best[0][2].shape[-1], dtype=best[0][2].dtype, device=device)
    for b, (_, seq, att) in enumerate(best):
        tokens[b, : seq.numel()] = seq
        if attention is not None:
            attention[b, : seq.numel()] = att
    return Hypotheses(tokens, lengths, torch.tensor([h[0] for h in best], device=device), attention)
