r"""``CharLM``: a character-level language model on a deep carousel recurrent stack.

.. math::
    e_t &= E[x_t] \qquad (E \text{ with whole rows dropped at rate } p_\text{embed}) \\
    u &= \text{vdrop}_{p_\text{input}}(e) \\
    y, s &= \text{Deep}([\text{Recurrent}(\text{cell}_1), \dots, \text{Recurrent}(\text{cell}_L)],
            \text{dropout}=p_\text{between}, \text{variational})(u, s_0) \\
    z_t &= W\, \text{vdrop}_{p_\text{output}}(y_t) + b, \qquad
    P(x_{t+1} \mid x_{\le t}) = \text{softmax}(z_t)

With ``tied=True`` the output matrix is the embedding, ``W = E`` (Press & Wolf 2017, "Using the
Output Embedding to Improve Language Models"; Inan et al. 2017), so the last layer's output size
must equal ``embed_size``. Every regulariser of ``carousel.regularize`` has its keyword:
``embed_dropout`` (EmbeddingDropout), ``input_dropout``, ``between_dropout`` and
``output_dropout`` (VariationalDropout: one mask per sequence), ``weight_drop`` (DropConnect on
every ``weight_hh``, fused-safe), ``recurrent_dropout`` (RecurrentDropout on ``h_{t-1}``) and
``zoneout_h`` / ``zoneout_c`` (Zoneout). The cell is any carousel cell, by name (``"lstm"``,
``"gru"``, ...; see ``carousel train --help``) or a factory ``(input_size, hidden_size) -> Cell``.

Given ``vocabulary=`` (a ``carousel.data.Vocabulary``), the model keeps its symbols as a buffer,
``vocab_codes`` (the code points), so a checkpoint carries the vocabulary it was trained with
(``model.vocabulary()`` gives it back).

``model(x, state) -> (z, state)`` with ``x`` (B, T) character ids and ``z`` (B, T, V) logits; the
state is the stack's, one entry per layer, to be carried across windows (TBPTT) and steps
(sampling).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor, nn

from .._checks import check_flag, check_rate, check_size
from ..data.vocab import Vocabulary
from ..regularize import EmbeddingDropout, VariationalDropout
from ..regularize import weight_drop as add_weight_drop
from .parts import CellFactory, cell_factory, check_token_ids, recurrent_stack


class CharLM(nn.Module):
    """``CharLM(vocab_size, cell="lstm", hidden_size=512, layers=1)``; see the module docstring."""

    def __init__(
        self,
        vocab_size: int,
        *,
        cell: str | CellFactory = "lstm",
        embed_size: int = 64,
        hidden_size: int | Sequence[int] = 512,
        layers: int = 1,
        tied: bool = False,
        embed_dropout: float = 0.0,
        input_dropout: float = 0.0,
        between_dropout: float = 0.0,
        output_dropout: float = 0.0,
        weight_drop: float = 0.0,
        recurrent_dropout: float = 0.0,
        zoneout_h: float = 0.0,
        zoneout_c: float = 0.0,
        backend: str = "auto",
        cell_options: dict[str, Any] | None = None,
        vocabulary: Vocabulary | None = None,
    ) -> None:
        super().__init__()
        self.vocab_size = check_size(vocab_size, "vocab_size", minimum=2)
        codes = torch.full((self.vocab_size,), -1, dtype=torch.int32)
        if vocabulary is not None:
            if not isinstance(vocabulary, Vocabulary):
                raise TypeError(f"expected vocabulary to be a carousel.data.Vocabulary, got {type(vocabulary).__name__}")
            if len(vocabulary) != self.vocab_size:
                raise ValueError(f"expected a Vocabulary of vocab_size={self.vocab_size} symbols, got {len(vocabulary)} symbols")
            codes = torch.tensor([ord(c) for c in vocabulary.symbols], dtype=torch.int32)
        self.register_buffer("vocab_codes", codes)  # (V,) code points; -1 when not given
        self.embed_size = check_size(embed_size, "embed_size")
        layers = check_size(layers, "layers")
        if isinstance(hidden_size, (list, tuple)):
            sizes = list(hidden_size)
        else:
            sizes = [check_size(hidden_size, "hidden_size (an integer, or a list of one per layer)")] * layers
        if len(sizes) != layers:
            raise ValueError(f"expected {layers} hidden sizes, one per layer, got {len(sizes)}: {sizes}")
        for s in sizes:
            check_size(s, "hidden_size")
        rates = dict(embed_dropout=embed_dropout, input_dropout=input_dropout, between_dropout=between_dropout,
                     output_dropout=output_dropout, weight_drop=weight_drop, recurrent_dropout=recurrent_dropout)
        rates = {k: check_rate(v, k) for k, v in rates.items()}
        zoneout_h, zoneout_c = check_rate(zoneout_h, "zoneout_h"), check_rate(zoneout_c, "zoneout_c")
        self.regularisation = {**rates, "zoneout_h": zoneout_h, "zoneout_c": zoneout_c}
        embedding = nn.Embedding(self.vocab_size, self.embed_size)
        self.embedding: nn.Module = EmbeddingDropout(embedding, rates["embed_dropout"]) if rates["embed_dropout"] else embedding
        self.input_drop = VariationalDropout(rates["input_dropout"])
        self.rnn = recurrent_stack(
            cell_factory(cell, cell_options), self.embed_size, sizes, dropout=rates["between_dropout"],
            recurrent_dropout=rates["recurrent_dropout"], zoneout_h=zoneout_h, zoneout_c=zoneout_c, backend=backend,
        )
        size = self.rnn.output_size
        if rates["weight_drop"]:
            add_weight_drop(self.rnn, rates["weight_drop"])
        self.output_drop = VariationalDropout(rates["output_dropout"])
        self.head = nn.Linear(size, self.vocab_size)
        self.tied = check_flag(tied, "tied")
        if self.tied:
            if size != self.embed_size:
                raise ValueError(
                    f"tied weights need the last layer's output size to equal embed_size={self.embed_size}, got {size}; "
                    "give hidden_size per layer with the last equal to embed_size"
                )
            self.head.weight = embedding.weight  # W = E: one (V, E) matrix

    def vocabulary(self) -> Vocabulary:
        """The vocabulary kept in ``vocab_codes`` (symbol 0 is the unknown symbol)."""
        codes = self.vocab_codes.tolist()
        if min(codes) < 0:
            raise ValueError("this model was built without a vocabulary (pass vocabulary= to CharLM)")
        chars = [chr(c) for c in codes]
        return Vocabulary(chars[1:], unk=chars[0])

    @property
    def output_size(self) -> int:
        return self.head.in_features

    def initial_state(self, batch_size: int, *, device=None, dtype=None) -> tuple:
        """The all-zero state of the stack for ``batch_size`` sequences (an integer >= 0)."""
        check_size(batch_size, "batch_size", minimum=0)
        ref = self.head.weight
        kw = {"device": ref.device if device is None else device, "dtype": ref.dtype if dtype is None else dtype}
        return tuple(layer.cell.initial_state(batch_size, **kw) for layer in self.rnn.layers)

    def forward(self, x: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        """Logits (B, T, V) of the next character after each of ``x`` (B, T), and the final state.

        Raises ``ValueError`` for ids that are not an integer (B, T) tensor on the model's device (or,
        on the CPU, outside [0, V)), and for a state that is not one per layer (``TypeError`` for a
        single layer's state)."""
        u = self.input_drop(self.embedding(check_token_ids(x, "character ids", self.head.weight, self.vocab_size)))  # (B, T, E)
        y, state = self.rnn(u, state)  # (B, T, H)
        return self.head(self.output_drop(y)), state  # (B, T, V)
