"""Functions of the Python standard library as examples for naming: the ``codename`` task's data.

Every ``def`` (and ``async def``, nested ones and methods included) in the pinned standard-library
files (``stdlib_files.STDLIB_FILES``) is one example. Its **label** is the first word of its name,
split on ``_`` and camelCase and lower-cased (``__init__`` -> ``init``, ``getHTTPResponse`` ->
``get``, ``_is_dir`` -> ``is``). Its **input** is the function without its name:

* the name of the ``def`` itself and every identifier, attribute or string constant equal to it
  (recursive calls, ``self.name(...)``, ``getattr(x, "name")``) become the placeholder ``<fn>``;
* the decorators, the function's own docstring and the comments are left out (they are not the
  body, and the docstring usually paraphrases the name); an emptied body reads as ``pass``.

Three views of one function, all from one parse of its file (cached in memory, per file):

* ``tokens``: the body's tokens from ``tokenize`` (names, operators, literals, and ``<newline>``,
  ``<indent>``, ``<dedent>``), with ``token_kinds`` (``name``, ``str``, ``num``, ``op``,
  ``layout``) for the fallback of a token outside a vocabulary;
* an AST tree (``labels``, ``kinds``, ``parents``, in pre-order): every ``ast`` node but the
  expression contexts (``Load``, ``Store``, ``Del``); a node's label is its type with the
  identifier or literal it carries (``Name:self``, ``Attribute:append``, ``Constant:0``), its
  kind the type alone (constants: with the value's type, ``Constant:str``);
* a graph over the same nodes (``graph_edges``): child, parent, next-token (each leaf of the AST
  to the next leaf in pre-order, which is source order) and same-variable edges (each occurrence
  of a ``Name`` or ``arg`` to the next occurrence of the same identifier, both ways), the edge
  kinds of Allamanis, Brockschmidt & Khademi 2018 ("Learning to Represent Programs with Graphs").

Splits go by a hash of the file's path, so a file's functions are all in one split and the split
never moves: about 10% of the files are ``valid`` and 10% ``test`` (the ``stdlib`` character
corpus's hash, SHA-256 of the path into 20 buckets, with two buckets per held-out split instead of
one, so that each holds over a thousand functions: 50 files and 1,168 functions in valid, 38 and
1,357 in test on CPython 3.11, within a budget of 300 nodes).
"""

from __future__ import annotations

import ast
import functools
import hashlib
import io
import os
import re
import sysconfig
import tokenize
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Sequence

from .corpus import read_text
from .stdlib_files import STDLIB_FILES

PLACEHOLDER = "<fn>"
OTHER = "other"
SPLITS = ("train", "valid", "test")
EDGE_TYPES = ("child", "parent", "next_token", "same_variable")
TOKEN_FALLBACK = {"name": "<unk>", "str": "<str>", "num": "<num>", "op": "<unk>", "layout": "<unk>"}
_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
_LAYOUT = {tokenize.NEWLINE: "<newline>", tokenize.INDENT: "<indent>", tokenize.DEDENT: "<dedent>"}
_SKIP = {tokenize.COMMENT, tokenize.NL, tokenize.ENCODING, tokenize.ENDMARKER}
_MAX_LITERAL = 24  # longer string constants keep only their kind in a node's label


def name_words(name: str) -> list[str]:
    """The words of an identifier, lower-cased: split on ``_`` and on camelCase (``"getHTTPResponse"``
    -> ``["get", "http", "response"]``, ``"__init__"`` -> ``["init"]``)."""
    if not isinstance(name, str):
        raise TypeError(f"expected an identifier as a str, got {type(name).__name__}")
    return [w.lower() for part in name.split("_") for w in _WORD.findall(part)]


def first_word(name: str) -> str:
    """The first word of a name (``name_words``); ``""`` for a name without one (``_``)."""
    words = name_words(name)
    return words[0] if words else ""


@dataclass(frozen=True)
class CodeFunction:
    """One function: where it is, its name and label word, and its three views (module docstring).

    ``labels``, ``kinds``, ``parents`` and ``variables`` have one entry per AST node in pre-order
    (``parents[0] == -1``: the ``def``); ``variables[v]`` is the identifier of a ``Name``/``arg``
    node, else None. ``tokens`` and ``token_kinds`` have one entry per token.
    """

    path: str
    line: int
    name: str
    word: str
    labels: tuple[str, ...]
    kinds: tuple[str, ...]
    parents: tuple[int, ...]
    variables: tuple[str | None, ...]
    tokens: tuple[str, ...]
    token_kinds: tuple[str, ...]

    @property
    def num_nodes(self) -> int:
        return len(self.parents)

    def __repr__(self) -> str:
        return f"CodeFunction({self.path}:{self.line} {self.name!r}, word={self.word!r}, {self.num_nodes} nodes, {len(self.tokens)} tokens)"


def graph_edges(fn: CodeFunction) -> tuple[list[tuple[int, int]], list[int]]:
    """The edges ``(u, v)`` of ``fn``'s graph and their types (indices into ``EDGE_TYPES``), in the
    order: child (parent -> child) and parent (child -> parent) per tree edge, then next-token
    between consecutive leaves, then same-variable between consecutive occurrences, both ways."""
    edges: list[tuple[int, int]] = []
    types: list[int] = []
    has_children = [False] * fn.num_nodes
    for v, p in enumerate(fn.parents):
        if p >= 0:
            edges += [(p, v), (v, p)]
            types += [0, 1]
            has_children[p] = True
    leaves = [v for v in range(fn.num_nodes) if not has_children[v]]
    for u, v in zip(leaves, leaves[1:]):
        edges.append((u, v))
        types.append(2)
    last: dict[str, int] = {}
    for v, name in enumerate(fn.variables):
        if name is not None:
            if name in last:
                edges += [(last[name], v), (v, last[name])]
                types += [3, 3]
            last[name] = v
    return edges, types


# ---- reading functions out of source -------------------------------------------------------
def _token(node: ast.AST, name: str) -> str | None:
    """The identifier or literal a node carries, with ``name`` replaced by the placeholder."""
    if isinstance(node, ast.Constant):
        v = node.value
        if isinstance(v, str):
            return PLACEHOLDER if v == name else repr(v) if len(v) <= _MAX_LITERAL else None
        if isinstance(v, bytes):
            return repr(v) if len(v) <= _MAX_LITERAL else None
        return repr(v)
    for field in ("id", "arg", "attr", "name", "module"):
        value = getattr(node, field, None)
        if isinstance(value, str):
            return PLACEHOLDER if value == name else value
    return None


def _kind(node: ast.AST) -> str:
    kind = type(node).__name__
    return f"{kind}:{type(node.value).__name__}" if isinstance(node, ast.Constant) else kind


def _docstring(fn: ast.AST) -> ast.Expr | None:
    body = fn.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
        return body[0]
    return None


def _tree(fn: ast.FunctionDef | ast.AsyncFunctionDef, doc: ast.Expr | None):
    """Pre-order labels, kinds, parents and variables of ``fn`` without name, decorators and docstring."""
    name = fn.name
    labels, kinds, parents, variables = [], [], [], []
    body = [s for s in fn.body if s is not doc] or [ast.Pass()]
    top = [fn.args, *([fn.returns] if fn.returns is not None else []), *body]
    stack: list[tuple[ast.AST, int]] = [(fn, -1)]
    while stack:
        node, p = stack.pop()
        v = len(labels)
        token = None if node is fn else _token(node, name)
        labels.append(_kind(node) if token is None else f"{type(node).__name__}:{token}")
        kinds.append(_kind(node))
        parents.append(p)
        variables.append(token if isinstance(node, (ast.Name, ast.arg)) else None)
        kids = top if node is fn else [c for c in ast.iter_child_nodes(node) if not isinstance(c, ast.expr_context)]
        stack += [(c, v) for c in reversed(kids)]
    return tuple(labels), tuple(kinds), tuple(parents), tuple(variables)


def _string_value(text: str) -> object:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):  # an f-string or a fragment of one
        return None


def _tokens(fn: ast.AST, doc: ast.Expr | None, toks: list[tokenize.TokenInfo], starts: list[tuple[int, int]]):
    """The tokens of ``fn``'s source from its ``def`` on, without comments and its docstring."""
    name = fn.name
    lo = bisect_left(starts, (fn.lineno, fn.col_offset))
    end = (fn.end_lineno, fn.end_col_offset)
    skip = None if doc is None else ((doc.lineno, doc.col_offset), (doc.end_lineno, doc.end_col_offset))
    out, kinds = [], []
    for tok in toks[lo:]:
        if tok.start >= end:
            break
        if tok.type in _SKIP or (skip is not None and skip[0] <= tok.start and tok.end <= skip[1]):
            continue
        if tok.type in _LAYOUT:
            text, kind = _LAYOUT[tok.type], "layout"
        elif tok.type == tokenize.NAME:
            text, kind = (PLACEHOLDER if tok.string == name else tok.string), "name"
        elif tok.type == tokenize.NUMBER:
            text, kind = tok.string, "num"
        elif tok.type == tokenize.OP:
            text, kind = tok.string, "op"
        else:  # STRING, and the parts of f-strings on Python 3.12+
            text = PLACEHOLDER if tok.type == tokenize.STRING and _string_value(tok.string) == name else tok.string
            kind = "str"
        out.append(text)
        kinds.append(kind)
    return tuple(out), tuple(kinds)


def functions_in_source(source: str, path: str = "<source>") -> tuple[CodeFunction, ...]:
    """Every ``def`` and ``async def`` in ``source`` (in the order of their ``def`` lines) as
    ``CodeFunction``. Raises ``ValueError`` naming ``path`` when the source does not parse."""
    try:
        module = ast.parse(source, filename=path)
        toks = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (SyntaxError, tokenize.TokenError) as err:
        raise ValueError(f"{path} is not valid Python: {err}") from None
    starts = [t.start for t in toks]
    out = []
    for node in ast.walk(module):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = _docstring(node)
            labels, kinds, parents, variables = _tree(node, doc)
            tokens, token_kinds = _tokens(node, doc, toks, starts)
            out.append(CodeFunction(path, node.lineno, node.name, first_word(node.name), labels, kinds, parents,
                                    variables, tokens, token_kinds))
    return tuple(sorted(out, key=lambda f: f.line))


def codename_split(relative: str) -> str:
    """``valid`` for 2 paths in 20, ``test`` for 2 in 20, ``train`` otherwise, by a SHA-256 hash of
    the path relative to the library (the ``stdlib`` corpus's buckets, two per held-out split)."""
    bucket = int.from_bytes(hashlib.sha256(relative.encode()).digest()[:4], "big") % 20
    return "valid" if bucket < 2 else "test" if bucket < 4 else "train"


@functools.lru_cache(maxsize=None)
def _file_functions(path: str, relative: str) -> tuple[CodeFunction, ...]:
    return functions_in_source(read_text(path), relative)


@dataclass(frozen=True)
class FunctionSet:
    """The functions of one split within the node budget, and what was left out: ``too_large``
    functions over the budget, ``missing_files`` pinned files absent from this Python."""

    split: str
    functions: tuple[CodeFunction, ...]
    files: int
    too_large: int
    missing_files: int

    def __len__(self) -> int:
        return len(self.functions)


def stdlib_functions(split: str, *, max_nodes: int = 300, limit: int | None = None, root: str | None = None,
                     files: Sequence[str] = STDLIB_FILES) -> FunctionSet:
    """The functions of ``split`` (``train``, ``valid``, ``test``) in the pinned files, in file order,
    those with more than ``max_nodes`` AST nodes left out (and counted). ``limit``: stop after that
    many functions (only the files needed are read). ``root``: the library (default: this Python's)."""
    if split not in SPLITS:
        raise ValueError(f"expected a split among {', '.join(map(repr, SPLITS))}, got {split!r}")
    if isinstance(max_nodes, bool) or not isinstance(max_nodes, int) or max_nodes < 1:
        raise ValueError(f"expected max_nodes as an int >= 1, got {max_nodes!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"expected limit as an int >= 1 or None, got {limit!r}")
    root = sysconfig.get_paths()["stdlib"] if root is None else root
    kept: list[CodeFunction] = []
    used = too_large = missing = 0
    for relative in files:
        if codename_split(relative) != split:
            continue
        if limit is not None and len(kept) >= limit:
            break
        path = os.path.join(root, *relative.split("/"))
        if not os.path.isfile(path) or os.path.getsize(path) == 0:
            missing += 1
            continue
        used += 1
        for fn in _file_functions(path, relative):
            if fn.num_nodes > max_nodes:
                too_large += 1
            elif limit is None or len(kept) < limit:
                kept.append(fn)
    if not kept and too_large:
        raise ValueError(f"no function of the {split!r} split fits within the node budget of {max_nodes} AST nodes "
                         f"({too_large} have more); raise max_nodes (--max-nodes)")
    if not kept:
        raise ValueError(f"found no functions of the {split!r} split under {root!r} ({missing} pinned files missing)")
    return FunctionSet(split, tuple(kept), used, too_large, missing)


# ---- classes and vocabularies ---------------------------------------------------------------
def name_classes(words: Iterable[str], k: int = 20) -> tuple[str, ...]:
    """The ``k`` most frequent first words (ties in alphabetical order), then ``OTHER`` last."""
    counts = Counter(w for w in words if w and w != OTHER)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return tuple(w for w, _ in ranked[:k]) + (OTHER,)


def class_index(word: str, classes: Sequence[str]) -> int:
    """The class of a first word: its place in ``classes``, or that of ``OTHER``."""
    try:
        return classes.index(word)
    except ValueError:
        return len(classes) - 1


def top_vocabulary(sequences: Iterable[Iterable[str]], size: int, *, specials: Sequence[str] = ()) -> dict[str, int]:
    """``specials`` at 0, 1, ..., then the ``size`` most frequent strings of ``sequences`` (ties in
    alphabetical order) -> ids."""
    counts = Counter(s for seq in sequences for s in seq)
    vocab = {s: i for i, s in enumerate(specials)}
    for s, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        if len(vocab) >= len(specials) + size:
            break
        vocab.setdefault(s, len(vocab))
    return vocab
