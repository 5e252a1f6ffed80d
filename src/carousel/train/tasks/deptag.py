r"""``carousel train deptag``: the part-of-speech tag of every word of a Turkish dependency tree.

The sentences are those of ``carousel.data.deptag.turkish_treebank()`` (the pinned PyPI package
``turkish-treebanks==1.0.0``, CoNLL-U, parsed by ``conllu``), split by a hash of their ids into
train / valid / test, and batched by ``TreeBatch.from_conllu``. Each word reads its id among the
``vocab`` most frequent training forms (``<unk>`` for the rest), and with ``--chars C`` also the
final states of a character BiLSTM (C units per direction) over its form. Two encoders of the same
sizes (``embedding``, ``hidden`` per direction) give each word a state and a linear layer its tag:

* ``--encoder tree``: a bidirectional tree layer (``BidirectionalTree``): a Child-Sum Tree-LSTM
  (Tai, Socher & Manning 2015, eqs. 2-8) from the leaves up, then an ``LSTMCell`` from the root
  down reading ``[x_j; h^\uparrow_j]``; a word sees its subtree and its ancestors' path, but not
  the order of its siblings;
* ``--encoder bilstm``: ``carousel.LSTM(bidirectional=True)`` over the words in sentence order.

Loss: cross-entropy per word (nats). Metrics: ``accuracy`` (per word), ``oov_accuracy`` (over the
words whose form never occurs in the training split, a share ``oov_share`` of them), beside the
most-frequent-tag baseline of the same split (``baseline_accuracy``, ``baseline_oov_accuracy``;
``MostFrequentTag``). The monitor is ``accuracy``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ...cells.lstm import LSTMCell
from ...data.deptag import MostFrequentTag, TaggedTreebank, forms, tag_accuracy, turkish_treebank, word_vocabulary
from ...layers import LSTM
from ...structures import BidirectionalTree, TreeBatch, make_tree_cell
from ..._checks import check_rate
from ..batches import ShuffledBatches
from ..config import option
from ..registry import register_task
from ..task import Shard, StepOutput, Task

ENCODERS = ("tree", "bilstm")
UP_CELLS = ("child_sum_lstm", "tree_gru", "recursive_shared")  # order-free: any number of children
DEFAULT_CELL = "child_sum_lstm"
EVAL_CHUNK = 512  # sentences per evaluation batch


@dataclass(frozen=True)
class DepTagOptions:
    encoder: str = option("tree", "'tree': bidirectional tree layer over the dependency tree; 'bilstm': BiLSTM over the words in order", choices=ENCODERS)
    cell: str = option(DEFAULT_CELL, "bottom-up tree cell of the tree encoder (not used by the bilstm encoder)", choices=UP_CELLS)
    vocab: int = option(5000, "word ids for the N most frequent training forms (the rest: <unk>)")
    embedding: int = option(64, "word embedding size")
    hidden: int = option(64, "hidden units per direction (up and down for the tree)")
    chars: int = option(0, "units per direction of a character BiLSTM over each word's form (0: word ids only)")
    dropout: float = option(0.2, "dropout on the word inputs and on the encoder's states")

    def __post_init__(self) -> None:
        if not isinstance(self.vocab, int) or self.vocab < 2:
            raise ValueError(f"expected vocab >= 2 (word ids for at least two training forms besides <unk>), got {self.vocab!r}")
        for name in ("embedding", "hidden"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"expected {name} >= 1, got {getattr(self, name)!r}")
        if not isinstance(self.chars, int) or self.chars < 0:
            raise ValueError(f"expected chars >= 0 (0: off), got {self.chars!r}")
        check_rate(self.dropout, "dropout")
        if self.encoder != "tree" and self.cell != DEFAULT_CELL:
            raise ValueError(f"expected no cell with encoder {self.encoder!r} (cell chooses the bottom-up cell of the tree encoder "
                             f"and is not used by the {self.encoder} encoder), got cell {self.cell!r}; use --encoder tree or drop --cell")


class TagBatch(NamedTuple):
    """Sentences as one ``TreeBatch`` (nodes in its pre-order) and per-node tensors in that order:
    ``words`` (N,) word ids, ``tags`` (N,) tag ids, ``oov`` (N,) bool (form not in the training
    split), ``position`` (N,) the word's place in its sentence (0-based); ``chars`` (U, L) char ids
    of the batch's distinct forms, padded with 0, ``char_lengths`` (U,), ``form_index`` (N,) each
    node's row of ``chars``."""

    trees: TreeBatch
    words: Tensor
    tags: Tensor
    oov: Tensor
    position: Tensor
    chars: Tensor
    char_lengths: Tensor
    form_index: Tensor


class Encoding(NamedTuple):
    """What turns sentences into a ``TagBatch``: word, character and tag ids, the training forms."""

    words: dict[str, int]
    chars: dict[str, int]
    tags: dict[str, int]
    known: frozenset[str]

    def batch(self, sentences: Sequence) -> TagBatch:
        """A ``TagBatch`` of ``conllu.TokenList`` sentences (words only, ``read_conllu``'s); forms
        outside ``words`` get id 0 (``<unk>``), characters outside ``chars`` id 1. Raises
        ``ValueError`` for a tag outside ``tags`` or a sentence that is not a tree."""
        trees = TreeBatch.from_conllu(sentences)  # labels: the forms, in pre-order
        labels = trees.labels
        unique = list(dict.fromkeys(labels))
        row = {form: i for i, form in enumerate(unique)}
        longest = max(1, *(len(form) for form in unique))  # an empty form reads as one padding character
        chars = torch.zeros(len(unique), longest, dtype=torch.int64)
        for i, form in enumerate(unique):
            chars[i, : len(form)] = torch.tensor([self.chars.get(c, 1) for c in form], dtype=torch.int64)
        try:
            tags = torch.tensor([self.tags[t] for t in trees.attrs["upos"]], dtype=torch.int64)
        except KeyError as e:
            raise ValueError(f"tag {e.args[0]!r} is not in the tag set {sorted(self.tags)}") from None
        words = torch.tensor([self.words.get(f, 0) for f in labels], dtype=torch.int64)
        return TagBatch(
            trees.with_x(words),
            words,
            tags,
            torch.tensor([f not in self.known for f in labels], dtype=torch.bool),
            torch.tensor(trees.attrs["id"], dtype=torch.int64) - 1,
            chars,
            torch.tensor([max(1, len(f)) for f in unique], dtype=torch.int64),
            torch.tensor([row[f] for f in labels], dtype=torch.int64),
        )


def make_encoding(treebank: TaggedTreebank, vocab: int) -> Encoding:
    """Word ids of the ``vocab`` most frequent training forms (0: ``<unk>``), character ids of the
    training forms' characters in code-point order (0: padding, 1: unknown), the tag set's ids."""
    train_forms = [f for s in treebank.train for f in forms(s)]
    chars = {c: i + 2 for i, c in enumerate(sorted(set("".join(train_forms))))}
    return Encoding(word_vocabulary(treebank.train, vocab), chars, {t: i for i, t in enumerate(treebank.tagset)},
                    frozenset(train_forms))


class CharWordEncoder(nn.Module):
    """A word from its characters, as in Ling et al. 2015 ("Finding Function in Form: Compositional
    Character Models for Open Vocabulary Word Representation", eqs. 1-2, without their final linear
    map): a BiLSTM over the characters, its forward final state beside its backward final state.
    ``forward(chars, lengths)``: ``chars`` (U, L) int64 character ids padded with 0, ``lengths``
    (U,) in [1, L] -> (U, 2 * hidden)."""

    def __init__(self, num_chars: int, hidden: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(num_chars, hidden, padding_idx=0)
        self.lstm = LSTM(hidden, hidden, bidirectional=True, batch_first=True)

    def forward(self, chars: Tensor, lengths: Tensor) -> Tensor:
        packed = pack_padded_sequence(self.embedding(chars), lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, (h_n, _) = self.lstm(packed)  # (2, U, H): forward final, backward final
        return torch.cat([h_n[0], h_n[1]], dim=1)


class DepTagger(nn.Module):
    """A tagger: each word's embedding (E; with ``chars`` C > 0 beside its ``CharWordEncoder``
    state, 2C), dropout, the encoder (``"tree"``: ``BidirectionalTree`` of the up ``cell`` and a
    top-down ``LSTMCell``; ``"bilstm"``: ``carousel.LSTM(bidirectional=True)`` over the words in
    order, as the taggers of Plank, Søgaard & Goldberg 2016), dropout, and a linear layer.
    ``forward(batch: TagBatch)`` -> tag logits (N, num_tags) in the batch's node order. Raises
    ``ValueError`` for an unknown encoder."""

    def __init__(self, encoder: str, num_words: int, num_chars: int, num_tags: int, *, embedding: int, hidden: int,
                 chars: int = 0, cell: str = "child_sum_lstm", dropout: float = 0.0) -> None:
        super().__init__()
        self.kind = encoder
        self.words = nn.Embedding(num_words, embedding)
        self.chars = CharWordEncoder(num_chars, chars) if chars else None
        size = embedding + 2 * chars
        if encoder == "tree":
            self.encoder: nn.Module = BidirectionalTree(make_tree_cell(cell, size, hidden), LSTMCell(size + hidden, hidden))
        elif encoder == "bilstm":
            self.encoder = LSTM(size, hidden, bidirectional=True, batch_first=True)
        else:
            raise ValueError(f"unknown encoder {encoder!r}; expected one of: {', '.join(ENCODERS)}")
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(2 * hidden, num_tags)

    def forward(self, batch: TagBatch) -> Tensor:
        x = self.words(batch.words)  # (N, E)
        if self.chars is not None:
            x = torch.cat([x, self.chars(batch.chars, batch.char_lengths).index_select(0, batch.form_index)], dim=1)
        x = self.dropout(x)
        if self.kind == "tree":
            h = self.encoder(x, batch.trees).nodes  # (N, 2H): [up; down]
        else:
            sentence, place = batch.trees.tree, batch.position
            lengths = batch.trees.tree_sizes
            padded = x.new_zeros(len(lengths), int(lengths.max()), x.shape[1]).index_put((sentence, place), x)  # (T, L, I)
            packed = pack_padded_sequence(padded, lengths.cpu(), batch_first=True, enforce_sorted=False)
            out, _ = pad_packed_sequence(self.encoder(packed)[0], batch_first=True)  # (T, L, 2H)
            h = out[sentence, place]  # (N, 2H)
        return self.head(self.dropout(h))


class _SentenceBatches:
    """``ShuffledBatches`` of sentence indices, each turned into a ``TagBatch``."""

    def __init__(self, order: ShuffledBatches, make) -> None:
        self.order, self.make = order, make

    def __iter__(self) -> "_SentenceBatches":
        return self

    def __next__(self) -> TagBatch:
        (index,) = next(self.order)
        return self.make(index.tolist())

    def state_dict(self) -> dict[str, Any]:
        return self.order.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.order.load_state_dict(state)


@register_task
class DepTagTask(Task):
    """Universal POS tags of Turkish dependency trees: bidirectional tree layer or BiLSTM, beside the most-frequent-tag baseline."""

    name = "deptag"
    Options = DepTagOptions
    monitor = "accuracy"
    mode = "max"
    unit = "tok"

    def __init__(self, options: Any = None, treebank: TaggedTreebank | None = None) -> None:
        super().__init__(options)
        self._treebank = treebank
        self._encoding: Encoding | None = None
        self._eval: dict[str, tuple[list[TagBatch], dict[str, float]]] = {}

    @property
    def treebank(self) -> TaggedTreebank:
        if self._treebank is None:
            self._treebank = turkish_treebank()
        return self._treebank

    @property
    def encoding(self) -> Encoding:
        if self._encoding is None:
            self._encoding = make_encoding(self.treebank, self.options.vocab)
        return self._encoding

    def build_model(self) -> nn.Module:
        o, e = self.options, self.encoding
        return DepTagger(o.encoder, len(e.words), len(e.chars) + 2, len(e.tags), embedding=o.embedding, hidden=o.hidden,
                         chars=o.chars, cell=o.cell, dropout=o.dropout)

    def train_batches(self, batch_size: int, shard: Shard, seed: int) -> _SentenceBatches:
        train = self.treebank.train
        order = ShuffledBatches([torch.arange(len(train))], batch_size, shard, seed=seed)
        return _SentenceBatches(order, lambda index: self.encoding.batch([train[i] for i in index]))

    def step(self, model: nn.Module, batch: TagBatch, state) -> StepOutput:
        batch = batch._replace(trees=batch.trees.to(batch.tags.device))
        logits = model(batch)
        return StepOutput(F.cross_entropy(logits, batch.tags), None, int(batch.tags.numel()))

    def eval_batches(self, split: str) -> tuple[list[TagBatch], dict[str, float]]:
        """The split in chunks of ``EVAL_CHUNK`` sentences, and the baseline's scores on it (made once)."""
        if split not in self._eval:
            sentences = self.treebank.split(self.check_split(split))
            baseline = MostFrequentTag(self.treebank.train)
            scores = tag_accuracy(baseline.predict(sentences), sentences, self.encoding.known)
            chunks = [self.encoding.batch(sentences[i : i + EVAL_CHUNK]) for i in range(0, len(sentences), EVAL_CHUNK)]
            self._eval[split] = (chunks, {"baseline_accuracy": scores["accuracy"],
                                          "baseline_oov_accuracy": scores["oov_accuracy"], "oov_share": scores["oov_share"]})
        return self._eval[split]

    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        chunks, baseline = self.eval_batches(split)
        device = next(model.parameters()).device
        loss = right = total = oov_right = oov_total = 0.0
        for batch in chunks:
            batch = batch._replace(trees=batch.trees.to(device), **{k: getattr(batch, k).to(device) for k in TagBatch._fields[1:]})
            logits = model(batch)
            hit = logits.argmax(-1) == batch.tags
            loss += float(F.cross_entropy(logits, batch.tags, reduction="sum"))
            right += int(hit.sum())
            total += batch.tags.numel()
            oov_right += int(hit[batch.oov].sum())
            oov_total += int(batch.oov.sum())
        return {"loss": loss / total, "accuracy": right / total,
                "oov_accuracy": oov_right / oov_total if oov_total else float("nan"), **baseline}
