"""TreeBatch: packing (parents, positions, heights, depths, levels), the four constructors and their
round trips, and a clear ValueError naming the node for every malformed tree."""

from __future__ import annotations

import ast
import importlib.metadata
from pathlib import Path

import conllu
import pytest
import torch

from carousel.structures import TreeBatch

SENTENCE = "(S (NP the cat) (VP sat (PP on (NP the mat))))"

# two sentences in CoNLL-U; the second has a multiword token (2-3 "del" = "de el")
CONLLU = """# sent_id = en-1
# text = The cat sat on the mat.
1	The	the	DET	DT	Definite=Def	2	det	_	_
2	cat	cat	NOUN	NN	Number=Sing	3	nsubj	_	_
3	sat	sit	VERB	VBD	Tense=Past	0	root	_	_
4	on	on	ADP	IN	_	6	case	_	_
5	the	the	DET	DT	Definite=Def	6	det	_	_
6	mat	mat	NOUN	NN	Number=Sing	3	obl	_	SpaceAfter=No
7	.	.	PUNCT	.	_	3	punct	_	_

# sent_id = es-1
1	Vino	venir	VERB	_	_	0	root	_	_
2-3	del	_	_	_	_	_	_	_	_
2	de	de	ADP	_	_	5	case	_	_
3	el	el	DET	_	_	5	det	_	_
4	gran	gran	ADJ	_	_	5	amod	_	_
5	mar	mar	NOUN	_	_	1	obl	_	_

"""


def test_packing_of_a_bracketed_sentence():
    b = TreeBatch.from_brackets([SENTENCE, "(X a b c)"])
    # pre-order: S NP the cat VP sat PP on NP the mat | X a b c
    assert b.labels == ["S", "NP", "the", "cat", "VP", "sat", "PP", "on", "NP", "the", "mat", "X", "a", "b", "c"]
    assert b.parent.tolist() == [-1, 0, 1, 1, 0, 4, 4, 6, 6, 8, 8, -1, 11, 11, 11]
    assert b.position.tolist() == [0, 0, 0, 1, 1, 0, 1, 0, 1, 0, 1, 0, 0, 1, 2]
    assert b.height.tolist() == [4, 1, 0, 0, 3, 0, 2, 0, 1, 0, 0, 1, 0, 0, 0]
    assert b.depth.tolist() == [0, 1, 2, 2, 1, 2, 2, 3, 3, 4, 4, 0, 1, 1, 1]
    assert b.tree.tolist() == [0] * 11 + [1] * 4 and b.roots.tolist() == [0, 11] and len(b) == 2
    assert b.num_children.tolist() == [2, 2, 0, 0, 2, 0, 2, 0, 2, 0, 0, 3, 0, 0, 0]
    assert b.children[:, :4].tolist() == [[0, 1, 1, 0], [1, 2, 3, 4]] and b.children.shape == (2, 13)
    assert b.child_position[:4].tolist() == [0, 0, 1, 1]
    assert b.tree_sizes.tolist() == [11, 4] and b.max_arity == 3
    up = [t.tolist() for t in b.levels("up")]
    assert up == [[2, 3, 5, 7, 9, 10, 12, 13, 14], [1, 8, 11], [6], [4], [0]]
    down = [t.tolist() for t in b.levels("down")]
    assert down == [[0, 11], [1, 4, 12, 13, 14], [2, 3, 5, 6], [7, 8], [9, 10]]
    with pytest.raises(ValueError, match="unknown direction 'sideways'"):
        b.levels("sideways")


def test_nested_round_trip_and_renumbering_from_parents():
    trees = [("a", ("b", "c", ("d", "e")), "f"), "leaf", ("g", ["h", "i", "j"])]
    b = TreeBatch.from_nested(trees)
    assert b.to_nested() == [("a", ("b", "c", ("d", "e")), "f"), "leaf", ("g", ("h", "i", "j"))]
    assert TreeBatch.from_nested(b.to_nested()).parent.tolist() == b.parent.tolist()
    assert TreeBatch.from_nested(("r", "x")).to_nested() == [("r", "x")]  # a tuple is one tree
    # the same tree given by parents in another numbering, with positions that reorder the children
    p = TreeBatch.from_parents([[2, 2, -1, 0]], [["b", "f", "a", "c"]], positions=[[0, 1, 0, 0]])
    assert p.to_nested() == [("a", ("b", "c"), "f")]
    assert TreeBatch.from_parents([[2, 2, None, 0]], [["b", "f", "a", "c"]]).to_nested() == [("a", ("b", "c"), "f")]
    e = TreeBatch.from_edges([(2, 1, 1), (2, 0, 0), (0, 3, 0)], 4, labels="bfac")
    assert e.to_nested() == [("a", ("b", "c"), "f")]


def test_bracket_round_trip():
    text = f"{SENTENCE}  (X a b c)\n(Y (Z w))"
    b = TreeBatch.from_brackets(text)
    assert b.to_brackets() == [SENTENCE, "(X a b c)", "(Y (Z w))"]
    assert TreeBatch.from_brackets(b.to_brackets()).to_nested() == b.to_nested()
    assert TreeBatch.from_brackets("(Q)").to_brackets() == ["(Q)"]


def test_ast_round_trip_with_node_type_labels():
    b = TreeBatch.from_ast(["x = f(1)\n", "def g(a):\n    return a\n"])
    assert b.to_nested() == [
        ("Module", ("Assign", ("Name", "Store"), ("Call", ("Name", "Load"), "Constant"))),
        ("Module", ("FunctionDef", ("arguments", "arg"), ("Return", ("Name", "Load")))),
    ]
    kept = b.attrs["ast"]
    assert isinstance(kept[4], ast.Call) and kept[4].func.id == "f" and b.labels[4] == "Call"
    # a label function: identifiers where the node has one
    named = TreeBatch.from_ast(ast.parse("y = z"), label=lambda n: getattr(n, "id", type(n).__name__))
    assert named.to_nested() == [("Module", ("Assign", ("y", "Store"), ("z", "Load")))]
    assert TreeBatch.from_nested(b.to_nested()).labels == b.labels


def _words(text: str) -> list[tuple]:
    return [tuple(tok[f] for f in ("id", "form", "lemma", "upos", "head", "deprel"))
            for sentence in conllu.parse(text) for tok in sentence if isinstance(tok["id"], int)]


def test_conllu_trees_and_round_trip():
    b = TreeBatch.from_conllu(CONLLU)
    assert b.to_nested() == [("sat", ("cat", "The"), ("mat", "on", "the"), "."), ("Vino", ("mar", "de", "el", "gran"))]
    root = int(b.roots[0])
    assert b.attrs["upos"][root] == "VERB" and b.attrs["deprel"][root] == "root"
    assert _words(b.to_conllu()) == _words(CONLLU)
    lemmas = TreeBatch.from_conllu(conllu.parse(CONLLU), label="lemma")
    assert lemmas.to_nested()[0] == ("sit", ("cat", "the"), ("mat", "on", "the"), ".")
    with pytest.raises(ValueError, match="unknown CoNLL-U column 'shape'"):
        TreeBatch.from_conllu(CONLLU, label="shape")


def _turkish_treebank() -> Path | None:
    try:
        files = importlib.metadata.files("turkish-treebanks") or []
    except importlib.metadata.PackageNotFoundError:
        return None
    return next((Path(f.locate()) for f in files if str(f).endswith("web.conllu")), None)


@pytest.mark.skipif(_turkish_treebank() is None, reason="turkish-treebanks is not installed (pip install turkish-treebanks==1.0.0)")
def test_conllu_round_trip_on_real_turkish_sentences():
    text = _turkish_treebank().read_text(encoding="utf-8")
    first = "\n\n".join(text.strip().split("\n\n")[:20]) + "\n\n"
    b = TreeBatch.from_conllu(first)
    assert len(b) == 20 and _words(b.to_conllu()) == _words(first)


BAD = [
    (lambda: TreeBatch.from_nested([]), "expected at least one tree, got none"),
    (lambda: TreeBatch.from_brackets(""), "expected at least one tree, got none"),
    (lambda: TreeBatch.from_nested(("a", "b", ())), r"tree 0, node 0 \('a'\) has an empty node \(\)"),
    (lambda: TreeBatch.from_nested(("a", (("b",), "c"))), r"tree 0, node 0 \('a'\) has a child .* whose label is a tuple"),
    (lambda: TreeBatch.from_parents([[-1, 2, 1]], [["r", "p", "q"]]), r"tree 0, node 1 \('p'\) is on a cycle"),
    (lambda: TreeBatch.from_parents([[1, 0]]), r"tree 0, node 0 \(0\) is on a cycle: every node has a parent"),
    (lambda: TreeBatch.from_parents([[-1, 1]]), r"tree 0, node 1 \(1\) is its own parent"),
    (lambda: TreeBatch.from_parents([[-1, -1, 0]]), r"tree 0, node 1 \(1\) is a second root"),
    (lambda: TreeBatch.from_parents([[-1, 5]]), r"tree 0, node 1 \(1\) has parent 5, outside the tree's nodes 0..1"),
    (lambda: TreeBatch.from_parents([[]]), r"tree 0 has no nodes"),
    (lambda: TreeBatch.from_edges([(0, 1), (2, 1)], 3), r"node 1 \(1\) has two parents: node 0 \(0\) and node 2 \(2\)"),
    (lambda: TreeBatch.from_edges([(0, 1), (0, 4)], 3), r"edge \(0, 4\) names node 4, outside the tree's nodes 0..2"),
    (lambda: TreeBatch.from_edges([(0, 1, 0), (0, 2, 2)], 3), r"node 0 \(0\) is missing its child at position 1"),
    (lambda: TreeBatch.from_edges([(0, 1, 1), (0, 2, 1)], 3), r"node 0 \(0\) has two children at position 1"),
    (lambda: TreeBatch.from_brackets("(S (NP a b)"), r"unbalanced brackets .* 1 '\(' not closed"),
    (lambda: TreeBatch.from_brackets("(S a))"), r"unbalanced '\)' at character 5"),
    (lambda: TreeBatch.from_brackets("(S ((NP a)))"), r"expected a label after '\(' at character 3"),
    (lambda: TreeBatch.from_conllu(CONLLU.replace("6\tcase", "9\tcase")), r"sentence 0 \(en-1\), word 4 \('on'\) has head 9"),
    (lambda: TreeBatch.from_conllu(CONLLU.replace("3\tnsubj", "1\tnsubj")), r"sentence 0 \(en-1\), word 1 \('The'\) is on a cycle"),
    (lambda: TreeBatch.from_conllu(CONLLU.replace("3\tpunct", "0\tpunct")), r"sentence 0 \(en-1\), word 7 \('.'\) is a second root"),
    (lambda: TreeBatch.from_conllu(CONLLU.replace("3\tobl", "_\tobl")), r"word 6 \('mat'\) has no head"),
]


@pytest.mark.parametrize("make, message", BAD, ids=[m for _, m in BAD])
def test_every_bad_tree_gets_its_error(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_a_node_with_itself_as_a_descendant_is_a_cycle():
    loop: list = ["a", "b"]
    loop.append(loop)
    with pytest.raises(ValueError, match=r"tree 0, node 0 \('a'\) contains itself: a cycle"):
        TreeBatch.from_nested([loop])


def test_arity_check_names_the_node():
    b = TreeBatch.from_brackets(["(A x y)", "(B (C p q r) s)"])
    b.check_arity(3)
    with pytest.raises(ValueError, match=r"node 4 \(tree 1, 'C'\) has 3 children; the positional cell takes at most max_arity=2"):
        b.check_arity(2)


def test_vocabulary_encoding_features_and_device_copies():
    b = TreeBatch.from_brackets(["(S a b a)", "(S c)"])
    vocab = b.vocabulary()
    assert vocab == {"<unk>": 0, "S": 1, "a": 2, "b": 3, "c": 4}
    assert b.encode(vocab).x.tolist() == [1, 2, 3, 2, 1, 4]
    assert b.encode({"<unk>": 0, "a": 7}).x.tolist() == [0, 7, 0, 7, 0, 0]
    assert b.vocabulary(min_count=2) == {"<unk>": 0, "S": 1, "a": 2}
    with pytest.raises(ValueError, match="one row per node, \\(6, ...\\), got \\(5, 2\\)"):
        b.with_x(torch.zeros(5, 2))
    with pytest.raises(ValueError, match="expected the unknown label '<unk>' in the vocabulary"):
        b.encode({"a": 1})
    plan = b.schedule("up")
    moved = b.to("cpu")
    assert moved.schedule("up").order.tolist() == plan.order.tolist() and moved.parent.tolist() == b.parent.tolist()
    assert "2 trees, 6 nodes" in repr(b)


def test_an_empty_tree_is_named():
    with pytest.raises(ValueError, match=r"tree 1 is empty, \(\); expected \(label, child, ...\)"):
        TreeBatch.from_nested([("a", "b"), ()])


try:  # hypothesis is a dev dependency; the round trips above do not need it
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover
    given = None

if given is not None:
    _labels = st.sampled_from(["a", "b", "NP", "VP", "x1"])
    _trees = st.recursive(_labels, lambda kids: st.builds(lambda lab, ks: (lab, *ks), _labels,
                                                          st.lists(kids, min_size=1, max_size=4)), max_leaves=25)

    @settings(max_examples=60, deadline=None)
    @given(st.lists(_trees, min_size=1, max_size=4))
    def test_any_nested_forest_round_trips_and_its_tensors_agree(trees):
        b = TreeBatch.from_nested(trees)
        assert b.to_nested() == trees
        assert TreeBatch.from_brackets(b.to_brackets()).to_nested() == trees
        parent, height, depth = b.parent.tolist(), b.height.tolist(), b.depth.tolist()
        for v, p in enumerate(parent):
            if p >= 0:
                assert depth[v] == depth[p] + 1 and height[p] > height[v] and p < v  # pre-order
        kids = b.num_children.tolist()
        assert all((height[v] == 0) == (kids[v] == 0) for v in range(b.num_nodes))
        assert sum(len(t) for t in b.levels("up")) == b.num_nodes == sum(len(t) for t in b.levels("down"))
