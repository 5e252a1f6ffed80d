r"""``carousel train charlm``: a character-level language model trained with truncated BPTT streams.

The training text is laid out as ``batch_size`` parallel streams (``Streams``); each step runs
one TBPTT window from the state the last window left (``run_window``), predicting every next
character. Loss: cross-entropy in nats; the monitor is bits per character,

.. math::
    \text{bpc} = -\frac{1}{N} \sum_{t=1}^{N} \log_2 P(x_t \mid x_{<t}) = \text{loss} / \ln 2

Evaluation runs the whole split as ``eval_streams`` streams in fp32, carrying the state from
window to window (each stream starts cold once, which costs a few thousandths of a bit on the
Penn Treebank); it also reports what gzip, bzip2 and xz achieve on the same split given the
training text (``carousel.data.compressor_bits``, cached on disk). The vocabulary is that of the
training text and is saved inside the model (``CharLM.vocab_codes``).
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...data.compress import compressor_bits
from ...data.corpus import CORPORA, Corpus, load_corpus
from ...data.vocab import Vocabulary
from ...decode.schedule import SAMPLING_DECAYS, SamplingSchedule
from ...decode.teacher import scheduled_sampling
from ...cells import cell_names
from ...models import CharLM
from ...runners import backend_names
from ...runners.cpu import fast_bf16
from ...state import detach_state
from ..._checks import check_rate
from ..checkpoint_file import CheckpointError, load_checkpoint
from ..config import option
from ..registry import register_task
from ..run import load_run_config, resolve_checkpoint
from ..streams import StreamBatches, StreamOptions, Streams, Window
from ..task import Shard, StepOutput, Task
from ..tbptt import reset_rows, run_window
from ..trainer_checkpoint import load_model_weights

PRECISIONS = ("fp32", "bf16")
COMPRESSOR_KEYS = {"gzip -9": "gzip_bpc", "bzip2 -9": "bzip2_bpc", "xz -9e": "xz_bpc"}


@dataclass(frozen=True)
class CharLMOptions(StreamOptions):
    corpus: str = option("ptb", "'ptb', 'stdlib', or UTF-8 text files (comma-separated paths)")
    cell: str = option("lstm", "recurrent cell", choices=cell_names)
    hidden: int = option(512, "hidden units per layer")
    layers: int = option(1, "stacked recurrent layers")
    embed: int = option(64, "character embedding size")
    tied: bool = option(False, "tie the softmax weights to the embedding (the last layer gets embed units)")
    embed_dropout: float = option(0.0, "embedding dropout: whole characters dropped")
    input_dropout: float = option(0.0, "variational dropout on the embeddings")
    between_dropout: float = option(0.0, "variational dropout between stacked layers")
    output_dropout: float = option(0.0, "variational dropout before the softmax")
    weight_drop: float = option(0.0, "DropConnect on every recurrent matrix (fused-safe)")
    recurrent_dropout: float = option(0.0, "dropout on h_{t-1}, one mask per sequence")
    zoneout_h: float = option(0.0, "zoneout rate of h")
    zoneout_c: float = option(0.0, "zoneout rate of c (LSTM)")
    backend: str = option("auto", "runner backend ('loop': the old name of explicit-else-reference)", choices=lambda: backend_names(renamed=True))
    precision: str = option("fp32", "training arithmetic: fp32, or bf16 autocast (about 1.7x faster on CPUs with AVX-512 BF16)", choices=PRECISIONS)
    sampling: str = option("none", "scheduled sampling decay of the teacher-forcing probability", choices=SAMPLING_DECAYS)
    sampling_k: float = option(1.0, "scheduled sampling constant k (Bengio et al. 2015)")
    sampling_c: float = option(0.0, "scheduled sampling slope c (linear decay)")
    sampling_min: float = option(0.0, "floor of the teacher-forcing probability")
    eval_streams: int = option(10, "parallel streams for evaluation")
    eval_window: int = option(1000, "characters per evaluation window")
    compressors: bool = option(True, "report gzip/bzip2/xz bits per character beside the model's")

    def __post_init__(self) -> None:
        self.check_windows()
        for name in ("hidden", "layers", "embed", "eval_streams", "eval_window"):
            if getattr(self, name) < 1:
                raise ValueError(f"expected {name} >= 1, got {getattr(self, name)}")
        for name in ("embed_dropout", "input_dropout", "between_dropout", "output_dropout", "weight_drop", "recurrent_dropout"):
            check_rate(getattr(self, name), name)
        for name in ("zoneout_h", "zoneout_c"):
            check_rate(getattr(self, name), name, allow_one=True)
        object.__setattr__(self, "corpus", absolute_corpus(self.corpus))
        if self.sampling == "none":
            for name, default in (("sampling_k", 1.0), ("sampling_c", 0.0), ("sampling_min", 0.0)):
                if getattr(self, name) != default:
                    raise ValueError(f"expected {name} at its default {default:g} with sampling 'none', which would ignore it "
                                     f"(choose a decay with --sampling), got {getattr(self, name)!r}")
        if self.sampling != "none" and self.bptt_back not in (0, self.bptt):
            raise ValueError("scheduled sampling needs bptt_back equal to bptt (or 0): windows must not overlap")
        self.schedule()  # validates the constants

    def schedule(self) -> SamplingSchedule:
        return SamplingSchedule(self.sampling, k=self.sampling_k, c=self.sampling_c, minimum=self.sampling_min)


def absolute_corpus(spec: str) -> str:
    """``spec`` with every file path made absolute (``ptb`` and ``stdlib`` stay names), so that a run's
    recorded config finds its text from any working directory (``carousel eval``/``resume`` elsewhere)."""
    if not isinstance(spec, str):
        raise ValueError(f"expected the corpus as a string ('ptb', 'stdlib' or comma-separated paths), got {spec!r}")
    if spec in CORPORA:
        return spec
    parts = [p.strip() for p in spec.split(",")]
    if not all(parts):
        raise ValueError(f"expected comma-separated file paths for corpus, got {spec!r} (an empty path)")
    return ",".join(os.path.abspath(os.path.expanduser(p)) for p in parts)


def build_char_lm(options: CharLMOptions, vocabulary: Vocabulary) -> CharLM:
    """The model that ``options`` describe, for ``vocabulary``."""
    o = options
    hidden = [o.hidden] * (o.layers - 1) + [o.embed if o.tied else o.hidden]
    return CharLM(
        len(vocabulary), cell=o.cell, embed_size=o.embed, hidden_size=hidden, layers=o.layers, tied=o.tied,
        embed_dropout=o.embed_dropout, input_dropout=o.input_dropout, between_dropout=o.between_dropout,
        output_dropout=o.output_dropout, weight_drop=o.weight_drop, recurrent_dropout=o.recurrent_dropout,
        zoneout_h=o.zoneout_h, zoneout_c=o.zoneout_c, backend=o.backend, vocabulary=vocabulary,
    )


def autocast(precision: str, device: torch.device):
    """bf16 autocast for ``"bf16"`` (matrix products and the fused kernels in bfloat16), else nothing.

    Raises ``ValueError`` for bf16 on a CPU without bfloat16 arithmetic (``fast_bf16()``): there
    oneDNN has no bfloat16 recurrent kernel, and emulated bfloat16 is slower than float32.
    """
    if precision == "bf16":
        if device.type == "cpu" and not fast_bf16():
            raise ValueError(
                "--precision bf16 needs a CPU with bfloat16 arithmetic (avx512_bf16 or AMX) and this one has "
                "neither: bfloat16 would only be emulated, slower than float32; use --precision fp32"
            )
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@register_task
class CharLMTask(Task):
    """Character-level language model (PTB, Python stdlib or your text files); bits per character beside gzip/bzip2/xz."""

    name = "charlm"
    Options = CharLMOptions
    monitor = "bpc"
    loss_unit = "nats per character"  # the training loss is cross-entropy with the natural log (bpc = loss / ln 2)
    mode = "min"
    unit = "char"

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        self._corpus: Corpus | None = None
        self._vocab: Vocabulary | None = None
        self._ids: dict[str, torch.Tensor] = {}
        self._compressed: dict[str, dict[str, float]] = {}
        self._windows_per_epoch = 1

    # ---- data --------------------------------------------------------------------------------
    @property
    def corpus(self) -> Corpus:
        if self._corpus is None:
            spec = self.options.corpus
            self._corpus = load_corpus([p.strip() for p in spec.split(",")] if "," in spec else spec)
        return self._corpus

    @property
    def vocabulary(self) -> Vocabulary:
        if self._vocab is None:
            self._vocab = Vocabulary.from_text(self.corpus.train)
        return self._vocab

    def ids(self, split: str) -> torch.Tensor:
        """The split as character ids (N,)."""
        if split not in self._ids:
            self._ids[split] = self.vocabulary.encode(self.corpus.split(split))
        return self._ids[split]

    # ---- the task contract -----------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        return build_char_lm(self.options, self.vocabulary)

    def train_batches(self, batch_size: int, shard: Shard, seed: int) -> StreamBatches:
        o, ids = self.options, self.ids("train")
        streams = Streams(ids[:-1], ids[1:], batch_size, shard)  # targets: the next character
        self._windows_per_epoch = max(1, math.ceil(streams.length / o.bptt))
        return StreamBatches(streams, o.bptt, o.bptt_back, random=o.bptt_random, seed=seed)

    def teacher_probability(self, window: Window) -> float:
        """``eps_i`` of the sampling schedule at this window's step ``i`` (counted in windows of ``bptt``)."""
        i = window.epoch * self._windows_per_epoch + window.position / self.options.bptt
        return self.options.schedule()(i)

    def step(self, model: nn.Module, batch: Window, state: Any) -> StepOutput:
        device = batch.x.device
        eps = self.teacher_probability(batch) if self.options.sampling != "none" else 1.0
        with autocast(self.options.precision, device):
            if eps >= 1.0:
                logits, carry = run_window(model, batch, state)  # (b, W, V)
                sampled = 0
            else:
                if bool(batch.starts[:, 0].any()):
                    state = reset_rows(state, batch.starts[:, 0])
                out = scheduled_sampling(model, batch.x, state, eps=eps)
                logits, carry, sampled = out.logits, detach_state(out.state), out.sampled
        logits, y = logits[:, batch.loss_from:], batch.y[:, batch.loss_from:]
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))  # nats per character
        metrics = {"bpc": float(loss.detach()) / math.log(2)}
        if self.options.sampling != "none":
            metrics.update(teacher=eps, sampled=sampled / max(1, batch.x.numel()))
        return StepOutput(loss, carry, int(y.numel()), metrics)

    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        ids = self.ids(self.check_split(split))
        bits = evaluate_bits(model, ids, streams=self.options.eval_streams, window=self.options.eval_window)
        result = {"bpc": bits, "chars": float(ids.numel() - 1)}
        if self.options.compressors:
            if split not in self._compressed:
                got = compressor_bits(self.corpus.train, self.corpus.split(split))
                self._compressed[split] = {COMPRESSOR_KEYS[k]: v for k, v in got.items()}
            result.update(self._compressed[split])
        return result


@torch.no_grad()
def evaluate_bits(model: nn.Module, ids: torch.Tensor, *, streams: int = 10, window: int = 1000) -> float:
    """Bits per character of ``model`` predicting ``ids[1:]`` from ``ids[:-1]``, as ``streams`` streams."""
    device = next(model.parameters()).device
    n = ids.numel() - 1
    if n < 1:
        raise ValueError("expected at least two characters to evaluate")
    streams = max(1, min(streams, n))
    L = n // streams
    x = ids[: streams * L].view(streams, L).to(device)  # (S, L)
    y = ids[1 : streams * L + 1].view(streams, L).to(device)  # (S, L)
    total, state = 0.0, None
    for p in range(0, L, window):
        z, state = model(x[:, p : p + window], state)  # (S, w, V)
        total += float(F.cross_entropy(z.float().reshape(-1, z.shape[-1]), y[:, p : p + window].reshape(-1), reduction="sum"))
    rest = ids[streams * L :]  # the tail that did not fill a stream: one more short stream
    if rest.numel() > 1:
        z, _ = model(rest[:-1].unsqueeze(0).to(device), None)
        total += float(F.cross_entropy(z.float()[0], rest[1:].to(device), reduction="sum"))
    return total / n / math.log(2)


def load_char_lm(run_dir: str, checkpoint: str = "best") -> tuple[CharLM, Vocabulary, Any]:
    """The model of a ``charlm`` run, from its ``best`` (or ``latest``, or a named) checkpoint, in eval mode.

    The vocabulary comes from the checkpoint itself, so the corpus need not be present.
    Returns ``(model, vocabulary, run_config)``.
    """
    config = load_run_config(run_dir)
    if config.task != CharLMTask.name:
        raise ValueError(f"{run_dir} is a run of task {config.task!r}; sampling needs a {CharLMTask.name!r} run")
    path = resolve_checkpoint(run_dir, checkpoint)
    tensors, _ = load_checkpoint(path)
    codes = tensors.get("model/vocab_codes")
    if codes is None or int(codes.min()) < 0:
        raise CheckpointError(f"checkpoint {path} holds no vocabulary (model/vocab_codes)")
    chars = [chr(c) for c in codes.tolist()]
    vocab = Vocabulary(chars[1:], unk=chars[0])
    model = build_char_lm(config.options, vocab)
    load_model_weights(model, tensors, path)
    return model.eval(), vocab, config
