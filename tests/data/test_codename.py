"""The codename data: a function's name is really gone from its input (tokens, node labels,
variables), labels are the name's first word, the split is by file, disjoint and stable, the
node budget counts what it leaves out, and the graph's edges are right on a hand-written function."""

import ast

import pytest

from carousel.data.codename import (EDGE_TYPES, OTHER, PLACEHOLDER, SPLITS, class_index, codename_split, first_word,
                                    functions_in_source, graph_edges, name_classes, name_words, stdlib_functions,
                                    top_vocabulary)
from carousel.data.stdlib_files import STDLIB_FILES

SOURCE = '''
import functools

@functools.lru_cache
def get_value(self, key, default=None):
    """get_value(key) returns the value of key."""
    # get_value looks the key up, else recurses
    if key in self._data:
        return self._data[key]
    get_value = getattr(self, "get_value")
    return self.get_value(key.lower(), "get_value") + get_value(key)

class Reader:
    async def isReady(self):
        """Only a docstring."""

    def __init__(self, stream):
        def readLine():
            return stream.readline()
        self.readLine = readLine
'''


def carried(fn):
    """Every string a model reads for ``fn``: its tokens and the identifier/literal part of each node label."""
    return list(fn.tokens) + [lab.split(":", 1)[1] for lab in fn.labels if ":" in lab]


@pytest.mark.parametrize(("name", "words"), [
    ("__init__", ["init"]), ("getHTTPResponse", ["get", "http", "response"]), ("_is_dir", ["is", "dir"]),
    ("HTMLParser", ["html", "parser"]), ("test2_sum", ["test", "2", "sum"]), ("_", []), ("readline", ["readline"]),
])
def test_name_words_split_on_underscores_and_camel_case(name, words):
    assert name_words(name) == words
    assert first_word(name) == (words[0] if words else "")


def test_the_name_is_removed_from_every_view_of_the_function():
    fns = {f.name: f for f in functions_in_source(SOURCE, "demo.py")}
    assert sorted(fns) == ["__init__", "get_value", "isReady", "readLine"]
    fn = fns["get_value"]
    assert fn.word == "get" and fn.path == "demo.py" and fn.line == 5
    for f in fns.values():
        assert f.name not in carried(f) and f.name not in f.variables, f
    # the def, the local of the same name, getattr's string, the method call, the call of the local
    assert fn.tokens.count(PLACEHOLDER) == 6 and fn.variables.count(PLACEHOLDER) == 2
    assert "Attribute:<fn>" in fn.labels and "Constant:<fn>" in fn.labels and "Name:<fn>" in fn.labels
    assert fn.tokens[:3] == ("def", PLACEHOLDER, "(")  # from the def on: the decorator is left out
    assert not any("value of key" in t or "recurses" in t for t in fn.tokens)  # neither docstring nor comment
    assert fn.labels[:3] == ("FunctionDef", "arguments", "arg:self") and "functools" not in carried(fn)
    ready = fns["isReady"]
    assert ready.labels == ("AsyncFunctionDef", "arguments", "arg:self", "Pass") and ready.word == "is"
    # the enclosing function keeps the nested function's name; the nested one loses it
    assert "FunctionDef:readLine" in fns["__init__"].labels and "readLine" in fns["__init__"].tokens
    assert fns["readLine"].labels[0] == "FunctionDef" and "Attribute:readline" in fns["readLine"].labels


def test_the_tree_is_the_ast_without_contexts_in_pre_order():
    (fn,) = functions_in_source("def f(a):\n    b = a + 1\n    return b\n")
    assert fn.labels == ("FunctionDef", "arguments", "arg:a", "Assign", "Name:b", "BinOp", "Name:a", "Add",
                         "Constant:1", "Return", "Name:b")
    assert fn.parents == (-1, 0, 1, 0, 3, 3, 5, 5, 5, 0, 9)
    assert fn.kinds[8] == "Constant:int" and fn.variables == (None, None, "a", None, "b", None, "a", None, None, None, "b")
    assert fn.tokens == ("def", "<fn>", "(", "a", ")", ":", "<newline>", "<indent>", "b", "=", "a", "+", "1",
                         "<newline>", "return", "b")
    assert fn.token_kinds[:3] == ("name", "name", "op") and fn.token_kinds[12] == "num"


def test_graph_edges_on_a_hand_written_function():
    (fn,) = functions_in_source("def f(a):\n    b = a\n    return b\n")
    # 0 FunctionDef, 1 arguments, 2 arg:a, 3 Assign, 4 Name:b, 5 Name:a, 6 Return, 7 Name:b
    assert fn.labels == ("FunctionDef", "arguments", "arg:a", "Assign", "Name:b", "Name:a", "Return", "Name:b")
    edges, types = graph_edges(fn)
    by_type = {name: sorted(e for e, t in zip(edges, types) if t == k) for k, name in enumerate(EDGE_TYPES)}
    tree = [(0, 1), (0, 3), (0, 6), (1, 2), (3, 4), (3, 5), (6, 7)]
    assert by_type["child"] == tree
    assert by_type["parent"] == sorted((v, u) for u, v in tree)
    assert by_type["next_token"] == [(2, 4), (4, 5), (5, 7)]  # the leaves a, b, a, b in source order
    assert by_type["same_variable"] == [(2, 5), (4, 7), (5, 2), (7, 4)]  # a: 2 and 5; b: 4 and 7
    assert len(edges) == len(types) == 2 * 7 + 3 + 4


def test_real_functions_never_carry_their_name():
    fs = stdlib_functions("train", limit=600)
    assert len(fs) == 600 and len({f.path for f in fs.functions}) > 3
    for fn in fs.functions:
        assert fn.word == first_word(fn.name)
        assert fn.name not in carried(fn) and fn.name not in fn.variables, fn
        assert fn.tokens.count(PLACEHOLDER) >= 1 and fn.labels[0] in ("FunctionDef", "AsyncFunctionDef")


def test_splits_are_by_file_disjoint_and_stable():
    splits = [codename_split(f) for f in STDLIB_FILES]
    assert [splits.count(s) for s in SPLITS] == [342, 50, 38]  # pinned: these never move
    assert codename_split("bisect.py") == "valid" and codename_split("typing.py") == "test"
    assert codename_split("argparse.py") == "train" and codename_split("asyncio/protocols.py") == "test"
    files = ("bisect.py", "typing.py", "argparse.py", "abc.py", "asyncio/protocols.py", "heapq.py")
    paths = {s: {f.path for f in stdlib_functions(s, files=files).functions} for s in SPLITS}
    assert all(codename_split(p) == s for s, ps in paths.items() for p in ps)
    assert paths["train"] and paths["valid"] and paths["test"]
    assert not (paths["train"] & paths["valid"]) and not (paths["train"] & paths["test"]) and not (paths["valid"] & paths["test"])
    again = stdlib_functions("valid", files=files)
    assert [f.name for f in again.functions] == [f.name for f in stdlib_functions("valid", files=files).functions]


def test_the_node_budget_leaves_functions_out_and_counts_them():
    whole = stdlib_functions("train", files=("argparse.py",), max_nodes=10**6)
    small = stdlib_functions("train", files=("argparse.py",), max_nodes=40)
    assert whole.too_large == 0 and small.too_large > 0
    assert len(small) + small.too_large == len(whole)
    assert all(f.num_nodes <= 40 for f in small.functions)
    assert [f for f in whole.functions if f.num_nodes <= 40] == list(small.functions)
    assert stdlib_functions("train", files=("argparse.py", "no/such_file.py")).missing_files == 1


def test_classes_and_vocabularies():
    words = ["get"] * 3 + ["set"] * 2 + ["is"] * 2 + ["add", "", OTHER]
    assert name_classes(words, 2) == ("get", "is", OTHER)  # ties alphabetically
    classes = name_classes(words, 3)
    assert [class_index(w, classes) for w in ("get", "set", "add", "")] == [0, 2, 3, 3]
    vocab = top_vocabulary([["b", "a", "b"], ["c", "a", "b"]], 2, specials=("<pad>", "<unk>"))
    assert vocab == {"<pad>": 0, "<unk>": 1, "b": 2, "a": 3}


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="expected a split among 'train', 'valid', 'test', got 'dev'"):
        stdlib_functions("dev")
    with pytest.raises(ValueError, match="expected max_nodes as an int >= 1, got 0"):
        stdlib_functions("train", max_nodes=0)
    with pytest.raises(ValueError, match="expected limit as an int >= 1 or None, got 0"):
        stdlib_functions("train", limit=0)
    with pytest.raises(ValueError, match="broken.py is not valid Python"):
        functions_in_source("def f(:\n", "broken.py")
    with pytest.raises(ValueError, match="found no functions of the 'test' split"):
        stdlib_functions("test", files=("bisect.py",))
    with pytest.raises(TypeError, match="expected an identifier as a str, got int"):
        name_words(3)
    assert isinstance(ast.parse(SOURCE), ast.Module)
