"""Generated arithmetic expression trees, drawn from a seed: digits 0-9 at the leaves, binary
operators inside, and the value mod 10 as the class (``carousel train exprtree``).

A tree is a nested tuple in prefix form, ``("+", "3", ("*", "4", "5"))``: an operator, then its
left and right operands; a leaf is a digit as a one-character string. Every node's value is a digit:
``+``, ``-`` and ``*`` are taken mod 10 (Python's ``%``, so ``3 - 5`` is 8), and ``max``/``min``
compare the operands' digits. For ``+``, ``-`` and ``*`` alone the value is the whole expression's
integer value mod 10, since reduction mod 10 commutes with them; the digit at each node is what a
model needs to carry upwards, so the task is compositional at any depth (as in ListOps, Nangia &
Bowman 2018, where every intermediate value is also a digit).

The depth of a tree is the number of edges from its root to its deepest leaf (a digit alone has
depth 0, ``(+ 3 4)`` depth 1). A tree of depth ``d`` puts a subtree of depth exactly ``d - 1`` on a
random side and one of depth drawn uniformly from ``0 .. d - 1`` on the other, so trees of depth 8
have about 70 nodes rather than the 511 of a full binary tree.

Held-out trees: ``held_out(tree)`` puts one tree in ten, by a hash of its bracketed string, aside
for validation; training draws skip them, so the splits share no tree even at depths 1 and 2,
where there are few distinct trees (300 of depth 1 with three operators, 25 of them held out).

Sequences: ``tokens(tree)`` is the bracketed string as tokens, ``( + 3 ( * 4 5 ) )``, and
``encode_tokens`` pads a list of trees to ids (B, T) with their lengths (B,) under ``VOCABULARY``.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any, NamedTuple, Sequence

import torch
from torch import Tensor

OPERATORS = ("+", "-", "*", "max", "min")
DEFAULT_OPERATORS = ("+", "-", "*")
DIGITS = tuple(str(d) for d in range(10))
NUM_CLASSES = 10
PAD = "<pad>"
VOCABULARY: dict[str, int] = {tok: i for i, tok in enumerate((PAD, "(", ")", *DIGITS, *OPERATORS))}
HELD_OUT_SHARE = 10  # one tree in HELD_OUT_SHARE is held out for validation
DISTINCT_DRAWS = 50  # with distinct=True, give up after this many draws per tree asked (plus 10,000)
MAX_DEPTH = 20  # a guard: trees grow roughly as depth^2, but a typo like depth=400 should be an error


class ExprTrees(NamedTuple):
    """``trees``: nested tuples (see the module docstring); ``values``: (B,) int64 digits, the
    classes; ``depths``: (B,) int64 depth of each tree."""

    trees: list[Any]
    values: Tensor
    depths: Tensor


def check_operators(operators: Sequence[str]) -> tuple[str, ...]:
    """``operators`` as a tuple when each is one of ``OPERATORS`` and none repeats; ``ValueError`` otherwise."""
    if isinstance(operators, str) or not isinstance(operators, Sequence):
        raise TypeError(f"expected a sequence of operators such as ('+', '-', '*'), got {operators!r}")
    ops = tuple(operators)
    if not ops:
        raise ValueError(f"expected at least one operator of {', '.join(OPERATORS)}, got none")
    for op in ops:
        if op not in OPERATORS:
            raise ValueError(f"unknown operator {op!r}; expected some of: {', '.join(OPERATORS)}")
    if len(set(ops)) != len(ops):
        raise ValueError(f"operator {next(op for op in ops if ops.count(op) > 1)!r} is given twice in {', '.join(ops)}")
    return ops


def parse_operators(text: str) -> tuple[str, ...]:
    """Operators from a comma-separated string (``"+,-,*,max"``), checked by ``check_operators``."""
    if not isinstance(text, str):
        raise TypeError(f"expected a comma-separated string of operators, got {type(text).__name__}")
    return check_operators([op.strip() for op in text.split(",") if op.strip()])


def apply(op: str, a: int, b: int) -> int:
    """The digit that operator ``op`` gives for digits ``a`` (left) and ``b`` (right)."""
    if op == "+":
        return (a + b) % 10
    if op == "-":
        return (a - b) % 10
    if op == "*":
        return (a * b) % 10
    if op == "max":
        return max(a, b)
    if op == "min":
        return min(a, b)
    raise ValueError(f"unknown operator {op!r}; expected one of: {', '.join(OPERATORS)}")


def value(tree: Any) -> int:
    """The digit a tree evaluates to (every node's value taken mod 10)."""
    if isinstance(tree, str):
        return int(tree)
    op, left, right = tree
    return apply(op, value(left), value(right))


def depth(tree: Any) -> int:
    """Edges from the root to the deepest leaf (0 for a digit)."""
    return 0 if isinstance(tree, str) else 1 + max(depth(tree[1]), depth(tree[2]))


def tokens(tree: Any) -> list[str]:
    """The bracketed prefix string as tokens: ``["(", "+", "3", "(", "*", "4", "5", ")", ")"]``."""
    if isinstance(tree, str):
        return [tree]
    op, left, right = tree
    return ["(", op, *tokens(left), *tokens(right), ")"]


def to_brackets(tree: Any) -> str:
    """The bracketed prefix string, tokens separated by spaces: ``( + 3 ( * 4 5 ) )``."""
    return " ".join(tokens(tree))


def held_out(tree: Any) -> bool:
    """Whether ``tree`` belongs to the validation trees (one in ``HELD_OUT_SHARE``, by the SHA-256 of
    its bracketed string: the same answer on every machine and in every process)."""
    digest = hashlib.sha256(to_brackets(tree).encode()).digest()
    return int.from_bytes(digest[:8], "little") % HELD_OUT_SHARE == 0


def random_tree(rng: random.Random, depth: int, operators: Sequence[str] = DEFAULT_OPERATORS) -> Any:
    """A tree of exactly ``depth`` drawn with ``rng`` (see the module docstring for the shape)."""
    if depth == 0:
        return rng.choice(DIGITS)
    op = rng.choice(operators)
    deep_side, other = rng.randrange(2), rng.randrange(depth)
    deep, shallow = random_tree(rng, depth - 1, operators), random_tree(rng, other, operators)
    return (op, deep, shallow) if deep_side == 0 else (op, shallow, deep)


def expressions(
    num_trees: int,
    depths: Sequence[int] | int,
    *,
    operators: Sequence[str] = DEFAULT_OPERATORS,
    held: bool | None = None,
    distinct: bool = False,
    seed: int = 0,
) -> ExprTrees:
    """``num_trees`` trees, each of a depth drawn uniformly from ``depths`` (one depth or several),
    with operators drawn uniformly from ``operators``. ``held``: True keeps only held-out trees
    (``held_out``), False only the others (the training trees), None any tree. ``distinct``: no
    tree twice; where fewer distinct trees exist than asked (25 of the 300 trees of depth 1 with
    three operators are held out), the draws stop after ``DISTINCT_DRAWS * num_trees + 10_000`` tries and fewer
    trees come back. The same arguments give the same trees.

    Raises ``ValueError`` for ``num_trees < 1``, no depths, a depth outside ``1 .. MAX_DEPTH`` or
    unknown operators (``TypeError`` for operators given as one string).
    """
    if isinstance(num_trees, bool) or not isinstance(num_trees, int) or num_trees < 1:
        raise ValueError(f"expected num_trees to be an integer >= 1, got {num_trees!r}")
    depths = (depths,) if isinstance(depths, int) else tuple(depths)
    if not depths:
        raise ValueError("expected at least one depth, got none")
    for d in depths:
        if isinstance(d, bool) or not isinstance(d, int) or not 1 <= d <= MAX_DEPTH:
            raise ValueError(f"expected depths from 1 to {MAX_DEPTH}, got {d!r}")
    operators = check_operators(operators)
    if held not in (None, True, False):
        raise ValueError(f"expected held to be True, False or None, got {held!r}")
    rng = random.Random(seed)
    trees, wanted, seen = [], [], set()
    for _ in range(DISTINCT_DRAWS * num_trees + 10_000) if distinct else iter(int, 1):  # iter(int, 1): forever
        if len(trees) == num_trees:
            break
        d = rng.choice(depths)
        tree = random_tree(rng, d, operators)
        if (held is None or held_out(tree) == held) and not (distinct and tree in seen):
            trees.append(tree)
            wanted.append(d)
            if distinct:
                seen.add(tree)
    return ExprTrees(trees, torch.tensor([value(t) for t in trees], dtype=torch.int64),
                     torch.tensor(wanted, dtype=torch.int64))


def encode_tokens(trees: Sequence[Any]) -> tuple[Tensor, Tensor]:
    """The trees' bracketed strings as token ids under ``VOCABULARY``, padded with ``PAD`` (id 0):
    ``(ids (B, T) int64, lengths (B,) int64)`` with ``T`` the longest string."""
    seqs = [[VOCABULARY[tok] for tok in tokens(t)] for t in trees]
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.int64)
    ids = torch.zeros(len(seqs), int(lengths.max()) if seqs else 0, dtype=torch.int64)
    for b, s in enumerate(seqs):
        ids[b, : len(s)] = torch.tensor(s, dtype=torch.int64)
    return ids, lengths
