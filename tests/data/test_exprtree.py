"""``carousel.data.exprtree``: values against Python's own evaluation of the expression, depths
against the bracket nesting, held-out trees apart from training trees, seeded draws, the token
encoding and the errors."""

import pytest
import torch

from carousel.data.exprtree import (
    OPERATORS,
    VOCABULARY,
    encode_tokens,
    expressions,
    held_out,
    parse_operators,
    to_brackets,
    tokens,
)


def python_expression(toks: list[str], *, reduce: bool) -> str:
    """The prefix tokens ``( op a b )`` as a Python expression; with ``reduce`` each operand is taken
    mod 10 first (what max and min compare). Written apart from the generator, from the tokens."""

    def parse(i: int) -> tuple[str, int]:
        if toks[i] != "(":
            assert toks[i].isdigit() and len(toks[i]) == 1, toks[i]
            return toks[i], i + 1
        op = toks[i + 1]
        a, i = parse(i + 2)
        b, i = parse(i)
        assert toks[i] == ")"
        if reduce:
            a, b = f"({a}) % 10", f"({b}) % 10"
        text = f"{op}({a}, {b})" if op in ("max", "min") else f"(({a}) {op} ({b}))"
        return text, i + 1

    text, end = parse(0)
    assert end == len(toks)
    return text


def nesting(toks: list[str]) -> int:
    deepest = level = 0
    for tok in toks:
        level += (tok == "(") - (tok == ")")
        deepest = max(deepest, level)
    return deepest


@pytest.mark.parametrize("depth", [1, 3, 6, 8])
def test_values_are_pythons_integer_arithmetic_mod_10(depth):
    """With +, - and * the value is the whole expression's integer value mod 10 (no reduction inside)."""
    data = expressions(200, depth, seed=depth)
    expected = [eval(python_expression(tokens(t), reduce=False)) % 10 for t in data.trees]  # noqa: S307 (our own digits)
    assert data.values.tolist() == expected
    assert len(set(expected)) == 10  # every class occurs


def test_values_with_max_and_min():
    data = expressions(300, [2, 4, 5], operators=OPERATORS, seed=1)
    ops = {tok for t in data.trees for tok in tokens(t)} & set(OPERATORS)
    assert ops == set(OPERATORS)
    expected = [eval(python_expression(tokens(t), reduce=True)) % 10 for t in data.trees]  # noqa: S307
    assert data.values.tolist() == expected
    plain = [eval(python_expression(tokens(t), reduce=False)) % 10 for t in data.trees]  # noqa: S307
    assert plain != expected  # max and min compare digits, not the integers below them


def test_depths_are_as_asked():
    data = expressions(400, [2, 5, 7], seed=3)
    found = [nesting(tokens(t)) for t in data.trees]
    assert found == data.depths.tolist()
    counts = torch.bincount(data.depths, minlength=8)
    assert set(data.depths.tolist()) == {2, 5, 7} and counts[[2, 5, 7]].min() > 100  # uniform over the three
    one = expressions(50, 4, seed=0)
    assert {nesting(tokens(t)) for t in one.trees} == {4}


def test_held_out_trees_and_training_trees_are_apart():
    train = expressions(3000, [1, 2], held=False, seed=0)
    valid = expressions(3000, [1, 2], held=True, seed=1)
    train_set, valid_set = {to_brackets(t) for t in train.trees}, {to_brackets(t) for t in valid.trees}
    assert not train_set & valid_set
    assert len(valid_set) > 100 and len(train_set) > 1000
    everything = {to_brackets(t) for t in expressions(5000, 1, seed=2).trees}
    assert len(everything) == 300  # 3 operators x 10 x 10 digits: the draws reach them all
    held = {b for b in everything if held_out(tuple(b.split()[1:4]))}  # ( op a b ) -> (op, a, b)
    assert 10 < len(held) < 60  # about one in ten
    assert {to_brackets(t) for t in expressions(5000, 1, held=True, seed=3).trees} == held


def test_distinct_draws_and_too_few_trees():
    data = expressions(500, 2, held=True, distinct=True, seed=4)
    assert len({to_brackets(t) for t in data.trees}) == 500 == len(data.trees)
    few = expressions(1000, 1, held=True, distinct=True, seed=4)  # only a few held-out trees of depth 1 exist
    assert len(few.trees) == len({to_brackets(t) for t in few.trees}) < 60
    assert few.values.shape == few.depths.shape == (len(few.trees),)


def test_the_same_seed_gives_the_same_trees():
    a, b, c = (expressions(64, [1, 2, 3, 4], seed=s) for s in (7, 7, 8))
    assert a.trees == b.trees and torch.equal(a.values, b.values) and torch.equal(a.depths, b.depths)
    assert a.trees != c.trees


def test_encode_tokens():
    data = expressions(20, [1, 3], seed=5)
    ids, lengths = encode_tokens(data.trees)
    inverse = {i: tok for tok, i in VOCABULARY.items()}
    assert ids.dtype == lengths.dtype == torch.int64 and ids.shape == (20, int(lengths.max()))
    for row, n, tree in zip(ids, lengths.tolist(), data.trees):
        assert [inverse[i] for i in row[:n].tolist()] == tokens(tree)
        assert not row[n:].any()  # padding is id 0
    assert to_brackets(("+", "3", ("*", "4", "5"))) == "( + 3 ( * 4 5 ) )"


def test_errors():
    with pytest.raises(ValueError, match="unknown operator '/'; expected some of: \\+, -, \\*, max, min"):
        parse_operators("+,/")
    with pytest.raises(ValueError, match="operator '\\+' is given twice"):
        parse_operators("+,-,+")
    with pytest.raises(ValueError, match="at least one operator"):
        parse_operators(" , ")
    with pytest.raises(TypeError, match="sequence of operators"):
        expressions(4, 2, operators="+-*")
    with pytest.raises(ValueError, match="expected depths from 1 to 20, got 0"):
        expressions(4, [0, 2])
    with pytest.raises(ValueError, match="expected depths from 1 to 20, got 21"):
        expressions(4, 21)
    with pytest.raises(ValueError, match="at least one depth"):
        expressions(4, [])
    with pytest.raises(ValueError, match="num_trees to be an integer >= 1, got 0"):
        expressions(0, 2)
