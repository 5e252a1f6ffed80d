"""``TreeBatch``: many trees of any shapes and arities packed into flat tensors.

Nodes are numbered tree after tree, each tree in pre-order (a node, then its children's subtrees
in child order), so node 0 is the first tree's root. Per node: ``parent`` (-1 at a root),
``position`` (its place among its siblings), ``height`` (leaves 0), ``depth`` (roots 0), ``tree``
(which tree) and ``num_children``; per edge, ``children`` (2, E) holds (parent, child) pairs and
``child_position`` (E,) the child's place. ``roots`` (T,) is each tree's root. Labels (the words,
tags or AST node types) stay as Python objects, ``x`` (N, ...) holds features or token ids.

Constructors: ``from_nested`` (``("S", ("NP", "the", "cat"), ("VP", "sat"))``), ``from_brackets``
(``"(S (NP the cat) (VP sat))"``), ``from_ast`` (Python's ``ast``), ``from_conllu`` (dependency
trees, parsed by the ``conllu`` package), ``from_parents`` and ``from_edges``; back with
``to_nested``, ``to_brackets`` and ``to_conllu``. A malformed tree (a cycle, a node with two
parents, a missing or out-of-range child, no nodes) raises ``ValueError`` naming the node.
"""

from __future__ import annotations

import ast
import numbers
from collections import Counter
from typing import Any, Callable, Iterable, Mapping, Sequence

import conllu
import torch
from torch import Tensor

from ..runners.levels import DownSchedule, UpSchedule, schedule_down, schedule_up

_CONLLU_FIELDS = ("id", "form", "lemma", "upos", "xpos", "feats", "head", "deprel", "deps", "misc")


class _Forest:
    """Accumulates validated trees (pre-order numbering) before they become tensors."""

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.position: list[int] = []
        self.labels: list[Any] = []
        self.attrs: dict[str, list] = {}
        self.roots: list[int] = []

    def add(self, parent: Sequence[int], position: Sequence[int] | None, labels: Sequence[Any],
            attrs: Mapping[str, Sequence] | None, name: Callable[[int], str]) -> None:
        """Add one tree given by local ``parent`` indices (-1 at the root) after checking it."""
        kids = _check_tree(parent, position, name)
        base = len(self.parent)
        order, stack = [], [next(v for v, p in enumerate(parent) if p < 0)]
        while stack:  # pre-order: a node, then its children's subtrees in position order
            v = stack.pop()
            order.append(v)
            stack += reversed(kids[v])
        new = {v: base + k for k, v in enumerate(order)}
        self.roots.append(base)
        for v in order:
            p = parent[v]
            self.parent.append(-1 if p < 0 else new[p])
            self.position.append(0 if p < 0 else kids[p].index(v))
            self.labels.append(labels[v])
        for key, values in (attrs or {}).items():
            column = self.attrs.setdefault(key, [None] * base)
            column += [values[v] for v in order]
        for column in self.attrs.values():
            column += [None] * (len(self.parent) - len(column))


def _integers(values: Sequence[Any], what: str, name: Callable[[int], str]) -> list[int]:
    """``values`` as Python ints (numpy and 0-d integer tensors included); ``TypeError`` naming the
    node for a float, a bool or anything else (a fraction is no index)."""
    out = []
    for v, value in enumerate(values):
        if isinstance(value, Tensor) and value.dim() == 0 and not (value.is_floating_point() or value.is_complex()
                                                                   or value.dtype == torch.bool):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name(v)} has {what} {value!r}; expected an integer")
        out.append(int(value))
    return out


def _check_tree(parent: Sequence[int], position: Sequence[int] | None, name: Callable[[int], str]) -> list[list[int]]:
    """Children lists (in position order) of a tree given by parent indices, or ``ValueError``."""
    n = len(parent)
    if n == 0:
        raise ValueError(f"{name(-1)} has no nodes; expected at least one")
    kids: list[list[int]] = [[] for _ in range(n)]
    roots = []
    for v, p in enumerate(parent):
        if not isinstance(p, int) or p < -1 or p >= n:
            raise ValueError(f"{name(v)} has parent {p!r}, outside the tree's nodes 0..{n - 1}")
        if p == v:
            raise ValueError(f"{name(v)} is its own parent: a cycle")
        (roots if p < 0 else kids[p]).append(v)
    if not roots:
        raise ValueError(f"{name(0)} is on a cycle: every node has a parent, so there is no root")
    if len(roots) > 1:
        raise ValueError(f"{name(roots[1])} is a second root ({name(roots[0])} is the first); expected one root per tree")
    seen = [False] * n
    stack = [roots[0]]
    while stack:
        v = stack.pop()
        seen[v] = True
        stack += kids[v]
    if not all(seen):
        v = seen.index(False)
        raise ValueError(f"{name(v)} is on a cycle that does not reach the root {name(roots[0])}")
    if position is not None:
        for v, q in enumerate(position):
            if parent[v] >= 0 and q < 0:
                raise ValueError(f"{name(v)} has position {q}; expected a position >= 0 among its siblings")
        for p, ks in enumerate(kids):
            places = sorted(position[c] for c in ks)
            if places != list(range(len(ks))):
                dup = [q for q, k in Counter(places).items() if k > 1]
                if dup:
                    raise ValueError(f"{name(p)} has two children at position {dup[0]}")
                missing = min(set(range(len(ks))) - set(places))
                raise ValueError(f"{name(p)} is missing its child at position {missing} (children at positions {places})")
            ks.sort(key=lambda c: position[c])
    return kids


def _as_list(trees: Any, kind: type | tuple[type, ...]) -> list:
    if not isinstance(trees, kind) and (isinstance(trees, (str, bytes)) or not hasattr(trees, "__iter__")):
        raise TypeError(f"expected a list of trees, got {type(trees).__name__} {trees!r:.60}")
    items = [trees] if isinstance(trees, kind) else list(trees)
    if not items:
        raise ValueError("expected at least one tree, got none")
    return items


class TreeBatch:
    """Many trees packed into flat tensors (see the module docstring for the layout).

    Attributes (all on one device): ``parent``, ``position``, ``height``, ``depth``, ``tree``,
    ``num_children`` (N,); ``children`` (2, E), ``child_position`` (E,); ``roots`` (T,);
    ``labels`` (list of N labels); ``attrs`` (dict of per-node lists, e.g. CoNLL-U columns);
    ``x`` (N, ...) or None.
    """

    def __init__(self, forest: _Forest, x: Tensor | None = None) -> None:
        parent = torch.tensor(forest.parent, dtype=torch.int64)
        n = parent.numel()
        self.labels: list[Any] = forest.labels
        self.attrs: dict[str, list] = forest.attrs
        self.parent = parent
        self.position = torch.tensor(forest.position, dtype=torch.int64)
        self.roots = torch.tensor(forest.roots, dtype=torch.int64)
        child = (parent >= 0).nonzero().squeeze(1)
        self.children = torch.stack([parent[child], child])  # (2, E)
        self.child_position = self.position[child]
        self.num_children = torch.bincount(parent[child], minlength=n)
        sizes = torch.diff(torch.cat([self.roots, torch.tensor([n])]))
        self.tree = torch.repeat_interleave(torch.arange(len(forest.roots)), sizes)
        depth, height = [0] * n, [0] * n
        for v, p in enumerate(forest.parent):  # pre-order: parents come first
            if p >= 0:
                depth[v] = depth[p] + 1
        for v in range(n - 1, -1, -1):  # reversed pre-order: children come first
            p = forest.parent[v]
            if p >= 0 and height[p] < height[v] + 1:
                height[p] = height[v] + 1
        self.depth = torch.tensor(depth, dtype=torch.int64)
        self.height = torch.tensor(height, dtype=torch.int64)
        self.x = None if x is None else self._check_x(x)
        self._schedules: dict[str, Any] = {}

    # ---- constructors ------------------------------------------------------------------------
    @classmethod
    def from_nested(cls, trees: Any) -> "TreeBatch":
        """Trees written as nested tuples or lists: ``(label, child, child, ...)``; anything that is
        not a tuple or list is a leaf label. ``trees``: one tree as a tuple (or a bare leaf label), or
        a list of trees. Raises ``ValueError`` for no trees, an empty node ``()``, a node whose label
        is itself a tuple, or a node that contains itself (a cycle)."""
        items = [trees] if isinstance(trees, tuple) else _as_list(trees, (str, int))
        if not items:
            raise ValueError("expected at least one tree, got none")
        forest = _Forest()
        for t, tree in enumerate(items):
            parent, labels = [], []

            def name(v: int, t=t, labels=labels) -> str:
                return f"tree {t}" if v < 0 else f"tree {t}, node {v}" + (f" ({labels[v]!r})" if v < len(labels) else "")

            stack: list[tuple[Any, int, tuple[int, ...]]] = [(tree, -1, ())]
            while stack:
                item, p, path = stack.pop()
                if isinstance(item, (tuple, list)):
                    if id(item) in path:
                        raise ValueError(f"{name(p)} contains itself: a cycle")
                    if not item:
                        where = f"{name(p)} has an empty node {item!r} as a child" if p >= 0 else f"tree {t} is empty, {item!r}"
                        raise ValueError(f"{where}; expected (label, child, ...)")
                    label, kids = item[0], item[1:]
                    if isinstance(label, (tuple, list)):
                        raise ValueError(f"{name(p)} has a child {item!r} whose label "
                                         "is a tuple; expected (label, child, ...) with a plain label")
                else:
                    label, kids = item, ()
                v = len(parent)
                parent.append(p)
                labels.append(label)
                stack += [(k, v, path + (id(item),)) for k in reversed(kids)]
            forest.add(parent, None, labels, None, name)
        return cls(forest)

    @classmethod
    def from_parents(cls, parents: Any, labels: Any = None, *, positions: Any = None) -> "TreeBatch":
        """Trees given by parent indices: one list per tree (-1 or None at the root), with optional
        ``labels`` and child ``positions`` (default: children in index order)."""
        items = _as_list(parents, ())
        forest = _Forest()
        for t, par in enumerate(items):
            if isinstance(par, (str, bytes)) or not hasattr(par, "__len__"):
                raise TypeError(f"expected one list of parent indices per tree (a list of lists), got {type(par).__name__} "
                                f"{par!r:.40} for tree {t}; for a single tree write [[-1, 0, ...]]")
            if isinstance(par, Tensor) and (par.is_floating_point() or par.is_complex() or par.dtype == torch.bool):
                raise TypeError(f"expected integer parent indices for tree {t}, got a tensor of dtype {par.dtype}")
            at = lambda v, t=t: f"tree {t}" if v < 0 else f"tree {t}, node {v}"  # noqa: E731
            par = _integers([-1 if p is None else p for p in (par.tolist() if isinstance(par, Tensor) else par)], "parent", at)
            labs = list(range(len(par))) if labels is None else list(labels[t])
            pos = None if positions is None else _integers(list(positions[t]), "position", at)
            if len(labs) != len(par) or (pos is not None and len(pos) != len(par)):
                raise ValueError(f"tree {t} has {len(par)} parents but {len(labs)} labels"
                                 + ("" if pos is None else f" and {len(pos)} positions"))
            forest.add(par, pos, labs, None, lambda v, t=t, labs=labs: f"tree {t}" if v < 0 else f"tree {t}, node {v} ({labs[v]!r})")
        return cls(forest)

    @classmethod
    def from_edges(cls, edges: Any, num_nodes: int, labels: Any = None) -> "TreeBatch":
        """One tree from ``(parent, child)`` or ``(parent, child, position)`` pairs over nodes
        ``0..num_nodes-1``. Raises ``ValueError`` for a node with two parents or an edge outside the nodes."""
        if isinstance(num_nodes, bool) or not isinstance(num_nodes, numbers.Integral) or num_nodes < 1:
            raise (ValueError if isinstance(num_nodes, numbers.Integral) and not isinstance(num_nodes, bool) else TypeError)(
                f"expected num_nodes to be an integer >= 1, got {type(num_nodes).__name__} {num_nodes!r}")
        num_nodes = int(num_nodes)
        checked = []
        for k, e in enumerate(edges):
            if isinstance(e, (str, bytes)) or not hasattr(e, "__len__") or len(e) not in (2, 3):
                raise ValueError(f"edge {k}: expected (parent, child) or (parent, child, position), got {e!r}")
            checked.append(tuple(_integers(list(e), "an end", lambda i, k=k: f"edge {k} {tuple(e)!r}")))
        edges = checked
        parent = [-1] * num_nodes
        positions = [0] * num_nodes
        with_positions = bool(edges) and all(len(e) > 2 for e in edges)
        labs = list(range(num_nodes)) if labels is None else list(labels)
        name = lambda v: f"node {v} ({labs[v]!r})"  # noqa: E731
        for edge in edges:
            p, c = edge[0], edge[1]
            for u in (p, c):
                if not 0 <= u < num_nodes:
                    raise ValueError(f"edge {edge!r} names node {u}, outside the tree's nodes 0..{num_nodes - 1}")
            if parent[c] >= 0:
                raise ValueError(f"{name(c)} has two parents: {name(parent[c])} and {name(p)}")
            parent[c] = p
            if with_positions:
                positions[c] = edge[2]
        return cls.from_parents([parent], [labs], positions=[positions] if with_positions else None)

    @classmethod
    def from_brackets(cls, text: str | Iterable[str]) -> "TreeBatch":
        """Bracketed trees, ``(S (NP the cat) (VP sat))``: after each ``(`` a label, then children
        (bracketed nodes or bare leaf tokens). A string may hold several trees; a list of strings too.
        Raises ``ValueError`` for unbalanced brackets or a missing label, naming the character."""
        texts = [text] if isinstance(text, str) else _as_list(text, ())
        trees: list[Any] = []
        for k, s in enumerate(texts):
            if not isinstance(s, str):
                raise TypeError(f"expected bracketed trees as a str or a list of str, got {type(s).__name__} {s!r:.40} at {k}")
            trees += _parse_brackets(s)
        return cls.from_nested(_as_list(trees, ()))

    @classmethod
    def from_ast(cls, node: ast.AST | str | Iterable[ast.AST | str], *,
                 label: Callable[[ast.AST], Any] | None = None) -> "TreeBatch":
        """Python syntax trees: each ``ast`` node a tree node, its children those of
        ``ast.iter_child_nodes`` in order. ``node``: an ``ast.AST``, source code, or a list of them.
        ``label(node)`` gives each node's label (default: the node type's name, ``"FunctionDef"``).
        ``attrs["ast"]`` keeps the ``ast`` objects."""
        items = [node] if isinstance(node, (ast.AST, str)) else _as_list(node, ())
        label = label or (lambda n: type(n).__name__)
        forest = _Forest()
        for t, item in enumerate(_as_list(items, ())):
            try:
                root = ast.parse(item) if isinstance(item, str) else item
            except SyntaxError as err:
                raise ValueError(f"tree {t}: expected valid Python source, got a syntax error at line {err.lineno}: {err.msg}") from None
            if not isinstance(root, ast.AST):
                raise TypeError(f"expected an ast.AST or source code for tree {t}, got {type(root).__name__}")
            nodes, parent, stack = [], [], [(root, -1)]
            while stack:
                n, p = stack.pop()
                v = len(nodes)
                nodes.append(n)
                parent.append(p)
                stack += [(c, v) for c in reversed(list(ast.iter_child_nodes(n)))]
            labels = [label(n) for n in nodes]
            forest.add(parent, None, labels, {"ast": nodes}, lambda v, t=t: f"tree {t}, node {v}")
        return cls(forest)

    @classmethod
    def from_conllu(cls, text: str | Iterable, *, label: str = "form") -> "TreeBatch":
        """Dependency trees from CoNLL-U text (parsed by the ``conllu`` package) or parsed
        ``conllu.TokenList`` sentences: one node per word (multiword-token ranges and empty nodes
        are skipped), its parent the word named by HEAD (0: the root), children in word order.
        Labels come from the column ``label``; ``attrs`` keeps every column (``id``, ``form``,
        ``upos``, ``deprel``, ...). Raises ``ValueError`` naming the sentence and word of a bad tree."""
        if isinstance(text, str):
            try:
                sentences = conllu.parse(text)
            except conllu.exceptions.ParseException as err:
                raise ValueError(f"expected CoNLL-U text (ten tab-separated columns per word), got text it cannot parse: {err}") from None
        else:
            sentences = _as_list(text, ())
        if label not in _CONLLU_FIELDS:
            raise ValueError(f"unknown CoNLL-U column {label!r}; expected one of: {', '.join(_CONLLU_FIELDS)}")
        forest = _Forest()
        for s, sentence in enumerate(_as_list(sentences, ())):
            words = [tok for tok in sentence if isinstance(tok["id"], int)]
            sent = f"sentence {s}" + (f" ({sentence.metadata['sent_id']})" if "sent_id" in sentence.metadata else "")
            name = lambda v, sent=sent, words=words: sent if v < 0 else f"{sent}, word {words[v]['id']} ({words[v]['form']!r})"  # noqa: E731
            where = {tok["id"]: k for k, tok in enumerate(words)}
            parent = []
            for k, tok in enumerate(words):
                head = tok["head"]
                if not isinstance(head, int):
                    raise ValueError(f"{name(k)} has no head (HEAD is {head!r}); expected a word id or 0 for the root")
                if head != 0 and head not in where:
                    raise ValueError(f"{name(k)} has head {head}, which is not a word of the sentence")
                parent.append(-1 if head == 0 else where[head])
            attrs = {f: [tok.get(f) for tok in words] for f in _CONLLU_FIELDS}
            forest.add(parent, None, attrs[label], attrs, name)
        return cls(forest)

    # ---- back to nested forms ----------------------------------------------------------------
    def _kids(self) -> list[list[int]]:
        kids: list[list[int]] = [[] for _ in range(self.num_nodes)]
        for p, c in self.children.t().tolist():  # pre-order: children appear in position order
            kids[p].append(c)
        return kids

    def to_nested(self) -> list:
        """Each tree as nested tuples ``(label, child, ...)``, leaves as bare labels (``from_nested``'s form)."""
        kids = self._kids()

        def build(v: int) -> Any:
            return (self.labels[v], *(build(c) for c in kids[v])) if kids[v] else self.labels[v]

        return [build(int(r)) for r in self.roots]

    def to_brackets(self) -> list[str]:
        """Each tree as a bracketed string ``(S (NP the cat) (VP sat))``; a one-node tree as ``(label)``."""
        kids = self._kids()

        def build(v: int) -> str:
            if not kids[v]:
                return str(self.labels[v])
            return "(" + " ".join([str(self.labels[v])] + [build(c) for c in kids[v]]) + ")"

        return [build(int(r)) if kids[int(r)] else f"({self.labels[int(r)]})" for r in self.roots]

    def to_conllu(self) -> str:
        """The trees as CoNLL-U text, one sentence per tree, words in ``attrs['id']`` order with HEAD
        from the tree (needs the columns that ``from_conllu`` keeps)."""
        if "id" not in self.attrs:
            raise ValueError("to_conllu needs the CoNLL-U columns in attrs (a batch made by from_conllu)")
        ids, lines, parent = self.attrs["id"], [], self.parent.tolist()
        bounds = self.roots.tolist() + [self.num_nodes]
        for start, end in zip(bounds[:-1], bounds[1:]):  # each tree's nodes are contiguous
            for v in sorted(range(start, end), key=lambda v: ids[v]):
                p = parent[v]
                row = {f: self.attrs[f][v] for f in _CONLLU_FIELDS}
                row["head"] = 0 if p < 0 else ids[p]
                lines.append("\t".join(_conllu_cell(f, row[f]) for f in _CONLLU_FIELDS))
            lines.append("")
        return "\n".join(lines) + "\n"

    # ---- sizes, levels, schedules ------------------------------------------------------------
    def __len__(self) -> int:
        return self.roots.numel()

    @property
    def num_nodes(self) -> int:
        return self.parent.numel()

    @property
    def tree_sizes(self) -> Tensor:
        """Nodes per tree (T,)."""
        return torch.bincount(self.tree, minlength=len(self))

    @property
    def max_arity(self) -> int:
        return int(self.num_children.max())

    def levels(self, direction: str = "up") -> list[Tensor]:
        """Node indices per level: ``"up"`` by height from the leaves (bottom-up), ``"down"`` by depth
        from the roots (top-down); within a level in node order."""
        key = {"up": self.height, "down": self.depth}.get(direction)
        if key is None:
            raise ValueError(f"unknown direction {direction!r}; expected 'up' or 'down'")
        return list(torch.argsort(key, stable=True).split(torch.bincount(key).tolist()))

    def schedule(self, direction: str = "up") -> UpSchedule | DownSchedule:
        """The level runner's plan for this batch (``carousel.runners.levels``), made once and kept."""
        if direction not in self._schedules:
            if direction == "up":
                self._schedules[direction] = schedule_up(self.parent, self.position, self.height)
            elif direction == "down":
                self._schedules[direction] = schedule_down(self.parent, self.depth)
            else:
                raise ValueError(f"unknown direction {direction!r}; expected 'up' or 'down'")
        return self._schedules[direction]

    def node_name(self, v: int) -> str:
        """A node in words for messages: ``node 7 (tree 1, 'NP')``."""
        return f"node {v} (tree {int(self.tree[v])}, {self.labels[v]!r})"

    def check_arity(self, max_arity: int | None) -> None:
        """``ValueError`` naming the first node with more than ``max_arity`` children (None: any)."""
        if max_arity is None:
            return
        wide = (self.num_children > max_arity).nonzero()
        if wide.numel():
            v = int(wide[0, 0])
            raise ValueError(f"{self.node_name(v)} has {int(self.num_children[v])} children; "
                             f"the positional cell takes at most max_arity={max_arity}")

    # ---- features ----------------------------------------------------------------------------
    def _check_x(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor) or x.dim() < 1 or x.shape[0] != self.num_nodes:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"expected node features with one row per node, ({self.num_nodes}, ...), got {got}")
        return x

    def with_x(self, x: Tensor) -> "TreeBatch":
        """This batch with node features or token ids ``x`` (N, ...) (shares everything else)."""
        out = object.__new__(TreeBatch)
        out.__dict__.update(self.__dict__)
        out.x = self._check_x(x)
        return out

    def vocabulary(self, *, min_count: int = 1, unk: str = "<unk>") -> dict[Any, int]:
        """Labels seen at least ``min_count`` times -> ids 1.., most frequent first (ties in first-seen
        order), with ``unk`` at 0."""
        if isinstance(min_count, bool) or not isinstance(min_count, numbers.Integral):
            raise TypeError(f"expected min_count to be an integer, got {type(min_count).__name__} {min_count!r}")
        counts = Counter(self.labels)
        kept = [lab for lab, k in sorted(counts.items(), key=lambda kv: -kv[1]) if k >= min_count and lab != unk]
        return {unk: 0, **{lab: i + 1 for i, lab in enumerate(kept)}}

    def encode(self, vocab: Mapping[Any, int], *, unk: Any = "<unk>") -> "TreeBatch":
        """This batch with ``x`` the labels' ids (N,) under ``vocab``; unseen labels get ``vocab[unk]``."""
        if not isinstance(vocab, Mapping):
            raise TypeError(f"expected vocab as a mapping from label to id (a dict, as vocabulary() makes), got {type(vocab).__name__}")
        if unk not in vocab:
            raise ValueError(f"expected the unknown label {unk!r} in the vocabulary")
        fallback = vocab[unk]
        return self.with_x(torch.tensor([vocab.get(lab, fallback) for lab in self.labels], dtype=torch.int64))

    def to(self, device) -> "TreeBatch":
        """A copy with every tensor (and the kept schedules) on ``device``."""
        try:
            device = torch.device(device)
        except (RuntimeError, TypeError) as err:
            raise ValueError(f"expected a device such as 'cpu' or 'cuda:0', got {device!r}") from err
        out = object.__new__(TreeBatch)
        out.__dict__.update({k: (v.to(device) if isinstance(v, Tensor) else v) for k, v in self.__dict__.items()})
        out._schedules = {k: s.to(device) for k, s in self._schedules.items()}
        return out

    def __repr__(self) -> str:
        return f"TreeBatch({len(self)} trees, {self.num_nodes} nodes, max height {int(self.height.max())}, max arity {self.max_arity})"


def _conllu_cell(field: str, value: Any) -> str:
    if value is None:
        return "_"
    if isinstance(value, dict):
        return "|".join(k if v is None else f"{k}={v}" for k, v in value.items()) if value else "_"
    if isinstance(value, list):  # deps: [(deprel, head), ...]
        return "|".join(f"{h}:{r}" for r, h in value) if value else "_"
    return str(value)


def _parse_brackets(s: str) -> list:
    """Nested tuples of every bracketed tree in ``s``."""
    stack: list[list] = []
    trees: list = []
    tokens: list[tuple[int, str]] = []
    k = 0
    while k < len(s):  # tokens: "(", ")" and runs of other non-space characters
        ch = s[k]
        if ch in "()":
            tokens.append((k, ch))
            k += 1
        elif ch.isspace():
            k += 1
        else:
            j = k
            while j < len(s) and not s[j].isspace() and s[j] not in "()":
                j += 1
            tokens.append((k, s[k:j]))
            k = j
    expect_label = False
    for at, tok in tokens:
        if expect_label:
            if tok in "()":
                raise ValueError(f"expected a label after '(' at character {at - 1} of {s!r}, got {tok!r}")
            stack.append([tok])
            expect_label = False
        elif tok == "(":
            expect_label = True
        elif tok == ")":
            if not stack:
                raise ValueError(f"unbalanced ')' at character {at} of {s!r}")
            node = tuple(stack.pop())
            (stack[-1].append(node) if stack else trees.append(node))
        elif stack:
            stack[-1].append(tok)
        else:
            trees.append(tok)
    if stack or expect_label:
        raise ValueError(f"unbalanced brackets in {s!r}: {len(stack) + expect_label} '(' not closed")
    if not trees:
        raise ValueError(f"expected at least one tree, got none in {s!r}")
    return trees
