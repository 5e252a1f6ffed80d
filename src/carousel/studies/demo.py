"""The main job (``make demo``, ``carousel demo``): a character-level LSTM language model in a few minutes.

``run_demo(DemoConfig(...))`` trains the ``charlm`` task through the trainer for a fixed wall time
(the learning rate on a cosine over the clock), scores the best checkpoint on the test text, puts
the bits per character beside what gzip, bzip2 and xz achieve on the same text, samples at two
temperatures and writes the activation page; everything lands in one run directory and comes back
as a ``DemoResult``. The command line only prints it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..data import compressor_bits
from ..decode import generate
from ..diagnostics import activation_page, rank_units, record_activations
from ..train import build_config, evaluate_run, new_run_dir, train_run
from ..train.tasks.charlm import CharLMOptions, CharLMTask, fast_bf16, load_char_lm

PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class DemoConfig:
    """What ``carousel demo`` trains: ``minutes`` of wall time on ``corpus``, an LSTM of ``hidden``
    units in ``precision`` (``"auto"``: bf16 where the CPU has bf16 arithmetic, else fp32).

    The rest are the demo's fixed hyperparameters: character embedding ``embed``, TBPTT windows of
    ``bptt`` characters in ``batch_size`` parallel streams, Adam at ``lr`` on a cosine over the clock.
    Raises ``ValueError`` for an unknown precision or a time that is not positive.
    """

    minutes: float = 5.0
    hidden: int = 512
    precision: str = "auto"
    corpus: str = "ptb"
    runs: str = "runs"
    seed: int = 0
    embed: int = 64
    bptt: int = 100
    batch_size: int = 128
    lr: float = 3e-3
    checkpoint_every: int = 500
    prime: str = " the company said"
    temperatures: tuple[float, ...] = (0.5, 1.0)
    sample_length: int = 300
    page_chars: int = 3000

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"expected precision 'auto', 'fp32' or 'bf16', got {self.precision!r}")
        if not self.minutes > 0:
            raise ValueError(f"expected minutes > 0, got {self.minutes}")

    def arithmetic(self) -> str:
        """The precision the run uses: ``precision``, with ``"auto"`` resolved for this CPU."""
        if self.precision == "auto":
            return "bf16" if fast_bf16() else "fp32"
        return self.precision


@dataclass(frozen=True)
class Sample:
    temperature: float
    text: str
    chars_per_second: float


@dataclass
class DemoResult:
    """What the demo measured and wrote: bits per character of the model (valid, test) and of each
    compressor (``compressors[name] = (valid, test)``), the samples, the most interpretable unit."""

    run_dir: Path
    corpus: str
    hidden: int
    arithmetic: str
    minutes: float
    steps: int
    valid: float
    test: float
    compressors: dict[str, tuple[float, float]]
    samples: list[Sample] = field(default_factory=list)
    top_unit: str = ""
    top_feature: str = ""
    top_r: float = 0.0

    @property
    def best_compressor(self) -> str:
        return min(self.compressors, key=lambda name: self.compressors[name][0])

    @property
    def beats_best_compressor(self) -> bool:
        """Whether the model predicts the validation text better than the best compressor compresses it."""
        return self.valid < self.compressors[self.best_compressor][0]


def run_demo(config: DemoConfig, *, say: Callable[[str], None] = print) -> DemoResult:
    """Train, score, sample and write the activation page (see the module docstring); ``say`` gets
    a line for each stage. Raises ``ValueError`` (e.g. ``MissingPackageError`` for a corpus package
    that is not installed) before any training starts."""
    arithmetic = config.arithmetic()
    text = CharLMTask(CharLMOptions(corpus=config.corpus)).corpus
    say(f"{text.name} corpus, characters: train {len(text.train):,}, valid {len(text.valid):,}, test {len(text.test):,}")
    say("compressing the text with gzip, bzip2 and xz (cached after the first time) ...")
    zipped = {s: compressor_bits(text.train, text.split(s)) for s in ("valid", "test")}
    values = dict(corpus=config.corpus, hidden=config.hidden, embed=config.embed, bptt=config.bptt, precision=arithmetic,
                  batch_size=config.batch_size, lr=config.lr, steps=10**9, minutes=config.minutes, schedule="constant",
                  eval_every=0, checkpoint_every=config.checkpoint_every, seed=config.seed)
    run_config = build_config("charlm", values)
    run_dir = new_run_dir("charlm", config.runs)
    say(f"training a one-layer LSTM of {config.hidden} units ({arithmetic}) for {config.minutes:g} minutes; run directory: {run_dir}")
    summary = train_run(run_config, run_dir)
    say("scoring the test text ...")
    test = evaluate_run(run_dir, split="test")["splits"]["test"]["bpc"]
    result = DemoResult(
        run_dir=run_dir, corpus=text.name, hidden=config.hidden, arithmetic=arithmetic, minutes=config.minutes,
        steps=summary["steps"], valid=summary["best"], test=test,
        compressors={name: (zipped["valid"][name], zipped["test"][name]) for name in zipped["valid"]},
    )
    model, vocab, _ = load_char_lm(str(run_dir))
    lines = []
    for temperature in config.temperatures:
        out = generate(model, vocab, config.prime, config.sample_length, temperature=temperature, seed=config.seed)
        result.samples.append(Sample(temperature, out.texts[0], out.chars_per_second))
        lines.append(f"--- temperature {temperature} ---\n{config.prime}{out.texts[0]}\n")
    (run_dir / "samples.txt").write_text("\n".join(lines), encoding="utf-8")
    acts = record_activations(model, vocab, text.valid[: config.page_chars])
    ranking = rank_units(acts, per_feature=5)
    activation_page(acts, run_dir / "activations.html", ranking=ranking, title=f"LSTM {config.hidden} on {text.name}")
    result.top_unit, result.top_feature, result.top_r = ranking[0].unit, ranking[0].feature, ranking[0].r
    return result
