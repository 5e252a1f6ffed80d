r"""A conditioned sequence generator (item -> sequence): a vector sets the initial state of a decoder.

For a conditioning vector :math:`c` (B, D), a stack of L carousel layers whose layer l carries
state components :math:`s^{l,1}, \dots, s^{l,K_l}` (for an LSTM both h and c, for a GRU h), and
tokens :math:`x_1, \dots, x_T`:

.. math::
    s^{l,k}_0 &= \tanh(W_{l,k}\, c + b_{l,k}) \qquad \text{(every layer, every state component)} \\
    u_t &= E[x_{t-1}], \quad x_0 = \text{start\_id} \qquad \text{(the previous token; teacher forcing)} \\
    y_t, s_t &= \text{stack}(u_t, s_{t-1}) \\
    z_t &= W\, y_t + b, \qquad P(x_t \mid x_{<t}, c) = \text{softmax}(z_t)

As in the RNN decoder of Cho et al. 2014 ("Learning Phrase Representations using RNN
Encoder-Decoder for Statistical Machine Translation", where the decoder's initial state is
:math:`\tanh(V' c)`) and the image-captioning LSTM of Vinyals et al. 2015 ("Show and Tell"),
where the item conditions the decoder before the first word. Each sequence ends with
``end_id``; a sequence of length n (its end token included) is valid for its first n steps, and
whatever follows (``pad_id``) never enters the loss. Sampling (``generate``) draws each token
with ``next_token`` (``carousel.models.draw``, the rule ``carousel.decode`` samples text with:
temperature, top-k, never ``pad_id``) and feeds it back with the state.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from .._checks import ShapeError, check_lengths, check_number, check_size, shape_str
from .draw import check_sampling, next_token
from .heads import valid_mask
from .parts import CellFactory, bridge_maps, bridge_state, cell_factory, check_token_ids, recurrent_stack


class GeneratedSequences(NamedTuple):
    """``tokens`` (B, L) ids, ``end_id`` included and ``pad_id`` after it; ``lengths`` (B,) int64,
    each sequence's length counting its end token (``max_length`` when it never ended); ``logits``
    (B, L, V): the logits each token was drawn from (meaningless past a length)."""

    tokens: Tensor
    lengths: Tensor
    logits: Tensor


class SequenceGenerator(nn.Module):
    """Item -> sequence: ``SequenceGenerator("lstm", cond_size=10, vocab_size=20, end_id=2)``; see the module docstring.

    ``forward(cond, tokens) -> logits`` (B, T, V): ``cond`` (B, D) floating point, ``tokens`` (B, T)
    ids (the targets; step t reads token t-1, step 0 the start token). ``loss`` is the mean cross
    entropy in nats per valid token. ``generate(cond, max_length)`` samples step by step.
    ``start_id``, ``end_id`` and ``pad_id`` are token ids in [0, V); ``end_id`` must differ from
    ``pad_id``. ``dropout`` is variational, between the layers.

    Raises ``TypeError`` for a size that is not an integer, ``ValueError`` for sizes below 1
    (``vocab_size`` below 2), token ids out of range, an unknown cell, and malformed inputs.
    """

    def __init__(self, cell: str | CellFactory, cond_size: int, vocab_size: int, *, embed_size: int = 32,
                 hidden_size: int = 64, layers: int = 1, start_id: int = 1, end_id: int = 2, pad_id: int = 0,
                 dropout: float = 0.0, backend: str = "auto", cell_options: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.cond_size = check_size(cond_size, "cond_size")
        self.vocab_size = check_size(vocab_size, "vocab_size", minimum=2)
        V = self.vocab_size
        self.start_id = check_number(start_id, "start_id", low=0, high=V - 1, integer=True)
        self.end_id = check_number(end_id, "end_id", low=0, high=V - 1, integer=True)
        self.pad_id = check_number(pad_id, "pad_id", low=0, high=V - 1, integer=True)
        if self.end_id == self.pad_id:
            raise ValueError(f"expected end_id different from pad_id, got both {self.end_id}")
        check_size(embed_size, "embed_size")
        check_size(hidden_size, "hidden_size")
        layers = check_size(layers, "layers")
        self.embedding = nn.Embedding(V, embed_size)
        self.rnn = recurrent_stack(cell_factory(cell, cell_options), embed_size, [hidden_size] * layers,
                                   dropout=dropout, backend=backend)
        # one linear map per layer and per state component (h, and c for an LSTM)
        self.init_maps, self._state_types = bridge_maps(self.rnn, self.cond_size)
        self.head = nn.Linear(self.rnn.output_size, V)

    def _check_cond(self, cond: object) -> Tensor:
        if not isinstance(cond, Tensor) or not cond.is_floating_point():
            got = f"dtype {cond.dtype}" if isinstance(cond, Tensor) else type(cond).__name__
            raise TypeError(f"expected the conditioning vectors cond as a floating-point tensor of shape (B, {self.cond_size}), got {got}")
        if cond.dim() != 2 or cond.shape[1] != self.cond_size:
            raise ShapeError(f"expected cond of shape (B, {self.cond_size}), got {shape_str(cond.shape)}")
        if cond.dtype != self.head.weight.dtype:
            raise TypeError(f"expected cond of dtype {self.head.weight.dtype} (the model's), got {cond.dtype}")
        if cond.device != self.head.weight.device:
            raise ValueError(f"expected cond on {self.head.weight.device} (where the model's parameters are), got {cond.device}")
        return cond

    def initial_state(self, cond: Tensor) -> tuple:
        """The stack's initial state from ``cond`` (B, D): one entry per layer, each in its cell's
        state form, every component ``tanh(W c + b)`` (B, H)."""
        return bridge_state(self.init_maps, self._state_types, self._check_cond(cond))

    def step(self, inputs: Tensor, state: Any) -> tuple[Tensor, Any]:
        """The decoder on input tokens ``inputs`` (B, T) (each the previous token) from ``state``:
        logits (B, T, V) and the final state. ``generate`` calls it with T = 1."""
        u = self.embedding(check_token_ids(inputs, "input token ids", self.head.weight, self.vocab_size))  # (B, T, E)
        y, state = self.rnn(u, state)  # (B, T, H)
        return self.head(y), state

    def forward(self, cond: Tensor, tokens: Tensor) -> Tensor:
        """Teacher-forced logits (B, T, V): ``logits[:, t]`` scores ``tokens[:, t]`` given
        ``tokens[:, :t]`` and ``cond`` (B, D). ``tokens`` (B, T) ids in [0, V)."""
        cond = self._check_cond(cond)
        tokens = check_token_ids(tokens, "tokens", self.head.weight, self.vocab_size)
        if tokens.shape[0] != cond.shape[0]:
            raise ShapeError(f"expected tokens of shape ({cond.shape[0]}, T), one row per cond, got {shape_str(tokens.shape)}")
        start = torch.full_like(tokens[:, :1], self.start_id)
        inputs = torch.cat([start, tokens[:, :-1]], dim=1)  # (B, T): the previous token at every step
        logits, _ = self.step(inputs, self.initial_state(cond))
        return logits

    def loss(self, logits: Tensor, tokens: Tensor, lengths: Any = None) -> Tensor:
        """Mean cross entropy in nats per valid token: ``logits`` (B, T, V), ``tokens`` (B, T) (the
        targets; anything past a length is ignored), ``lengths`` (B,) integers in [1, T] or None (all T)."""
        if not isinstance(logits, Tensor) or logits.dim() != 3 or logits.shape[-1] != self.vocab_size:
            got = shape_str(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
            raise ShapeError(f"expected logits of shape (B, T, {self.vocab_size}), got {got}")
        B, T = logits.shape[:2]
        if not isinstance(tokens, Tensor) or tuple(tokens.shape) != (B, T):
            got = shape_str(tokens.shape) if isinstance(tokens, Tensor) else type(tokens).__name__
            raise ShapeError(f"expected tokens of shape {shape_str((B, T))}, got {got}")
        tokens = check_token_ids(tokens, "tokens")
        mask = valid_mask(check_lengths(lengths, B, T, device=logits.device), B, T, logits.device)  # (B, T)
        targets = tokens.to(logits.device)[mask]
        if targets.numel() and targets.device.type == "cpu" and (int(targets.min()) < 0 or int(targets.max()) >= self.vocab_size):
            raise ValueError(f"expected tokens in [0, {self.vocab_size}), got ids from {int(targets.min())} to {int(targets.max())}")
        return nn.functional.cross_entropy(logits[mask], targets)

    @torch.no_grad()
    def generate(self, cond: Tensor, max_length: int, *, temperature: float = 1.0, greedy: bool = False,
                 top_k: int = 0, generator: torch.Generator | None = None) -> GeneratedSequences:
        """One sequence per row of ``cond`` (B, D), drawn token by token until each emits ``end_id``
        or reaches ``max_length`` tokens; the loop stops when every sequence has ended.

        ``greedy=True`` (or ``temperature=0``) takes the most likely token; otherwise tokens are
        drawn from ``softmax(z / temperature)`` over the ``top_k`` largest logits (0: all) with
        ``generator`` (torch's default when None). ``pad_id`` is never drawn. The model is put in
        evaluation mode and restored afterwards. Raises ``TypeError``/``ValueError`` for a bad
        ``max_length``, temperature or ``top_k``, and as ``forward`` for ``cond``.
        """
        cond = self._check_cond(cond)
        L = check_size(max_length, "max_length")
        if not isinstance(greedy, bool):
            raise TypeError(f"expected greedy as a bool, got {type(greedy).__name__}")
        check_sampling(temperature, top_k)
        temperature = 0.0 if greedy else temperature
        was_training = self.training
        self.eval()
        try:
            B, device = cond.shape[0], cond.device
            state = self.initial_state(cond)
            prev = torch.full((B, 1), self.start_id, dtype=torch.long, device=device)
            tokens = torch.full((B, L), self.pad_id, dtype=torch.long, device=device)
            lengths = torch.full((B,), L, dtype=torch.long)
            done = torch.zeros(B, dtype=torch.bool)
            steps = []
            for t in range(L):
                z, state = self.step(prev, state)  # (B, 1, V): one step
                steps.append(z)
                c = next_token(z[:, 0].cpu(), temperature=temperature, top_k=top_k, banned=self.pad_id, generator=generator)
                c = torch.where(done, torch.full_like(c, self.pad_id), c)  # (B,)
                tokens[:, t] = c.to(device)
                ended = (c == self.end_id) & ~done
                lengths[ended] = t + 1
                done |= ended
                if bool(done.all()):
                    break
                prev = c.to(device).unsqueeze(1)
            logits = torch.cat(steps, dim=1)  # (B, t+1, V)
            if logits.shape[1] < L:
                logits = torch.cat([logits, logits.new_zeros(B, L - logits.shape[1], self.vocab_size)], dim=1)
        finally:
            self.train(was_training)
        return GeneratedSequences(tokens, lengths, logits)
