"""``carousel train codename``: name a standard-library function's first word from its body.

The data are ``carousel.data.codename``: every ``def`` in the pinned standard-library files, its
name removed from its input, labelled with the first word of its name among the ``classes`` most
frequent in the training split (``init``, ``get``, ``set``, ``is``, ``repr``, ...) or ``other``;
files go to train / valid / test by a hash of their path. Functions with more than ``max_nodes``
AST nodes are left out (``evaluate`` reports how many as ``left_out``). Three encoders
(``--encoder``), each followed by a linear layer to the classes and trained by cross-entropy:

* ``sequence``: an LSTM over the tokens (``RecurrentModel``, the state after the last token);
* ``tree``: a Child-Sum Tree-LSTM over the AST (Tai, Socher & Manning 2015), the root's state;
* ``graph``: a gated graph network over the AST with child, parent, next-token and same-variable
  edges (Li et al. 2016), the gated-sum graph readout (eq. 7).

``evaluate`` reports ``accuracy`` and ``macro_f1`` (scikit-learn's ``f1_score(average="macro")``
over the classes present in the split or predicted) with, on the same functions, two baselines:
the majority class of the training split (``majority_*``) and a logistic regression on the bag
of AST node types of each function (``logreg_*``: node-type counts, sublinear tf and L2
normalisation, scikit-learn's ``LogisticRegression``), fitted on the training functions.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pad_sequence

from ...data.codename import (EDGE_TYPES, TOKEN_FALLBACK, CodeFunction, FunctionSet, class_index, graph_edges,
                              name_classes, stdlib_functions, top_vocabulary)
from ...models import RecurrentModel
from ...models.parts import last_step
from ...structures import GatedGraphNetwork, GatedSumReadout, Graph, GraphBatch, TreeBatch, TreeEncoder
from ..batches import SeededBatches, derive_seed
from ..config import option
from ..registry import register_task
from ..task import Shard, StepOutput, Task

ENCODERS = ("sequence", "tree", "graph")
SPECIALS = ("<pad>", "<unk>", "<str>", "<num>")
EVAL_BATCH = 256
MIN_NODES = 10  # the least node budget: under it a split keeps a few dozen functions or none


@dataclass(frozen=True)
class CodeNameOptions:
    encoder: str = option("tree", "what reads a function: 'sequence' (LSTM over its tokens), 'tree' (Child-Sum Tree-LSTM over its AST) or 'graph' (gated graph network over its AST with token and variable edges)", choices=ENCODERS)
    classes: int = option(20, "the most frequent first words kept as classes (at least 2); the rest are 'other'")
    max_nodes: int = option(300, f"node budget (at least {MIN_NODES}): functions with more AST nodes are left out of every split")
    max_functions: int = option(0, "train on the first N training functions only, in file order (0: all)")
    vocab: int = option(5000, "token or node-label vocabulary: the N most frequent in the training functions (at least 2)")
    embed: int = option(64, "token or node-label embedding size (the graph encoder embeds to hidden)")
    hidden: int = option(64, "state size of the LSTM, Tree-LSTM or graph nodes")
    propagation: int = option(6, "propagation steps K of the gated graph network")
    eval_size: int = option(0, "evaluate on the first N functions of the validation and test splits, in file order (0: all)")

    def __post_init__(self) -> None:
        for name in ("classes", "max_nodes", "vocab", "embed", "hidden", "propagation"):
            if isinstance(getattr(self, name), bool) or not isinstance(getattr(self, name), int):
                raise ValueError(f"expected {name} to be an integer, got {getattr(self, name)!r}")
        for name in ("embed", "hidden", "propagation"):
            if getattr(self, name) < 1:
                raise ValueError(f"expected {name} >= 1, got {getattr(self, name)!r}")
        if self.classes < 2:
            raise ValueError(f"expected classes >= 2 (first words kept as classes besides 'other'), got {self.classes!r}")
        if self.vocab < 2:
            raise ValueError(f"expected vocab >= 2 (tokens or node labels besides the special ids), got {self.vocab!r}")
        if self.max_nodes < MIN_NODES:
            raise ValueError(f"expected max_nodes >= {MIN_NODES}, got {self.max_nodes!r}: the smallest functions have 3 or 4 AST "
                             f"nodes, so a smaller node budget leaves out nearly every function; raise --max-nodes")
        for name in ("max_functions", "eval_size"):
            if isinstance(getattr(self, name), bool) or not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise ValueError(f"expected {name} >= 0 (0: all), got {getattr(self, name)!r}")
        if self.encoder not in ENCODERS:
            raise ValueError(f"unknown encoder {self.encoder!r}; expected one of: {', '.join(ENCODERS)}")


class TokenBatch(NamedTuple):
    """Padded token ids (B, T) int64 (0 past each end) and lengths (B,) int64."""

    ids: Tensor
    lengths: Tensor

    def to(self, device) -> "TokenBatch":
        return TokenBatch(self.ids.to(device), self.lengths.to(device))


class SequenceNamer(nn.Module):
    """Token ids -> embedding -> LSTM -> the state after each function's last token -> (B, C) logits.

    The LSTM runs over the padded batch without lengths: the padding follows each function's end,
    so the outputs up to the end are those of the function alone, and the fused kernel serves the
    whole batch (about 4x faster than masking the state past each end)."""

    def __init__(self, vocab_size: int, embed: int, hidden: int, num_classes: int) -> None:
        super().__init__()
        self.rnn = RecurrentModel("lstm", embed, hidden, num_classes, vocab_size=vocab_size, readout="all")

    def forward(self, batch: TokenBatch) -> Tensor:
        logits, _ = self.rnn(batch.ids)  # (B, T, C)
        return last_step(logits, batch.lengths)  # (B, C)


class TreeNamer(nn.Module):
    """Node-label ids on the AST -> Child-Sum Tree-LSTM bottom-up -> the root's state -> (T, C) logits."""

    def __init__(self, vocab_size: int, embed: int, hidden: int, num_classes: int) -> None:
        super().__init__()
        self.encoder = TreeEncoder(vocab_size, embed, hidden, cell="child_sum_lstm")
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, trees: TreeBatch) -> Tensor:
        return self.head(self.encoder(trees).roots)  # (T, C)


class GraphNamer(nn.Module):
    """Node-label ids -> gated graph network over 4 edge types -> gated-sum readout -> (G, C) logits."""

    def __init__(self, vocab_size: int, hidden: int, propagation: int, num_classes: int) -> None:
        super().__init__()
        self.ggnn = GatedGraphNetwork(hidden, len(EDGE_TYPES), steps=propagation, num_tokens=vocab_size)
        self.readout = GatedSumReadout(hidden, hidden, hidden)
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, graphs: GraphBatch) -> Tensor:
        h, h0 = self.ggnn(graphs)  # (N, H) each
        return self.head(self.readout(h, h0, graphs))  # (G, C)


class LengthBuckets(SeededBatches):
    """Batches of function indices from a fixed set, similar lengths together (less padding).

    Each epoch the ``n`` indices are shuffled from ``(seed, epoch)``; each run of ``pool`` global
    batches is sorted by ``lengths`` and cut into batches, and the batches of the epoch are put in
    a shuffled order (an epoch is ``n // batch_size`` batches; the rest, a different one each
    epoch, waits). Batch ``i`` is a pure function of ``i``; this rank gets its rows
    ``shard.rows(batch_size)`` of each global batch, passed through ``collate``.
    """

    def __init__(self, lengths: Tensor, batch_size: int, shard: Shard, seed: int, collate, *, pool: int = 16) -> None:
        n = lengths.numel()
        if batch_size > n:
            raise ValueError(f"batch_size {batch_size} is larger than the {n} training functions; use a smaller one")
        self.lengths, self.batch_size, self.rows, self.seed = lengths, batch_size, shard.rows(batch_size), seed
        self.per_epoch, self.pool, self.collate = n // batch_size, pool, collate
        self._epoch, self._batches = -1, []
        super().__init__(self._batch)

    def _batch(self, i: int) -> Any:
        epoch, j = divmod(i, self.per_epoch)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(derive_seed(self.seed, epoch))
            B, P = self.batch_size, self.pool * self.batch_size
            order = torch.randperm(self.lengths.numel(), generator=g)[: self.per_epoch * B]
            batches = []
            for start in range(0, order.numel(), P):
                chunk = order[start : start + P]
                chunk = chunk[torch.argsort(self.lengths[chunk], stable=True)]
                batches += list(chunk.split(B))
            self._epoch = epoch
            self._batches = [batches[k] for k in torch.randperm(len(batches), generator=g).tolist()]
        return self.collate(self._batches[j][self.rows].tolist())


def node_kinds(fn: CodeFunction) -> Counter:
    """The bag of AST node types of a function (the logistic-regression baseline's features)."""
    return Counter(fn.kinds)


@register_task
class CodeNameTask(Task):
    """Predict a stdlib function's first name word from its body (LSTM, Tree-LSTM or gated graph network); with baselines."""

    name = "codename"
    Options = CodeNameOptions
    monitor = "macro_f1"  # accuracy is mostly the class 'other' (two functions in three)
    mode = "max"
    unit = "fn"

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        self._sets: dict[str, FunctionSet] = {}
        self._classes: tuple[str, ...] | None = None
        self._vocab: dict[str, int] | None = None
        self._inputs: dict[str, list] = {}
        self._eval: dict[str, list] = {}
        self._baselines: dict[str, dict[str, float]] = {}
        self._logreg: Any = None  # the bag-of-node-types baseline (a scikit-learn Pipeline), fitted once

    # ---- data --------------------------------------------------------------------------------
    def functions(self, split: str) -> FunctionSet:
        """The functions of ``split`` (the first ``max_functions`` or ``eval_size`` when set)."""
        if split not in self._sets:
            o = self.options
            limit = (o.max_functions if split == "train" else o.eval_size) or None
            self._sets[split] = stdlib_functions(split, max_nodes=o.max_nodes, limit=limit)
        return self._sets[split]

    @property
    def classes(self) -> tuple[str, ...]:
        """The class words, most frequent first, ``other`` last."""
        if self._classes is None:
            self._classes = name_classes((f.word for f in self.functions("train").functions), self.options.classes)
        return self._classes

    @property
    def vocabulary(self) -> dict[str, int]:
        """Tokens (sequence) or node labels and every node kind (tree, graph) -> ids; ``<pad>`` is 0."""
        if self._vocab is None:
            train = self.functions("train").functions
            if self.options.encoder == "sequence":
                self._vocab = top_vocabulary((f.tokens for f in train), self.options.vocab, specials=SPECIALS)
            else:
                kinds = sorted({k for f in train for k in f.kinds})
                self._vocab = top_vocabulary((f.labels for f in train), self.options.vocab, specials=SPECIALS + tuple(kinds))
        return self._vocab

    def labels(self, split: str) -> Tensor:
        """Class ids (n,) of the split's functions."""
        return torch.tensor([class_index(f.word, self.classes) for f in self.functions(split).functions], dtype=torch.int64)

    def encode(self, fn: CodeFunction) -> Tensor:
        """A function's input ids: one per token (sequence) or per AST node (tree, graph); a string
        outside the vocabulary falls back to its kind (``<str>``, ``<num>``, the node type) or ``<unk>``."""
        v, unk = self.vocabulary, self.vocabulary["<unk>"]
        if self.options.encoder == "sequence":
            ids = [v.get(t, v[TOKEN_FALLBACK[k]]) for t, k in zip(fn.tokens, fn.token_kinds)] or [unk]
        else:
            ids = [v.get(lab, v.get(kind, unk)) for lab, kind in zip(fn.labels, fn.kinds)]
        return torch.tensor(ids, dtype=torch.int64)

    def _encoded(self, split: str) -> list:
        if split not in self._inputs:
            enc = self.options.encoder
            out = []
            for fn in self.functions(split).functions:
                ids = self.encode(fn)
                out.append((fn, ids, graph_edges(fn) if enc == "graph" else None))
            self._inputs[split] = out
        return self._inputs[split]

    def collate(self, split: str, indices: list[int]) -> tuple[Any, Tensor]:
        """The inputs of the split's functions ``indices`` for the encoder, and their class ids (B,)."""
        items = [self._encoded(split)[i] for i in indices]
        labels = torch.tensor([class_index(fn.word, self.classes) for fn, _, _ in items], dtype=torch.int64)
        enc = self.options.encoder
        if enc == "sequence":
            ids = [x for _, x, _ in items]
            lengths = torch.tensor([x.numel() for x in ids], dtype=torch.int64)
            return TokenBatch(pad_sequence(ids, batch_first=True, padding_value=0), lengths), labels
        if enc == "tree":
            trees = TreeBatch.from_parents([list(fn.parents) for fn, _, _ in items], [fn.labels for fn, _, _ in items])
            return trees.with_x(torch.cat([x for _, x, _ in items])), labels
        graphs = [Graph(fn.num_nodes, edges, types, x) for fn, x, (edges, types) in items]
        return GraphBatch.from_graphs(graphs, num_edge_types=len(EDGE_TYPES)), labels

    # ---- the task contract -------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        o, V, C = self.options, len(self.vocabulary), len(self.classes)
        if o.encoder == "sequence":
            return SequenceNamer(V, o.embed, o.hidden, C)
        if o.encoder == "tree":
            return TreeNamer(V, o.embed, o.hidden, C)
        return GraphNamer(V, o.hidden, o.propagation, C)

    def train_batches(self, batch_size: int, shard: Shard, seed: int) -> LengthBuckets:
        lengths = torch.tensor([x.numel() for _, x, _ in self._encoded("train")])
        return LengthBuckets(lengths, batch_size, shard, seed, lambda idx: self.collate("train", idx))

    def step(self, model: nn.Module, batch, state) -> StepOutput:
        inputs, labels = batch
        logits = model(inputs.to(labels.device))
        return StepOutput(F.cross_entropy(logits, labels), None, labels.shape[0])

    def predict(self, model: nn.Module, split: str) -> tuple[Tensor, Tensor]:
        """Logits (n, C) of ``model`` on every function of ``split`` (in batches of 256) and the class ids (n,)."""
        if split not in self._eval:
            n = len(self.functions(split))
            self._eval[split] = [self.collate(split, list(range(s, min(s + EVAL_BATCH, n)))) for s in range(0, n, EVAL_BATCH)]
        device = next(model.parameters()).device
        logits = torch.cat([model(inputs.to(device)).float().cpu() for inputs, _ in self._eval[split]])
        return logits, torch.cat([y for _, y in self._eval[split]])

    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        split = self.check_split(split)
        logits, labels = self.predict(model, split)
        predicted = logits.argmax(-1)
        metrics = {
            "loss": float(F.cross_entropy(logits, labels)),
            "accuracy": float((predicted == labels).double().mean()),
            "macro_f1": macro_f1(labels, predicted),
        }
        fs = self.functions(split)
        return {**metrics, **self.baselines(split), "functions": float(len(fs)), "left_out": float(fs.too_large)}

    # ---- baselines ---------------------------------------------------------------------------
    def baselines(self, split: str) -> dict[str, float]:
        """Accuracy and macro-F1 on ``split`` of the training split's majority class and of the
        bag-of-node-types logistic regression fitted on the training functions."""
        if split not in self._baselines:
            train, labels = self.functions("train").functions, self.labels(split)
            majority = Counter(self.labels("train").tolist()).most_common(1)[0][0]
            always = torch.full_like(labels, majority)
            if self._logreg is None:
                # scikit-learn is imported only here and in macro_f1: importing it would slow every command
                from sklearn.feature_extraction import DictVectorizer
                from sklearn.feature_extraction.text import TfidfTransformer
                from sklearn.linear_model import LogisticRegression
                from sklearn.pipeline import Pipeline

                self._logreg = Pipeline([
                    ("counts", DictVectorizer()),
                    ("tf", TfidfTransformer(use_idf=False, sublinear_tf=True)),
                    ("logreg", LogisticRegression(max_iter=2000)),
                ]).fit([node_kinds(f) for f in train], self.labels("train").numpy())
            guess = torch.from_numpy(self._logreg.predict([node_kinds(f) for f in self.functions(split).functions]))
            self._baselines[split] = {
                "majority_accuracy": float((always == labels).double().mean()),
                "majority_macro_f1": macro_f1(labels, always),
                "logreg_accuracy": float((guess == labels).double().mean()),
                "logreg_macro_f1": macro_f1(labels, guess),
            }
        return self._baselines[split]


def macro_f1(labels: Tensor, predicted: Tensor) -> float:
    """scikit-learn's macro-averaged F1 over the classes that occur in ``labels`` or ``predicted``
    (an ill-defined precision or recall counts as 0)."""
    from sklearn.metrics import f1_score  # see evaluate: only evaluation needs scikit-learn

    return float(f1_score(labels.numpy(), predicted.numpy(), average="macro", zero_division=0))
