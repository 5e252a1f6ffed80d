r"""``carousel train genome``: tag every base of a bacterial genome as coding or non-coding, reading it both ways.

The genome is *Chlamydia trachomatis* (``carousel.data.genome``: Debian's ``r-cran-seqinr``,
``ct.gbk.gz``, 1,042,519 bp; ``carousel data genome`` fetches it), or any one-record GenBank file
given with ``--file``. A base is coding (1) when a CDS feature covers it on either strand. The
regions are contiguous, in genome order: the first 80% of the bases train, the next 10% validate,
the last 10% test, so no held-out base is ever inside a training window.

Model: ``carousel.models.SequenceTagger`` over embedded bases (A, C, G, T, other), ``--cell`` with
``--hidden`` units per direction, bidirectional by default (Schuster & Paliwal 1997): whether a
base is coding depends on what lies on both sides of it (a gene's start codon upstream, its stop
downstream; genes of the other strand read backwards), which a forward-only network
(``--no-bidirectional``) sees only on one side. Loss: cross-entropy per base (nats).

* Training: batches of ``--window``-base windows at offsets drawn uniformly in the training region,
  batch ``i`` a pure function of ``(seed, i)`` (``SeededBatches``).
* Evaluation: the whole region, cut into consecutive cores of ``--eval-window`` bases; each core is
  read with ``--margin`` bases of context on each side (clipped at the region's ends, so nothing
  outside the split is read) and only the core's bases are scored, so every base but those within
  ``margin`` of a region end sees at least ``margin`` bases on both sides.

Metrics (scikit-learn's ``f1_score``, ``accuracy_score``): ``f1`` (per-base F1 of the coding
class; the monitor, higher is better), ``f1_noncoding`` (the non-coding class as positive),
``macro_f1`` (their mean), ``accuracy``, ``loss``; beside them, on the same bases, the share of
coding bases ``coding_share`` and two baselines:

* ``majority_*``: always "coding" (the genome is ~90% coding, so its coding F1 is 2p/(1+p), about
  0.95, while its non-coding F1 is 0: read ``f1_noncoding`` and ``macro_f1`` to see what a model
  adds);
* ``logreg_*``: a logistic regression (scikit-learn's ``LogisticRegression``, L2, C=1) on the
  frequencies of the 4^k k-mers (``--kmer`` k, default 4) that lie wholly inside a window of
  ``--kmer-window`` bases (default 201) centred at the base, clipped at the region's ends, each
  frequency standardised by its mean and standard deviation over the fitted bases; fitted on
  ``--logreg-bases`` training bases drawn at random (fixed seed), computed once per task. (On
  the validation region of C. trachomatis, k=4 and 201 bases gave the best non-coding F1 of
  k in {2, 3, 4} and windows of 99 and 201 bases, 0.23 against 0.07-0.16, on one sample of
  20,000 training bases; 0.21 on the task's own sample.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...cells import cell_names
from ...data.genome import NUM_CODES, Genome, GenomeSplit, load_genome, split_genome, windows
from ...models import SequenceTagger
from ..._checks import check_rate
from ..batches import SeededBatches, derive_seed
from ..config import option
from ..registry import register_task
from ..task import Shard, StepOutput, Task

EVAL_BATCH = 32  # windows per evaluation batch
LOGREG_SEED = 1_000_003  # fixed: the baseline is the same in every run
MAX_KMER = 6


@dataclass(frozen=True)
class GenomeOptions:
    file: str = option("", "a one-record GenBank file (.gbk, or .gbk.gz); empty: C. trachomatis from $CAROUSEL_DATA/genome, ~/.cache/carousel/genome or r-cran-seqinr (carousel data genome fetches it)")
    bidirectional: bool = option(True, "read the bases both ways (BiLSTM); --no-bidirectional: forward only")
    cell: str = option("lstm", "recurrent cell", choices=cell_names)
    hidden: int = option(64, "hidden units per direction")
    layers: int = option(1, "recurrent layers")
    embedding: int = option(8, "base embedding size")
    dropout: float = option(0.0, "variational dropout between layers and before the head")
    window: int = option(500, "training window length in bases")
    eval_window: int = option(2000, "bases scored per evaluation window")
    margin: int = option(200, "context bases read on each side of an evaluation window (not scored)")
    kmer: int = option(4, f"k of the k-mer logistic-regression baseline (1 to {MAX_KMER})")
    kmer_window: int = option(201, "bases around each base whose k-mers the baseline counts")
    logreg_bases: int = option(20000, "training bases the baseline is fitted on (0: no baseline)")

    def __post_init__(self) -> None:
        for name, low in (("hidden", 1), ("layers", 1), ("embedding", 1), ("window", 2), ("eval_window", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"expected {name} >= {low}, got {value!r}")
        if not isinstance(self.margin, int) or self.margin < 0:
            raise ValueError(f"expected margin >= 0 (context bases on each side), got {self.margin!r}")
        if not isinstance(self.kmer, int) or not 1 <= self.kmer <= MAX_KMER:
            raise ValueError(f"expected kmer in [1, {MAX_KMER}], got {self.kmer!r}")
        if not isinstance(self.kmer_window, int) or self.kmer_window < self.kmer:
            raise ValueError(f"expected kmer_window >= kmer ({self.kmer}) so that a window holds a k-mer, got {self.kmer_window!r}")
        if not isinstance(self.logreg_bases, int) or self.logreg_bases < 0 or 0 < self.logreg_bases < 10:
            raise ValueError(f"expected logreg_bases 0 (no baseline) or >= 10, got {self.logreg_bases!r}")
        check_rate(self.dropout, "dropout")


def kmer_ids(codes: np.ndarray, k: int) -> np.ndarray:
    """The id (base-4 number, first base most significant) of the k-mer starting at each position of
    ``codes`` (L,) -> (L - k + 1,) int64; -1 where the k-mer holds a code other than A, C, G, T."""
    c = codes.astype(np.int64)
    n = len(c) - k + 1
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    ids = np.zeros(n, dtype=np.int64)
    bad = np.zeros(n, dtype=bool)
    for j in range(k):
        part = c[j : j + n]
        ids = ids * 4 + np.minimum(part, 3)
        bad |= part > 3
    ids[bad] = -1
    return ids


def kmer_features(codes: np.ndarray, positions: np.ndarray, k: int, window: int, chunk: int = 20000) -> np.ndarray:
    """Frequencies (P, 4^k) float32 of the k-mers wholly inside ``[p - window // 2, p - window // 2 + window)``
    (clipped to ``codes`` (L,)) for each position p of ``positions`` (P,); a row with no k-mer is 0."""
    ids = kmer_ids(codes, k)  # (L - k + 1,)
    V, out = 4**k, np.zeros((len(positions), 4**k), dtype=np.float32)
    reach = np.arange(window - k + 1)  # (R,) k-mer starts relative to the window's start
    for lo in range(0, len(positions), chunk):
        pos = positions[lo : lo + chunk]
        starts = (pos - window // 2)[:, None] + reach  # (p, R)
        ok = (starts >= 0) & (starts < len(ids))
        kmers = np.where(ok, ids[np.clip(starts, 0, max(len(ids) - 1, 0))] if len(ids) else -1, -1)
        ok &= kmers >= 0
        rows = np.broadcast_to(np.arange(len(pos))[:, None], kmers.shape)
        counts = np.bincount((rows[ok] * V + kmers[ok]), minlength=len(pos) * V).reshape(len(pos), V)
        totals = counts.sum(1, keepdims=True)
        out[lo : lo + len(pos)] = counts / np.maximum(totals, 1)
    return out


def per_base_scores(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """``f1`` (coding = 1 positive), ``f1_noncoding`` (0 positive), ``macro_f1`` and ``accuracy`` of
    0/1 predictions (N,) against 0/1 labels (N,), by scikit-learn (an F1 with no positive
    predicted or present is 0)."""
    from sklearn.metrics import accuracy_score, f1_score

    f1 = float(f1_score(truth, predicted, pos_label=1, zero_division=0))
    f0 = float(f1_score(truth, predicted, pos_label=0, zero_division=0))
    return {"f1": f1, "f1_noncoding": f0, "macro_f1": (f1 + f0) / 2, "accuracy": float(accuracy_score(truth, predicted))}


@register_task
class GenomeTask(Task):
    """Coding or non-coding, base by base, of the C. trachomatis genome: BiLSTM or LSTM, beside k-mer logistic regression."""

    name = "genome"
    Options = GenomeOptions
    monitor = "f1"
    mode = "max"
    unit = "base"

    def __init__(self, options: Any = None, genome: Genome | None = None) -> None:
        super().__init__(options)
        self._genome = genome
        self._split: GenomeSplit | None = None
        self._eval: dict[str, tuple[list[tuple[Tensor, Tensor, list[tuple[int, int]]]], np.ndarray]] = {}
        self._baselines: dict[str, dict[str, float]] | None = None

    @property
    def genome(self) -> Genome:
        if self._genome is None:
            genome = load_genome(self.options.file or None)
            coding = int(genome.labels.sum())
            if coding in (0, len(genome)):  # one class only: nothing to learn, and its F1 scores are meaningless
                raise ValueError(f"{genome.source}: expected a genome with both coding (CDS) and non-coding bases, got "
                                 f"{coding:,} coding bases of {len(genome):,}" + ("; does the record hold CDS features?" if not coding else ""))
            self._genome = genome
        return self._genome

    @property
    def split(self) -> GenomeSplit:
        """The contiguous train / valid / test regions (``split_genome``: 80 / 10 / 10%)."""
        if self._split is None:
            self._split = split_genome(len(self.genome))
        return self._split

    def build_model(self) -> nn.Module:
        o = self.options
        return SequenceTagger(o.cell, o.embedding, o.hidden, 2, layers=o.layers, bidirectional=o.bidirectional,
                              vocab_size=NUM_CODES, dropout=o.dropout)

    def train_batches(self, batch_size: int, shard: Shard, seed: int) -> SeededBatches:
        """Batch ``i``: ``(bases, labels)``, each (b, window) int64, this rank's rows of ``batch_size``
        windows at offsets drawn from ``derive_seed(seed, i)``. ``ValueError`` when the training
        region is shorter than the window."""
        start, stop = self.split.train
        window = self.options.window
        if stop - start < window:
            raise ValueError(f"expected a window no longer than the training region ({stop - start} bases), got window {window}")
        rows, reach = shard.rows(batch_size), torch.arange(window)
        codes, labels = self.genome.codes, self.genome.labels

        def make(i: int) -> tuple[Tensor, Tensor]:
            g = torch.Generator().manual_seed(derive_seed(seed, i))
            offsets = torch.randint(start, stop - window + 1, (batch_size,), generator=g)[rows]  # (b,)
            index = offsets[:, None] + reach  # (b, window)
            return codes[index].long(), labels[index].long()

        return SeededBatches(make)

    def step(self, model: nn.Module, batch: tuple[Tensor, Tensor], state: Any) -> StepOutput:
        x, y = batch
        logits = model(x)  # (B, T, 2)
        return StepOutput(F.cross_entropy(logits.reshape(-1, 2), y.reshape(-1)), None, int(y.numel()))

    def eval_windows(self, split: str) -> tuple[list[tuple[Tensor, Tensor, list[tuple[int, int]]]], np.ndarray]:
        """The split's evaluation batches and its labels (N,) in order, made once. A batch is
        ``(bases (W, L) int64 padded with 0, lengths (W,), cores)``, ``cores[w] = (offset, size)``:
        the scored bases of row w are ``[offset, offset + size)``; the cores tile the region in order."""
        if split not in self._eval:
            a, b = self.split.region(self.check_split(split))
            o, codes = self.options, self.genome.codes
            rows = []
            for s, e in windows(a, b, o.eval_window):
                lo, hi = max(a, s - o.margin), min(b, e + o.margin)
                rows.append((codes[lo:hi].long(), (s - lo, e - s)))
            batches = []
            for i in range(0, len(rows), EVAL_BATCH):
                group = rows[i : i + EVAL_BATCH]
                lengths = torch.tensor([len(x) for x, _ in group])
                bases = torch.zeros(len(group), int(lengths.max()), dtype=torch.int64)
                for r, (x, _) in enumerate(group):
                    bases[r, : len(x)] = x
                batches.append((bases, lengths, [core for _, core in group]))
            self._eval[split] = (batches, self.genome.labels[a:b].numpy().astype(np.int64))
        return self._eval[split]

    def baselines(self) -> dict[str, dict[str, float]]:
        """Per split, ``coding_share``, ``majority_*`` and (``logreg_bases`` > 0) ``logreg_*`` scores
        (see the module docstring); fitted and scored once per task."""
        if self._baselines is None:
            from sklearn.linear_model import LogisticRegression

            o, codes = self.options, self.genome.codes.numpy()
            model, only = None, 1
            if o.logreg_bases:
                a, b = self.split.train
                rng = np.random.default_rng(LOGREG_SEED)
                picked = np.sort(rng.choice(np.arange(a, b), size=min(o.logreg_bases, b - a), replace=False))
                y = self.genome.labels.numpy()[picked].astype(np.int64)
                only = int(y[0])
                if len(np.unique(y)) == 2:
                    x = kmer_features(codes[a:b], picked - a, o.kmer, o.kmer_window)  # (S, 4^k)
                    mean, scale = x.mean(0), x.std(0) + 1e-6
                    model = LogisticRegression(max_iter=2000).fit((x - mean) / scale, y)
            self._baselines = {}
            for split in self.splits:
                a, b = self.split.region(split)
                truth = self.genome.labels.numpy()[a:b].astype(np.int64)
                scores = {"coding_share": float(truth.mean())}
                scores.update({f"majority_{k}": v for k, v in per_base_scores(truth, np.ones_like(truth)).items()})
                if o.logreg_bases:
                    if model is None:  # one class among the sampled bases: the baseline predicts it
                        guess = np.full_like(truth, only)
                    else:
                        guess = model.predict((kmer_features(codes[a:b], np.arange(b - a), o.kmer, o.kmer_window) - mean) / scale)
                    scores.update({f"logreg_{k}": v for k, v in per_base_scores(truth, guess).items()})
                self._baselines[split] = scores
        return self._baselines

    def predict(self, model: nn.Module, split: str) -> tuple[np.ndarray, np.ndarray, float]:
        """The model's probability of "coding" (N,) for every base of ``split``'s region in order,
        the labels (N,), and the summed cross-entropy (nats) over them."""
        batches, truth = self.eval_windows(split)
        device = next(model.parameters()).device
        labels = torch.from_numpy(truth)
        probs, loss, done = [], 0.0, 0
        for bases, lengths, cores in batches:
            logits = model(bases.to(device), lengths).float()  # (W, L, 2)
            for r, (offset, size) in enumerate(cores):
                core = logits[r, offset : offset + size]  # (size, 2): the scored bases of row r
                probs.append(torch.softmax(core, -1)[:, 1].cpu())
                loss += float(F.cross_entropy(core, labels[done : done + size].to(device), reduction="sum"))
                done += size
        return torch.cat(probs).numpy(), truth, loss

    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        prob, truth, loss = self.predict(model, split)
        scores = per_base_scores(truth, (prob > 0.5).astype(np.int64))
        return {"loss": loss / len(truth), **scores, **self.baselines()[split]}
