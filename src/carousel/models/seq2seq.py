r"""Sequence to sequence: an encoder reads the source, a bridge sets the decoder's initial state, and an
attention decoder writes the target one token at a time.

The decoder (Luong, Pham & Manning 2015, "Effective Approaches to Attention-based Neural Machine
Translation", section 3), for target tokens :math:`y_0 = \text{start}, y_1, \dots` and the encoder's
outputs :math:`k_1, \dots, k_S` (the memory):

.. math::
    u_t &= [E[y_{t-1}];\ \tilde h_{t-1}] \quad\text{(input feeding, section 3.3; } \tilde h_0 = 0)
           \quad\text{or}\quad u_t = E[y_{t-1}] \\
    h_t, s_t &= \text{stack}(u_t, s_{t-1}) \\
    c_t, \alpha_t &= \text{Attention}(h_t, k_{1..S}, \text{mask}) \quad
                     \text{(additive, general or dot; ``carousel.layers.Attention``)} \\
    \tilde h_t &= \tanh(W_c [c_t; h_t]) \quad\text{(eq. 5)} \\
    P(y_t \mid y_{<t}, x) &= \text{softmax}(W_s \tilde h_t + b_s) \quad\text{(eq. 6)}

The additive score is Bahdanau, Cho & Bengio's (2015) :math:`v^\top \tanh(W q + U k)` used with the
query :math:`h_t` of this framework. Without attention :math:`\tilde h_t = h_t` and input feeding is
off (it would feed :math:`h_{t-1}` twice). ``tie_embedding`` uses :math:`E` as :math:`W_s` (Press &
Wolf 2017, "Using the Output Embedding to Improve Language Models"): :math:`\tilde h_t` then has
the embedding's size (a linear map from :math:`h_t` without attention).

The bridge: a vector :math:`c` (B, D) from the encoder sets every decoder layer's every state
component to :math:`\tanh(W c + b)` (``parts.bridge_maps``, the initialisation of Cho et al. 2014).
``SourceEncoder`` gives as :math:`c` the concatenation of every final state component of every
layer and direction (both halves of a bidirectional layer), so the encoder's and the decoder's
cells and sizes are free (an LSTM encoder may feed a GRU decoder of another size).

Scheduled sampling (Bengio, Vinyals, Jaitly & Shazeer 2015): with ``sampling_eps < 1`` each input
token after the first is the true previous token with probability ``eps``, otherwise a sample from
the model's previous distribution (no gradient flows through the sample).

Padding: a source of length n is valid for its first n steps; attention gives the rest weight
exactly 0. Token ids: ``pad_id`` (0), ``start_id`` (1), ``end_id`` (2) by default.
"""

from __future__ import annotations

import contextlib
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import ShapeError, check_choice, check_flag, check_lengths, check_number, check_rate, check_size, shape_str
from ..layers import ATTENTION_KINDS, Attention, Bidirectional, Deep, Recurrent
from ..regularize import hold_masks
from ..state import map_state
from .heads import valid_mask
from .parts import CellFactory, bridge_maps, bridge_state, cell_factory, check_token_ids, recurrent_stack


class Memory(NamedTuple):
    """What the decoder attends to: ``keys`` (B, S, K) and ``mask`` (B, S) bool (True = valid) or None."""

    keys: Tensor
    mask: Tensor | None


class DecoderState(NamedTuple):
    """The whole state of an ``AttentionDecoder`` between two steps: ``rnn``, one state per layer (each in
    its cell's form), and ``feed`` (B, A), the previous attentional vector (input feeding; None without)."""

    rnn: tuple
    feed: Tensor | None


def _flatten(state: Any) -> list[Tensor]:
    out: list[Tensor] = []
    map_state(lambda t: out.append(t) or t, state)
    return out


class SourceEncoder(nn.Module):
    """Token ids -> embedding -> a stack of carousel layers (each ``Bidirectional`` with ``bidirectional``)
    -> ``encode(source, lengths) -> (init (B, D), Memory)``.

    ``memory_size`` K is the top layer's output size (twice ``hidden_size`` when bidirectional);
    ``init_size`` D sums the sizes of every final state component of every layer and direction.
    Raises ``ValueError`` for an empty source (S = 0), ids outside [0, V) and lengths outside [1, S].
    """

    def __init__(self, cell: str | CellFactory, vocab_size: int, *, embed_size: int = 64, hidden_size: int = 128,
                 layers: int = 1, bidirectional: bool = True, dropout: float = 0.0, backend: str = "auto",
                 cell_options: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.vocab_size = check_size(vocab_size, "source vocab_size", minimum=2)
        check_size(embed_size, "embed_size")
        check_size(hidden_size, "hidden_size")
        layers = check_size(layers, "layers")
        self.bidirectional = check_flag(bidirectional, "bidirectional")
        make = cell_factory(cell, cell_options)
        self.embedding = nn.Embedding(self.vocab_size, embed_size)
        if self.bidirectional:
            stack, size = [], embed_size
            for _ in range(layers):
                stack.append(Bidirectional(Recurrent(make(size, hidden_size), backend=backend),
                                           Recurrent(make(size, hidden_size), backend=backend), merge="concat"))
                size = stack[-1].output_size
            self.rnn = Deep(stack, dropout=check_rate(dropout, "dropout"), variational=True)
        else:
            self.rnn = recurrent_stack(make, embed_size, [hidden_size] * layers, dropout=dropout, backend=backend)
        self.memory_size = self.rnn.output_size
        cells = []
        for layer in self.rnn.layers:
            cells += [layer.forward_layer.cell, layer.backward_layer.cell] if self.bidirectional else [layer.cell]
        self.init_size = sum(t.shape[-1] for c in cells for t in _flatten(c.initial_state(0)))

    def encode(self, source: Tensor, lengths: Any = None) -> tuple[Tensor, Memory]:
        """``source`` (B, S) ids, ``lengths`` (B,) in [1, S] or None -> init (B, D), Memory(keys (B, S, K), mask (B, S))."""
        source = check_token_ids(source, "source token ids", self.embedding.weight, self.vocab_size)
        B, S = source.shape
        if S == 0:
            raise ValueError(f"expected a source of at least one token, got an empty source of shape {shape_str(source.shape)}")
        lengths = check_lengths(lengths, B, S, device=source.device)
        if lengths is not None and bool((lengths == S).all()):
            lengths = None
        keys, final = self.rnn(self.embedding(source), None, lengths)  # (B, S, K)
        init = torch.cat(_flatten(final), dim=-1)  # (B, D)
        return init, Memory(keys, valid_mask(lengths, B, S, keys.device))

    forward = encode


class TreeSourceEncoder(nn.Module):
    """An adapter that lets ``Seq2Seq`` read trees: a ``carousel.structures.TreeEncoder`` whose
    ``encode(trees, lengths=None)`` gives each tree's root vector as ``init`` (B, F) and its nodes
    (pre-order, padded to the largest tree) as the memory (B, N_max, F) with their mask."""

    def __init__(self, tree_encoder: nn.Module) -> None:
        super().__init__()
        self.tree_encoder = tree_encoder
        self.init_size = self.memory_size = tree_encoder.output_size

    def encode(self, trees: Any, lengths: Any = None) -> tuple[Tensor, Memory]:
        if lengths is not None:
            raise ValueError("a tree batch carries its own sizes; expected lengths=None")
        out = self.tree_encoder(trees)  # nodes (N, F), roots (T, F)
        sizes = trees.tree_sizes.tolist()
        keys = nn.utils.rnn.pad_sequence(list(out.nodes.split(sizes)), batch_first=True)  # (T, N_max, F)
        mask = valid_mask(torch.tensor(sizes), len(sizes), keys.shape[1], keys.device)
        return out.roots, Memory(keys, mask)

    forward = encode


class AttentionDecoder(nn.Module):
    """The attention decoder of the module docstring, one step (``step``) or a teacher-forced window (``forward``) at a time.

    ``memory_size`` K: the size of the keys attended to (None: nothing to attend to, ``attention``
    must be ``"none"``); ``init_size`` D: the size of the vector the bridge maps to the initial state
    (None: the initial state is zero). ``dropout`` is variational between layers and plain before
    the output layer. Raises ``TypeError``/``ValueError`` for bad sizes, ids, an unknown attention
    kind, attention without memory, ``dot`` attention with K != hidden size, ``end_id == pad_id``.
    """

    def __init__(self, cell: str | CellFactory, vocab_size: int, *, embed_size: int = 64, hidden_size: int = 128,
                 layers: int = 1, memory_size: int | None = None, init_size: int | None = None,
                 attention: str = "additive", input_feeding: bool = True, tie_embedding: bool = False,
                 dropout: float = 0.0, start_id: int = 1, end_id: int = 2, pad_id: int = 0, backend: str = "auto",
                 cell_options: dict[str, Any] | None = None) -> None:
        super().__init__()
        V = self.vocab_size = check_size(vocab_size, "target vocab_size", minimum=3)
        self.start_id = check_number(start_id, "start_id", low=0, high=V - 1, integer=True)
        self.end_id = check_number(end_id, "end_id", low=0, high=V - 1, integer=True)
        self.pad_id = check_number(pad_id, "pad_id", low=0, high=V - 1, integer=True)
        if self.end_id == self.pad_id:
            raise ValueError(f"expected end_id different from pad_id, got both {self.end_id}")
        E, H = check_size(embed_size, "embed_size"), check_size(hidden_size, "hidden_size")
        layers = check_size(layers, "layers")
        self.attention_kind = check_choice(attention, ATTENTION_KINDS, "attention")
        self.memory_size = None if memory_size is None else check_size(memory_size, "memory_size")
        self.init_size = None if init_size is None else check_size(init_size, "init_size")
        if self.attention_kind != "none" and self.memory_size is None:
            raise ValueError(f"attention {attention!r} needs something to attend to: give memory_size, or attention='none'")
        self.input_feeding = check_flag(input_feeding, "input_feeding") and self.attention_kind != "none"
        self.tie_embedding = check_flag(tie_embedding, "tie_embedding")
        self.dropout = check_rate(dropout, "dropout")
        A = self.feed_size = E if self.tie_embedding else H  # the attentional vector's size
        self.embedding = nn.Embedding(V, E)
        self.rnn = recurrent_stack(cell_factory(cell, cell_options), E + (A if self.input_feeding else 0), [H] * layers,
                                   dropout=self.dropout, backend=backend)
        top = self.rnn.output_size
        if self.attention_kind != "none":
            self.attention = Attention(top, self.memory_size, self.attention_kind)
            self.combine = nn.Linear(self.memory_size + top, A, bias=False)  # W_c (eq. 5)
        else:
            self.attention = None
            self.combine = nn.Linear(top, A) if top != A else None
        self.drop = nn.Dropout(self.dropout)
        self.out = nn.Linear(A, V)  # W_s (eq. 6)
        if self.tie_embedding:
            self.out.weight = self.embedding.weight
        if self.init_size is not None:
            self.init_maps, self._state_types = bridge_maps(self.rnn, self.init_size)

    # ---- state -------------------------------------------------------------------------------
    def _check_memory(self, memory: Any, batch_size: int | None) -> Memory | None:
        if self.memory_size is None:
            if memory is not None:
                raise ValueError("this decoder has no attention memory (memory_size=None); expected memory=None")
            return None
        if not isinstance(memory, Memory):
            raise TypeError(f"expected memory as a Memory(keys (B, S, {self.memory_size}), mask (B, S)), got {type(memory).__name__}")
        k = memory.keys
        if not isinstance(k, Tensor) or k.dim() != 3 or k.shape[-1] != self.memory_size or k.shape[1] == 0 or (
                batch_size is not None and k.shape[0] != batch_size):
            got = shape_str(k.shape) if isinstance(k, Tensor) else type(k).__name__
            raise ShapeError(f"expected memory keys of shape ({batch_size if batch_size is not None else 'B'}, S, {self.memory_size}) "
                             f"with S >= 1, got {got}")
        return memory

    def initial_state(self, init: Tensor | None, memory: Memory | None, batch_size: int) -> DecoderState:
        """The state before the first step for ``batch_size`` rows: the bridge of ``init`` (B, D) (None
        when ``init_size`` is None: zeros) and a zero input-feeding vector."""
        B = check_size(batch_size, "batch_size")
        self._check_memory(memory, B)
        ref = self.out.weight
        if self.init_size is None:
            if init is not None:
                raise ValueError("this decoder has no bridge (init_size=None); expected init=None")
            rnn = tuple(layer.cell.initial_state(B, device=ref.device, dtype=ref.dtype) for layer in self.rnn.layers)
        else:
            if not isinstance(init, Tensor) or not init.is_floating_point() or tuple(init.shape) != (B, self.init_size):
                got = f"shape {shape_str(init.shape)}, dtype {init.dtype}" if isinstance(init, Tensor) else type(init).__name__
                raise ShapeError(f"expected init as a floating-point tensor of shape ({B}, {self.init_size}), got {got}")
            rnn = bridge_state(self.init_maps, self._state_types, init)
        feed = ref.new_zeros(B, self.feed_size) if self.input_feeding else None
        return DecoderState(rnn, feed)

    def reorder_state(self, state: DecoderState, index: Tensor) -> DecoderState:
        """The rows ``index`` (B',) int64 of every tensor of ``state`` (beam search reorders and copies rows)."""
        return map_state(lambda t: t.index_select(0, index.to(t.device)), state)

    # ---- running -----------------------------------------------------------------------------
    def _readout(self, h: Tensor, memory: Memory | None) -> tuple[Tensor, Tensor | None]:
        """The attentional vector h~ (B, [T,] A) and the attention weights (B, [T,] S) or None for top outputs ``h``."""
        if self.attention is None:
            return (self.combine(h) if self.combine is not None else h), None
        context, weights = self.attention(h, memory.keys, memory.mask)  # (B, [T,] K), (B, [T,] S)
        return torch.tanh(self.combine(torch.cat([context, h], dim=-1))), weights

    def step(self, tokens: Tensor, state: DecoderState, memory: Memory | None) -> tuple[Tensor, DecoderState, Tensor | None]:
        """One step: ``tokens`` (B,) the previous token ids -> logits (B, V), the new state, attention weights (B, S) or None."""
        if not isinstance(tokens, Tensor) or tokens.dim() != 1:
            got = shape_str(tokens.shape) if isinstance(tokens, Tensor) else type(tokens).__name__
            raise ShapeError(f"expected tokens of shape (B,), the previous token of every row, got {got}")
        tokens = check_token_ids(tokens.unsqueeze(1), "previous token ids", self.out.weight, self.vocab_size)[:, 0]
        memory = self._check_memory(memory, tokens.shape[0])
        if not isinstance(state, DecoderState):
            raise TypeError(f"expected the decoder state as a DecoderState (from initial_state), got {type(state).__name__}")
        u = self.embedding(tokens)  # (B, E)
        if self.input_feeding:
            u = torch.cat([u, state.feed], dim=-1)  # (B, E + A)
        y, rnn = self.rnn(u.unsqueeze(1), state.rnn)  # (B, 1, H)
        h_tilde, weights = self._readout(y[:, 0], memory)  # (B, A), (B, S)
        logits = self.out(self.drop(h_tilde))  # (B, V)
        return logits, DecoderState(rnn, h_tilde if self.input_feeding else None), weights

    def forward(self, inputs: Tensor, state: DecoderState, memory: Memory | None, *, sampling_eps: float = 1.0,
                generator: torch.Generator | None = None) -> tuple[Tensor, DecoderState, Tensor | None]:
        """Teacher forcing over ``inputs`` (B, T) (the start token then the targets but the last) ->
        logits (B, T, V), the final state, attention (B, T, S) or None. Without input feeding and
        scheduled sampling the stack runs over all T steps in one call; otherwise ``step`` runs T
        times (the dropout masks held for the whole sequence). ``sampling_eps`` < 1: scheduled
        sampling (see the module docstring), the coins and samples drawn with ``generator`` (on the inputs' device)."""
        inputs = check_token_ids(inputs, "decoder input ids", self.out.weight, self.vocab_size)
        B, T = inputs.shape
        if T == 0:
            raise ValueError(f"expected decoder inputs with at least one step, got shape {shape_str(inputs.shape)}")
        eps = check_number(sampling_eps, "sampling_eps", low=0.0, high=1.0)
        memory = self._check_memory(memory, B)
        if not self.input_feeding and eps >= 1.0:
            y, rnn = self.rnn(self.embedding(inputs), state.rnn)  # (B, T, H)
            h_tilde, weights = self._readout(y, memory)  # (B, T, A), (B, T, S)
            return self.out(self.drop(h_tilde)), DecoderState(rnn, None), weights
        true = torch.rand(B, T, generator=generator, device=inputs.device) < eps if eps < 1.0 else None  # (B, T)
        outs, maps = [], []
        prev = inputs[:, 0]
        with hold_masks(self) if self.training else contextlib.nullcontext():
            for t in range(T):
                z, state, w = self.step(prev, state, memory)  # (B, V)
                outs.append(z)
                maps.append(w)
                if t + 1 < T:
                    prev = inputs[:, t + 1]
                    if true is not None:
                        guess = torch.multinomial(torch.softmax(z.detach().float(), -1), 1, generator=generator).squeeze(1)
                        prev = torch.where(true[:, t + 1], prev, guess)
        weights = None if maps[0] is None else torch.stack(maps, dim=1)  # (B, T, S)
        return torch.stack(outs, dim=1), state, weights


def sequence_loss(logits: Tensor, targets: Tensor, lengths: Any = None, *, label_smoothing: float = 0.0) -> Tensor:
    """Mean cross entropy in nats per valid target token: ``logits`` (B, T, V), ``targets`` (B, T) ids
    (anything past a length ignored), ``lengths`` (B,) in [1, T] or None (all T). ``label_smoothing``
    in [0, 1): the target distribution puts 1 - ls + ls/V on the target and ls/V elsewhere (Szegedy
    et al. 2016, "Rethinking the Inception Architecture", section 7; torch's ``cross_entropy``)."""
    if not isinstance(logits, Tensor) or logits.dim() != 3:
        got = shape_str(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise ShapeError(f"expected logits of shape (B, T, V), got {got}")
    B, T, V = logits.shape
    if not isinstance(targets, Tensor) or tuple(targets.shape) != (B, T):
        got = shape_str(targets.shape) if isinstance(targets, Tensor) else type(targets).__name__
        raise ShapeError(f"expected targets of shape {shape_str((B, T))}, got {got}")
    targets = check_token_ids(targets, "targets", None, None)
    ls = check_rate(label_smoothing, "label_smoothing")
    mask = valid_mask(check_lengths(lengths, B, T, device=logits.device), B, T, logits.device)  # (B, T)
    chosen = targets.to(logits.device)[mask]
    if chosen.numel() and chosen.device.type == "cpu" and (int(chosen.min()) < 0 or int(chosen.max()) >= V):
        raise ValueError(f"expected targets in [0, {V}), got ids from {int(chosen.min())} to {int(chosen.max())}")
    return F.cross_entropy(logits[mask], chosen, label_smoothing=ls)


class Seq2Seq(nn.Module):
    """Encoder (``SourceEncoder``, or any module with ``encode(source, lengths) -> (init, Memory)`` and
    ``init_size``/``memory_size``) + bridge + ``AttentionDecoder``; see the module docstring.

    ``Seq2Seq("lstm", source_vocab=14, target_vocab=14)``; ``decoder_cell`` (default ``cell``) and
    ``decoder_hidden`` (default ``hidden_size``) set the decoder apart. ``forward(source,
    source_lengths, targets_in)`` -> logits (B, T, V) and attention (B, T, S) (None without);
    ``start(source, lengths)`` -> (decoder state, memory) for ``carousel.decode``'s searches.
    Raises as ``SourceEncoder`` and ``AttentionDecoder`` do.
    """

    def __init__(self, cell: str | CellFactory, source_vocab: int | None, target_vocab: int, *, embed_size: int = 64,
                 hidden_size: int = 128, layers: int = 1, bidirectional: bool = True,
                 decoder_cell: str | CellFactory | None = None, decoder_hidden: int | None = None,
                 attention: str = "additive", input_feeding: bool = True, tie_embedding: bool = False, dropout: float = 0.0,
                 start_id: int = 1, end_id: int = 2, pad_id: int = 0, backend: str = "auto",
                 encoder: nn.Module | None = None, decoder_layers: int | None = None) -> None:
        super().__init__()
        if encoder is None:
            if source_vocab is None:
                raise ValueError("expected source_vocab (the source vocabulary size), or an encoder module")
            encoder = SourceEncoder(cell, source_vocab, embed_size=embed_size, hidden_size=hidden_size, layers=layers,
                                    bidirectional=bidirectional, dropout=dropout, backend=backend)
        elif not (callable(getattr(encoder, "encode", None)) and isinstance(encoder, nn.Module)
                  and hasattr(encoder, "init_size") and hasattr(encoder, "memory_size")):
            raise TypeError("expected encoder as an nn.Module with encode(source, lengths) -> (init, Memory) and the "
                            f"attributes init_size and memory_size, got {type(encoder).__name__}")
        self.encoder = encoder
        self.decoder = AttentionDecoder(
            cell if decoder_cell is None else decoder_cell, target_vocab, embed_size=embed_size,
            hidden_size=hidden_size if decoder_hidden is None else decoder_hidden,
            layers=layers if decoder_layers is None else decoder_layers,
            memory_size=encoder.memory_size if attention != "none" else None, init_size=encoder.init_size,
            attention=attention, input_feeding=input_feeding, tie_embedding=tie_embedding, dropout=dropout,
            start_id=start_id, end_id=end_id, pad_id=pad_id, backend=backend)

    @property
    def start_id(self) -> int:
        return self.decoder.start_id

    @property
    def end_id(self) -> int:
        return self.decoder.end_id

    @property
    def pad_id(self) -> int:
        return self.decoder.pad_id

    def encode(self, source: Any, lengths: Tensor | None) -> tuple[Tensor, Memory]:
        """``init`` (B, D) and the memory (keys (B, S, K), mask (B, S))."""
        return self.encoder.encode(source, lengths)

    def start(self, source: Any, lengths: Tensor | None = None) -> tuple[DecoderState, Memory | None]:
        """The decoder's initial state and the memory it attends to (None without attention)."""
        init, memory = self.encode(source, lengths)
        memory = memory if self.decoder.memory_size is not None else None
        return self.decoder.initial_state(init, memory, init.shape[0]), memory

    def forward(self, source: Any, source_lengths: Any, targets_in: Tensor, *, sampling_eps: float = 1.0,
                generator: torch.Generator | None = None) -> tuple[Tensor, Tensor | None]:
        """Teacher-forced logits (B, T, V) for ``targets_in`` (B, T) (start token + targets[:, :-1])
        and attention (B, T, S) (None without); ``sampling_eps < 1``: scheduled sampling."""
        state, memory = self.start(source, source_lengths)
        targets_in = check_token_ids(targets_in, "decoder input ids")
        B = _flatten(state.rnn)[0].shape[0]
        if targets_in.shape[0] != B:
            raise ShapeError(f"expected decoder inputs of shape ({B}, T), one row per source, got {shape_str(targets_in.shape)}")
        logits, _, weights = self.decoder(targets_in, state, memory, sampling_eps=sampling_eps, generator=generator)
        return logits, weights

    def loss(self, logits: Tensor, targets: Tensor, lengths: Any = None, *, label_smoothing: float = 0.0) -> Tensor:
        """Mean cross entropy in nats per valid target token (``sequence_loss``)."""
        return sequence_loss(logits, targets, lengths, label_smoothing=label_smoothing)
