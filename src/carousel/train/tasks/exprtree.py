"""``carousel train exprtree``: the value mod 10 of an arithmetic expression tree, trained on shallow
trees and tested on deeper ones. A Tree-LSTM over the tree or an LSTM over its bracketed string.

The data are ``carousel.data.exprtree``: digits at the leaves, ``+``, ``-``, ``*`` (and with
``--operators`` also ``max``, ``min``) inside, each node's value a digit. Training trees have depths
1 to ``depth`` (uniform), drawn afresh for every batch and never one of the held-out trees. The
``valid`` split is ``eval_size`` distinct held-out trees of each depth 1 .. ``depth`` (of depth 1
only 25 exist with three operators), the ``test`` split ``eval_size`` distinct trees of each depth
``depth + 1 .. test_depth``, deeper than any training tree. Both report ``accuracy`` (over all the
split's trees), ``acc_dK`` (over the trees of depth K), ``loss`` (cross-entropy, nats) and
``majority`` (the share of the split's most frequent value, the majority-class baseline: about 21%).

Encoders (``--encoder``), with the same hidden size H and embedding size:

* ``tree``: ``TreeEncoder`` bottom-up over the tree with a tree cell (``--cell``; default the N-ary
  Tree-LSTM of Tai et al. 2015, one recurrent matrix per child position, so ``3 - 5`` and ``5 - 3``
  differ). A node's input is the embedding of its token and its place among its siblings (left or
  right), which an order-free cell such as the Child-Sum Tree-LSTM needs to tell them apart. The
  root's state goes to a linear layer over the 10 values.
* ``sequence``: carousel's ``Recurrent(LSTMCell)`` over the tokens of ``( + 3 ( * 4 5 ) )``; its
  state after the last token goes to the linear layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...cells.lstm import LSTMCell
from ...data.exprtree import MAX_DEPTH, NUM_CLASSES, VOCABULARY, encode_tokens, expressions, parse_operators
from ...layers import Recurrent
from ...structures import TREE_CELLS, TreeBatch, TreeEncoder
from ..batches import SeededBatches, derive_seed
from ..config import option
from ..registry import register_task
from ..task import Shard, StepOutput, Task

VALID_SEED, TEST_SEED = 4_000_037, 4_000_049  # fixed: every run is scored on the same trees
ENCODERS = ("tree", "sequence")
POSITIONAL_CELLS = ("nary_lstm", "recursive_positional")
DEFAULT_CELL = "nary_lstm"
EVAL_CHUNK = 500


@dataclass(frozen=True)
class ExprTreeOptions:
    encoder: str = option("tree", "'tree': a Tree-LSTM over the tree; 'sequence': an LSTM over the bracketed string", choices=ENCODERS)
    cell: str = option(DEFAULT_CELL, "tree cell of the tree encoder (nary_lstm: N-ary Tree-LSTM; child_sum_lstm: Child-Sum); not used by the sequence encoder", choices=TREE_CELLS)
    depth: int = option(4, "training and validation trees have depths 1 to this")
    test_depth: int = option(8, "test trees have depths depth+1 to this, each scored apart (acc_dK)")
    operators: str = option("+,-,*", "comma-separated operators among +, -, *, max, min")
    hidden: int = option(64, "state size H of either encoder")
    embed: int = option(32, "token embedding size")
    eval_size: int = option(1000, "trees of each depth in the validation and test splits")

    def __post_init__(self) -> None:
        for name in ("hidden", "embed", "eval_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"expected {name} to be an integer >= 1, got {value!r}")
        if not 1 <= self.depth < MAX_DEPTH:
            raise ValueError(f"expected depth from 1 to {MAX_DEPTH - 1}, got {self.depth}")
        if not self.depth < self.test_depth <= MAX_DEPTH:
            raise ValueError(f"expected test_depth from depth + 1 = {self.depth + 1} to {MAX_DEPTH}, got {self.test_depth}")
        parse_operators(self.operators)
        if self.encoder != "tree" and self.cell != DEFAULT_CELL:
            raise ValueError(f"expected no cell with encoder {self.encoder!r} (cell chooses the tree cell of the tree encoder and "
                             f"is not used by the {self.encoder} encoder), got cell {self.cell!r}; use --encoder tree or drop --cell")

    def depths(self, split: str) -> range:
        """The tree depths of a split: 1..depth for train and valid, depth+1..test_depth for test."""
        return range(self.depth + 1, self.test_depth + 1) if split == "test" else range(1, self.depth + 1)


class Tokens(NamedTuple):
    """Bracketed strings as token ids: ``ids`` (B, T) int64 padded with 0, ``lengths`` (B,) int64."""

    ids: Tensor
    lengths: Tensor

    def to(self, device) -> "Tokens":
        return Tokens(self.ids.to(device), self.lengths.to(device))


def tree_batch(trees: list[Any]) -> TreeBatch:
    """The trees as a ``TreeBatch`` whose ``x`` (N,) is ``token id + len(VOCABULARY) * position``:
    the token and whether the node is its parent's left (0) or right (1) operand (roots: 0)."""
    batch = TreeBatch.from_nested(trees)
    token = torch.tensor([VOCABULARY[label] for label in batch.labels], dtype=torch.int64)  # (N,)
    return batch.with_x(token + len(VOCABULARY) * batch.position)


class ExprTreeEncoderModel(nn.Module):
    """Tree encoder (embedding of token and position, a tree cell bottom-up) and a linear layer:
    ``forward(trees: TreeBatch) -> (T, 10)`` logits of each tree's value."""

    def __init__(self, hidden: int, embed: int, cell: str = "nary_lstm") -> None:
        super().__init__()
        positional = cell in POSITIONAL_CELLS  # one weight per child position: left and right operand
        self.encoder = TreeEncoder(2 * len(VOCABULARY), embed, hidden, cell=cell, max_arity=2 if positional else None)
        self.head = nn.Linear(hidden, NUM_CLASSES)

    def forward(self, trees: TreeBatch) -> Tensor:
        return self.head(self.encoder(trees).roots)  # (T, H) -> (T, 10)


class ExprSequenceModel(nn.Module):
    """Token embedding, ``Recurrent(LSTMCell)`` over the bracketed string, linear layer on the state
    after each string's last token: ``forward(tokens: Tokens) -> (B, 10)`` logits."""

    def __init__(self, hidden: int, embed: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(len(VOCABULARY), embed, padding_idx=0)
        self.rnn = Recurrent(LSTMCell(embed, hidden))
        self.head = nn.Linear(hidden, NUM_CLASSES)

    def forward(self, tokens: Tokens) -> Tensor:
        _, state = self.rnn(self.embedding(tokens.ids), lengths=tokens.lengths)  # h: (B, H) at each length - 1
        return self.head(state.h)  # (B, 10)


@register_task
class ExprTreeTask(Task):
    """Arithmetic expression trees (value mod 10), train depth <= 4, test depths 5-8: Tree-LSTM or sequence LSTM."""

    name = "exprtree"
    Options = ExprTreeOptions
    monitor = "accuracy"
    mode = "max"
    unit = "tree"

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        self.operators = parse_operators(self.options.operators)
        self._eval: dict[str, list[tuple[Any, Tensor, Tensor]]] = {}

    def inputs(self, trees: list[Any]) -> TreeBatch | Tokens:
        """What the model reads: a ``TreeBatch`` (tree encoder) or ``Tokens`` (sequence encoder)."""
        return tree_batch(trees) if self.options.encoder == "tree" else Tokens(*encode_tokens(trees))

    def build_model(self) -> nn.Module:
        o = self.options
        if o.encoder == "tree":
            return ExprTreeEncoderModel(o.hidden, o.embed, o.cell)
        return ExprSequenceModel(o.hidden, o.embed)

    def train_batches(self, batch_size: int, shard: Shard, seed: int) -> SeededBatches:
        rows, depths = shard.rows(batch_size), list(self.options.depths("train"))

        def make(i: int) -> tuple[TreeBatch | Tokens, Tensor]:
            d = expressions(batch_size, depths, operators=self.operators, held=False, seed=derive_seed(seed, i))
            return self.inputs(d.trees[rows]), d.values[rows]

        return SeededBatches(make)

    def step(self, model: nn.Module, batch, state) -> StepOutput:
        inputs, labels = batch
        logits = model(inputs.to(labels.device))
        return StepOutput(F.cross_entropy(logits, labels), None, labels.shape[0])

    def eval_data(self, split: str) -> list[tuple[Any, Tensor, Tensor]]:
        """The split's trees in chunks of at most 500: ``(inputs, values (b,), depths (b,))``, made once.
        Each depth has ``eval_size`` distinct trees, or all there are (25 held-out trees of depth 1
        with the three default operators)."""
        split = self.check_split(split)
        if split not in self._eval:
            o, base = self.options, VALID_SEED if split == "valid" else TEST_SEED
            chunks = []
            for d in o.depths(split):
                data = expressions(o.eval_size, d, operators=self.operators, held=True if split == "valid" else None,
                                   distinct=True, seed=derive_seed(base, d))
                for start in range(0, len(data.trees), EVAL_CHUNK):
                    part = slice(start, start + EVAL_CHUNK)
                    chunks.append((self.inputs(data.trees[part]), data.values[part], data.depths[part]))
            self._eval[split] = chunks
        return self._eval[split]

    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        device = next(model.parameters()).device
        total, right, counts = 0.0, {}, torch.zeros(NUM_CLASSES, dtype=torch.int64)
        for inputs, values, depths in self.eval_data(split):
            logits = model(inputs.to(device))
            values, depths = values.to(device), depths.to(device)
            total += float(F.cross_entropy(logits, values, reduction="sum"))
            hit = logits.argmax(-1) == values
            for d in depths.unique().tolist():
                r, n = right.get(d, (0, 0))
                right[d] = (r + int(hit[depths == d].sum()), n + int((depths == d).sum()))
            counts += torch.bincount(values.cpu(), minlength=NUM_CLASSES)
        n = int(counts.sum())
        metrics = {"loss": total / n, "accuracy": sum(r for r, _ in right.values()) / n,
                   "majority": int(counts.max()) / n}
        metrics.update({f"acc_d{d}": r / k for d, (r, k) in sorted(right.items())})
        return metrics
