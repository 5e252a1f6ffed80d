"""The main job (``make demo``, ``carousel demo``): a character-level LSTM language model in a few minutes.

``run_demo(DemoConfig(...))`` first fits the model to the machine (``sizing``: a few seconds of
measured training steps per candidate width, in the precision the CPU really has, and the width
predicted to reach the lowest bits per character in the time given), then trains the ``charlm``
task through the trainer for a fixed wall time (the learning rate on a cosine over the clock),
scores the best checkpoint on the test text, puts the bits per character beside what gzip, bzip2
and xz achieve on the same text, samples at two temperatures and writes the activation page;
everything lands in one run directory and comes back as a ``DemoResult``. The command line only
prints it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..data import compressor_bits
from ..decode import generate
from ..diagnostics import activation_page, rank_units, record_activations
from ..train import RunInterrupted, build_config, evaluate_run, new_run_dir, train_run
from ..train.config import check_finite
from ..runners.cpu import fast_bf16
from ..train.tasks.charlm import CharLMOptions, CharLMTask, load_char_lm
from .sizing import Choice, candidates, fit_to_machine

PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class DemoConfig:
    """What ``carousel demo`` trains: ``minutes`` of wall time on ``corpus``, an LSTM of ``hidden``
    units (``None``: the width fitted to this machine and budget) in ``precision`` (``"auto"``: bf16
    where the CPU has bf16 arithmetic, else fp32).

    The rest are the demo's fixed hyperparameters: character embedding ``embed``, TBPTT windows of
    ``bptt`` characters in ``batch_size`` parallel streams, Adam at ``lr`` on a cosine over the clock
    (small batches: in a few minutes the number of updates matters more than their noise).
    Raises ``ValueError`` for an unknown precision, a time that is not positive or a width below 1.
    """

    minutes: float = 5.0
    hidden: int | None = None
    precision: str = "auto"
    corpus: str = "ptb"
    runs: str = "runs"
    seed: int = 0
    embed: int = 64
    bptt: int = 100
    batch_size: int = 32
    lr: float = 3e-3
    checkpoint_every: int = 1000
    prime: str = " the company said"
    temperatures: tuple[float, ...] = (0.5, 1.0)
    sample_length: int = 300
    page_chars: int = 3000

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"expected precision 'auto', 'fp32' or 'bf16', got {self.precision!r}")
        if not check_finite("minutes", self.minutes) > 0:
            raise ValueError(f"expected minutes > 0, got {self.minutes}")
        if self.hidden is not None and (not isinstance(self.hidden, int) or self.hidden < 1):
            raise ValueError(f"expected hidden to be a positive number of units, got {self.hidden!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"expected seed to be an integer >= 0, got {self.seed!r}")


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
    choice: Choice
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
    def hidden(self) -> int:
        return self.choice.candidate.hidden

    @property
    def arithmetic(self) -> str:
        return self.choice.candidate.precision

    def comparison(self) -> str:
        """One line: the model's test bits per character beside each compressor's on this run."""
        better = [f"{n} ({t:.3f})" for n, (_, t) in self.compressors.items() if self.test < t]
        worse = [f"{n} ({t:.3f})" for n, (_, t) in self.compressors.items() if self.test >= t]
        said = f"On the test text the model's {self.test:.3f} bits per character"
        if better:
            said += f" beat {_join(better)}"
        if worse:
            said += f"{' but' if better else ''} did not beat {_join(worse)}"
        return said + "."

    @property
    def best_compressor(self) -> str:
        return min(self.compressors, key=lambda name: self.compressors[name][0])

    @property
    def beats_best_compressor(self) -> bool:
        """Whether the model predicts the validation text better than the best compressor compresses it."""
        return self.valid < self.compressors[self.best_compressor][0]


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def run_demo(config: DemoConfig, *, say: Callable[[str], None] = print) -> DemoResult:
    """Fit, train, score, sample and write the activation page (see the module docstring); ``say``
    gets a line for each stage. Raises ``ValueError`` (e.g. ``MissingPackageError`` for a corpus
    package that is not installed) before any training starts, and ``OSError`` when ``config.runs``
    cannot hold a new run directory. The run directory is created at the start and removed again
    when the demo fails before training. Ctrl-C once training began raises ``RunInterrupted``
    (after a checkpoint of the last step; ``carousel resume`` continues the run)."""
    task = CharLMTask(CharLMOptions(corpus=config.corpus))
    text = task.corpus
    say(f"{text.name} corpus, characters: train {len(text.train):,}, valid {len(text.valid):,}, test {len(text.test):,}")
    run_dir = new_run_dir("charlm", config.runs)  # reserved now: a folder that cannot be written to fails before any work
    try:
        return _fit_and_train(config, task, run_dir, say)
    except KeyboardInterrupt:
        if (run_dir / "config.json").is_file():
            raise RunInterrupted(run_dir) from None  # training began: there is a run to resume
        _remove_if_empty(run_dir)
        raise
    except BaseException:
        _remove_if_empty(run_dir)
        raise


def _remove_if_empty(run_dir: Path) -> None:
    try:
        run_dir.rmdir()  # only an empty folder goes: a failed start-up leaves no unusable run directory
    except OSError:
        pass


def _fit_and_train(config: DemoConfig, task: CharLMTask, run_dir: Path, say: Callable[[str], None]) -> DemoResult:
    text = task.corpus
    say("compressing the text with gzip, bzip2 and xz (cached after the first time) ...")
    zipped = {s: compressor_bits(text.train, text.split(s)) for s in ("valid", "test")}
    say("measuring what this machine trains per second ...")
    pool = candidates(config.hidden, config.precision, fast_bf16())
    choice = fit_to_machine(60.0 * config.minutes, pool, len(task.vocabulary))
    say(choice.line(config.minutes))
    hidden, arithmetic = choice.candidate.hidden, choice.candidate.precision
    values = dict(corpus=config.corpus, hidden=hidden, embed=config.embed, bptt=config.bptt, precision=arithmetic,
                  batch_size=config.batch_size, lr=config.lr, steps=10**9, minutes=config.minutes, schedule="constant",
                  eval_every=0, checkpoint_every=config.checkpoint_every, seed=config.seed)
    run_config = build_config("charlm", values)
    say(f"training a one-layer LSTM of {hidden} units ({arithmetic}) for {config.minutes:g} minutes; run directory: {run_dir}")
    summary = train_run(run_config, run_dir)
    say("scoring the test text ...")
    test = evaluate_run(run_dir, split="test")["splits"]["test"]["bpc"]
    result = DemoResult(
        run_dir=run_dir, corpus=text.name, choice=choice, minutes=config.minutes,
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
    activation_page(acts, run_dir / "activations.html", ranking=ranking, title=f"LSTM {hidden} on {text.name}")
    result.top_unit, result.top_feature, result.top_r = ranking[0].unit, ranking[0].feature, ranking[0].r
    return result
