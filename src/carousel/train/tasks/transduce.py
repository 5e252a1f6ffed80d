r"""``carousel train transduce``: an encoder–decoder with attention on a generated transduction problem.

The problems are ``carousel.data.transduction``: ``reverse``, ``sort`` and ``copy`` a random string
of up to ``--length`` letters, or write the digits of a number given in English words
(``words2digits``). Every training batch is drawn afresh (batch ``i`` from the seed and ``i``);
the validation and test sets are fixed (``--eval-size`` pairs each, their own seeds).

The model is ``carousel.models.Seq2Seq``: a (bidirectional) encoder, a bridge from its final states
to the decoder's initial state, and a Luong-style decoder with ``--attention`` none / additive
(Bahdanau et al. 2015) / general / dot (Luong et al. 2015) and input feeding. It is trained by
cross-entropy per target token (with ``--label-smoothing``), with scheduled sampling when
``--sampling`` is not ``none``: the teacher-forcing probability at step ``i`` is
``SamplingSchedule(sampling, k, c, minimum)(i)`` (Bengio et al. 2015).

``evaluate`` decodes every source greedily (``--beam 1``) or by beam search (``--beam N``, GNMT's
length penalty ``--length-penalty``) up to ``--max-length`` tokens, and reports ``exact`` (the
fraction of outputs equal to their target, the monitor), ``token_accuracy`` (target tokens, the end
token included, matched at their position) and ``loss`` (teacher-forced nats per target token).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..._checks import check_number, check_rate
from ...cells import cell_names
from ...data.transduction import (MAX_NUMBER, PROBLEMS, TransductionBatch, encode_pairs, max_target_length,
                                  problem_vocabularies, transduction_pairs)
from ...decode import beam_search, greedy_decode
from ...layers import ATTENTION_KINDS
from ...models import Seq2Seq, plot_attention
from ..batches import SeededBatches, derive_seed
from ..config import option
from ._sampling import ScheduledSamplingOptions
from ..registry import register_task
from ..task import Shard, StepOutput, Task

VALID_SEED, TEST_SEED = 5_000_011, 5_000_017  # fixed: every run is scored on the same pairs
EVAL_BATCH = 250
MAX_EVAL_SIZE = 1_000_000  # pairs per evaluation split, drawn and kept in memory
MAX_DECODE_LENGTH = 1000  # tokens: every generated problem's targets are far shorter


@dataclass(frozen=True)
class TransduceOptions(ScheduledSamplingOptions):
    problem: str = option("reverse", "the generated problem: reverse, sort or copy a string, or numbers in words -> digits", choices=PROBLEMS)
    length: int = option(10, "longest source string (reverse, sort, copy)")
    min_length: int = option(1, "shortest source string (reverse, sort, copy)")
    symbols: int = option(10, "letters of the alphabet the strings use (2 to 26)")
    max_number: int = option(9999, f"largest number of words2digits (at most {MAX_NUMBER})")
    cell: str = option("lstm", "recurrent cell of the encoder (and of the decoder unless --decoder-cell)", choices=cell_names)
    decoder_cell: str = option("same", "recurrent cell of the decoder ('same': the encoder's)", choices=lambda: ("same",) + tuple(cell_names()))
    hidden: int = option(64, "hidden units per layer (and per direction of the encoder)")
    decoder_hidden: int = option(0, "hidden units of the decoder (0: --hidden)")
    embed: int = option(32, "token embedding size")
    layers: int = option(1, "layers of the encoder and of the decoder")
    bidirectional: bool = option(True, "read the source both ways")
    attention: str = option("additive", "attention of the decoder over the encoder's outputs", choices=ATTENTION_KINDS)
    input_feeding: bool = option(True, "feed the previous attentional vector to the decoder (Luong et al. 2015, 3.3)")
    tie_embedding: bool = option(False, "use the target embedding as the output layer's weights")
    dropout: float = option(0.0, "dropout between layers and before the output layer")
    label_smoothing: float = option(0.0, "label smoothing of the cross-entropy, in [0, 1)")
    max_length: int = option(32, "longest output when decoding, end token included; every target must fit")
    beam: int = option(1, "beam size of the evaluation's decoding (1: greedy)")
    length_penalty: float = option(0.6, "GNMT length-penalty exponent alpha of the beam search (Wu et al. 2016)")
    eval_size: int = option(1000, f"pairs in the validation and test sets (at most {MAX_EVAL_SIZE:,})")

    def __post_init__(self) -> None:
        for name in ("length", "min_length", "hidden", "embed", "layers", "max_length", "beam", "eval_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"expected {name} to be an integer >= 1, got {v!r}")
        for name in ("decoder_hidden", "max_number"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"expected {name} to be an integer >= 0, got {v!r}")
        if self.max_length > MAX_DECODE_LENGTH:  # an untrained model decodes every evaluation pair to max_length
            raise ValueError(f"expected max_length <= {MAX_DECODE_LENGTH} (the longest target of any problem here is far "
                             f"shorter, and decoding runs to max_length until the end token comes), got {self.max_length:,}")
        if self.eval_size > MAX_EVAL_SIZE:  # each split's pairs are drawn and kept in memory at the first evaluation
            raise ValueError(f"expected eval_size <= {MAX_EVAL_SIZE:,} (the pairs of each split are kept in memory), got {self.eval_size:,}")
        if self.problem not in PROBLEMS:
            raise ValueError(f"unknown problem {self.problem!r}; expected one of: {', '.join(PROBLEMS)}")
        if self.min_length > self.length:
            raise ValueError(f"expected min_length <= length, got {self.min_length} and {self.length}")
        if not 2 <= self.symbols <= 26:
            raise ValueError(f"expected symbols in [2, 26], got {self.symbols!r}")
        if self.max_number > MAX_NUMBER:
            raise ValueError(f"expected max_number <= {MAX_NUMBER}, got {self.max_number!r}")
        # an option the chosen problem never reads is a mistake (as the sampling constants are below)
        ignored = (("length", 10), ("min_length", 1), ("symbols", 10)) if self.problem == "words2digits" else (("max_number", 9999),)
        for name, default in ignored:
            if getattr(self, name) != default:
                raise ValueError(f"expected {name} at its default {default} with problem {self.problem!r}, which ignores it "
                                 f"(it sets the {'numbers of words2digits' if name == 'max_number' else 'strings of reverse, sort and copy'}), "
                                 f"got {getattr(self, name)!r}")
        longest = max_target_length(self.problem, self.length, self.max_number)
        if longest > self.max_length:
            raise ValueError(f"targets of {self.problem} reach {longest} tokens with the end token, longer than max_length "
                             f"{self.max_length}; raise --max-length to at least {longest}")
        keys = self.hidden * (2 if self.bidirectional else 1)
        if self.attention == "dot" and (self.decoder_hidden or self.hidden) != keys:
            raise ValueError(f"--attention dot compares the decoder's state ({self.decoder_hidden or self.hidden} units) with the "
                             f"encoder's outputs ({keys} units) and needs them equal; set --decoder-hidden {keys} or use 'general'")
        check_rate(self.dropout, "dropout")
        check_rate(self.label_smoothing, "label_smoothing")
        check_number(self.length_penalty, "length_penalty", low=0.0)
        self.check_sampling()


def decoded_metrics(tokens: Tensor, lengths: Tensor, targets: Tensor, target_lengths: Tensor) -> tuple[float, float, int]:
    """Exact matches, matched target tokens and target tokens of decoded ``tokens`` (B, L) with ``lengths``
    against ``targets`` (B, T) with ``target_lengths`` (both counting the end token)."""
    B, T = targets.shape
    L = tokens.shape[1]
    out = torch.zeros(B, T, dtype=torch.long)
    out[:, : min(L, T)] = tokens[:, :T].cpu()
    mask = torch.arange(T).unsqueeze(0) < target_lengths.unsqueeze(1)  # (B, T)
    produced = torch.arange(T).unsqueeze(0) < lengths.cpu().unsqueeze(1)
    same = (out == targets) & mask & produced  # (B, T)
    exact = (same.sum(1) == target_lengths) & (lengths.cpu() == target_lengths)
    return float(exact.sum()), float(same.sum()), int(mask.sum())


@register_task
class TransduceTask(Task):
    """Encoder-decoder with attention on reverse / sort / copy / numbers-in-words -> digits; exact match by greedy or beam decoding."""

    name = "transduce"
    Options = TransduceOptions
    monitor = "exact"
    mode = "max"
    unit = "seq"

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        self.source_vocab, self.target_vocab = problem_vocabularies(self.options.problem, self.options.symbols)
        self._eval: dict[str, list[TransductionBatch]] = {}

    def pairs(self, count: int, seed: int) -> list:
        o = self.options
        return transduction_pairs(o.problem, count, min_length=o.min_length, max_length=o.length, symbols=o.symbols,
                                  max_number=o.max_number, seed=seed)

    def batch(self, count: int, seed: int) -> TransductionBatch:
        return encode_pairs(self.pairs(count, seed), self.source_vocab, self.target_vocab, max_length=self.options.max_length)

    def build_model(self) -> nn.Module:
        o = self.options
        return Seq2Seq(o.cell, len(self.source_vocab), len(self.target_vocab), embed_size=o.embed, hidden_size=o.hidden,
                       layers=o.layers, bidirectional=o.bidirectional, decoder_cell=None if o.decoder_cell == "same" else o.decoder_cell,
                       decoder_hidden=o.decoder_hidden or None, attention=o.attention, input_feeding=o.input_feeding,
                       tie_embedding=o.tie_embedding, dropout=o.dropout)

    def train_batches(self, batch_size: int, shard: Shard, seed: int) -> SeededBatches:
        rows = shard.rows(batch_size)

        def make(i: int) -> tuple[TransductionBatch, int]:
            b = self.batch(batch_size, derive_seed(seed, i))
            return TransductionBatch(*(t[rows] for t in b)), i

        return SeededBatches(make)

    def step(self, model: nn.Module, batch: tuple[TransductionBatch, int], state: Any) -> StepOutput:
        b, i = batch
        device = next(model.parameters()).device
        b = b.to(device)
        eps = self.options.teacher_probability(i)
        logits, _ = model(b.source, b.source_lengths, b.inputs, sampling_eps=eps)
        seq2seq = getattr(model, "module", model)
        loss = seq2seq.loss(logits, b.targets, b.target_lengths, label_smoothing=self.options.label_smoothing)
        return StepOutput(loss, None, b.source.shape[0], {"teacher": eps} if self.options.sampling != "none" else {})

    def eval_batches(self, split: str) -> list[TransductionBatch]:
        if split not in self._eval:
            seed = VALID_SEED if self.check_split(split) == "valid" else TEST_SEED
            full = self.batch(self.options.eval_size, seed)
            self._eval[split] = [TransductionBatch(*(t[s: s + EVAL_BATCH] for t in full))
                                 for s in range(0, self.options.eval_size, EVAL_BATCH)]
        return self._eval[split]

    def decode(self, model: nn.Module, source: Tensor, lengths: Tensor | None = None):
        """``carousel.decode.Hypotheses`` of ``model`` for ``source`` (B, S) ids: greedy, or beam search with ``--beam``."""
        o = self.options
        state, memory = model.start(source, lengths)
        if o.beam == 1:
            return greedy_decode(model.decoder, state, memory, max_length=o.max_length)
        return beam_search(model.decoder, state, memory, beam_size=o.beam, max_length=o.max_length,
                           length_penalty=o.length_penalty)

    def plot(self, model: nn.Module, path: str | Path, split: str = "valid", index: int = 0) -> Path:
        """The attention map of pair ``index`` of ``split``'s set, decoded as ``evaluate`` does, as a PNG at
        ``path`` (``carousel.models.plot_attention``); ``ValueError`` for an unknown split, an index outside
        [0, eval_size) or a model without attention; ``TypeError`` for a model that is not a ``Seq2Seq``."""
        model = getattr(model, "module", model)
        if not isinstance(model, Seq2Seq):
            raise TypeError(f"expected the task's model, a Seq2Seq (build_model or a checkpoint), got {type(model).__name__}")
        if model.decoder.attention is None:
            raise ValueError("this model has no attention (--attention none); there is no map to plot")
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < self.options.eval_size:
            raise ValueError(f"expected index in [0, {self.options.eval_size}) (the {split} pairs), got {index!r}")
        b = self.eval_batches(split)[index // EVAL_BATCH]
        r = index % EVAL_BATCH
        n = int(b.source_lengths[r])
        device = next(model.parameters()).device
        was = model.training
        model.eval()
        try:
            with torch.no_grad():
                hyp = self.decode(model, b.source[r: r + 1, :n].to(device))
        finally:
            model.train(was)
        L = int(hyp.lengths[0])
        out = self.target_vocab.symbols
        return plot_attention(hyp.attention[0, :L].cpu(), self.source_vocab.decode(b.source[r, :n]),
                              [out[i] for i in hyp.tokens[0, :L].tolist()], path)

    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        if torch.is_grad_enabled():  # the trainer evaluates under no_grad already; a direct call may not
            with torch.no_grad():
                return self.evaluate(model, split)
        model = getattr(model, "module", model)
        device = next(model.parameters()).device
        exact = matched = tokens = loss_sum = 0.0
        n = 0
        for b in self.eval_batches(split):
            d = b.to(device)
            logits, _ = model(d.source, d.source_lengths, d.inputs)
            count = int(b.target_lengths.sum())
            loss_sum += float(model.loss(logits, d.targets, d.target_lengths)) * count
            hyp = self.decode(model, d.source, d.source_lengths)
            e, m, t = decoded_metrics(hyp.tokens, hyp.lengths, b.targets, b.target_lengths)
            exact, matched, tokens, n = exact + e, matched + m, tokens + t, n + b.source.shape[0]
        return {"exact": exact / n, "token_accuracy": matched / tokens, "loss": loss_sum / tokens}
