"""The ``deptag`` reader: words only (multiword tokens and empty nodes dropped), one tag per word,
well-formed trees, the hash split, the vocabulary, the most-frequent-tag baseline against hand
counts, and the real Turkish treebank (``turkish-treebanks==1.0.0``, installed by ``make test``)."""

import hashlib
import re

import conllu
import pytest

from carousel.data import deptag
from carousel.data.corpus import MissingPackageError
from carousel.data.deptag import (
    UNK, MostFrequentTag, read_conllu, split_of, split_treebank, tag_accuracy, tags, treebank_paths, turkish_treebank,
    word_vocabulary,
)
from carousel.structures import TreeBatch

# a multiword token (3-4 "vámonos" = vamos + nos) and an empty node (4.1) among six words
MIXED = """# sent_id = mixed-1
# text = Ya vámonos todos juntos .
1	Ya	ya	ADV	_	_	3	advmod	_	_
2-3	vámonos	_	_	_	_	_	_	_	_
2	vamos	ir	VERB	_	_	0	root	_	_
3	nos	nosotros	PRON	_	_	2	obj	_	_
4	todos	todo	DET	_	_	2	obl	_	_
4.1	ir	ir	VERB	_	_	_	_	2:conj	_
5	juntos	junto	ADJ	_	_	4	amod	_	_
6	.	.	PUNCT	_	_	2	punct	_	_

"""

# hand counts: "run" VERB 2, NOUN 1 -> VERB; "fish" NOUN 1, VERB 1 (tie) -> NOUN, more frequent
# overall (NOUN 5, VERB 4); "the" DET; "dogs" NOUN; "." PUNCT; an unseen form -> NOUN.
TRAIN = """# sent_id = t1
1	dogs	_	NOUN	_	_	2	nsubj	_	_
2	run	_	VERB	_	_	0	root	_	_
3	.	_	PUNCT	_	_	2	punct	_	_

# sent_id = t2
1	the	_	DET	_	_	2	det	_	_
2	run	_	NOUN	_	_	3	nsubj	_	_
3	run	_	VERB	_	_	0	root	_	_

# sent_id = t3
1	fish	_	NOUN	_	_	2	nsubj	_	_
2	fish	_	VERB	_	_	0	root	_	_
3	dogs	_	NOUN	_	_	2	obj	_	_
4	dogs	_	NOUN	_	_	2	obj	_	_

"""
TEST = """# sent_id = s1
1	the	_	DET	_	_	2	det	_	_
2	fish	_	VERB	_	_	3	nsubj	_	_
3	swim	_	VERB	_	_	0	root	_	_
4	.	_	PUNCT	_	_	3	punct	_	_

"""


def test_words_only_one_tag_per_word_and_a_well_formed_tree():
    (sentence,) = read_conllu(MIXED)
    assert [t["id"] for t in sentence] == [1, 2, 3, 4, 5, 6]
    assert deptag.forms(sentence) == ["Ya", "vamos", "nos", "todos", "juntos", "."]
    assert tags(sentence) == ["ADV", "VERB", "PRON", "DET", "ADJ", "PUNCT"]
    assert sentence.metadata["sent_id"] == "mixed-1"
    trees = TreeBatch.from_conllu([sentence])
    assert len(trees) == 1 and trees.num_nodes == 6
    ids, parent = trees.attrs["id"], trees.parent.tolist()
    heads = {t["id"]: t["head"] for t in sentence}
    for v in range(trees.num_nodes):  # every node's parent is the word its HEAD names
        assert (0 if parent[v] < 0 else ids[parent[v]]) == heads[ids[v]]
    assert trees.labels[0] == "vamos" and int(trees.height[0]) == 2  # root; vamos -> todos -> juntos
    assert sorted(trees.attrs["upos"]) == sorted(tags(sentence))


@pytest.mark.parametrize("text, message", [
    (MIXED.replace("ADV", "_"), r"sentence 0 \(mixed-1\), word 1 \('Ya'\) has no UPOS tag"),
    (MIXED.replace("0	root", "9	root"), r"word 2 \('vamos'\) has head 9; expected a word id 1..6 or 0"),
    (MIXED.replace("5	juntos", "7	juntos"), r"word 7 \('juntos'\) is out of order: expected word ids 1..6"),
])
def test_bad_sentences_name_the_word(text, message):
    with pytest.raises(ValueError, match=message):
        read_conllu(text)


def test_bad_input_types():
    with pytest.raises(TypeError, match="expected CoNLL-U text as a str, got list"):
        read_conllu([MIXED])
    with pytest.raises(ValueError, match="expected a vocabulary size >= 1, got 0"):
        word_vocabulary(read_conllu(TRAIN), 0)
    with pytest.raises(ValueError, match="expected a split among"):
        split_treebank(read_conllu(TRAIN)).split("dev")


def test_most_frequent_tag_against_hand_counts():
    train, test = read_conllu(TRAIN), read_conllu(TEST)
    baseline = MostFrequentTag(train)
    assert baseline.default == "NOUN"
    assert [baseline(f) for f in ("run", "fish", "the", "dogs", ".", "swim")] == ["VERB", "NOUN", "DET", "NOUN", "PUNCT", "NOUN"]
    assert baseline.predict(test) == [["DET", "NOUN", "NOUN", "PUNCT"]]
    scores = tag_accuracy(baseline.predict(test), test, baseline.table)
    assert scores["accuracy"] == pytest.approx(2 / 4)  # the, . right; fish (VERB here), swim wrong
    assert scores["oov_accuracy"] == 0.0 and scores["oov_share"] == pytest.approx(1 / 4)  # swim: unseen, NOUN != VERB
    on_train = tag_accuracy(baseline.predict(train), train, baseline.table)
    assert on_train["accuracy"] == pytest.approx(8 / 10)  # run as NOUN and fish as VERB are the two misses
    assert on_train["oov_share"] == 0.0
    with pytest.raises(ValueError, match=r"sentence 0 \(s1\) has 4 words but 3 predicted tags"):
        tag_accuracy([["DET", "NOUN", "NOUN"]], test, baseline.table)


def test_vocabulary_keeps_the_most_frequent_forms():
    vocab = word_vocabulary(read_conllu(TRAIN), 2)
    assert vocab == {UNK: 0, "dogs": 1, "run": 2}  # dogs 3, run 3 (dogs seen first), fish 2 left out
    assert len(word_vocabulary(read_conllu(TRAIN), 100)) == 1 + 5


def test_split_is_a_hash_of_the_sentence_id():
    text = "".join(f"# sent_id = doc-{k}\n1\tw{k % 7}\t_\tNOUN\t_\t_\t0\troot\t_\t_\n\n" for k in range(2000))
    sentences = read_conllu(text)
    parts = split_treebank(sentences)
    sizes = {s: len(parts.split(s)) for s in ("train", "valid", "test")}
    assert sum(sizes.values()) == 2000 and 140 < sizes["valid"] < 260 and 140 < sizes["test"] < 260, sizes
    for sentence in sentences[:50]:
        bucket = int.from_bytes(hashlib.sha256(sentence.metadata["sent_id"].encode()).digest()[:4], "big") % 10
        assert split_of(sentence) == {0: "valid", 1: "test"}.get(bucket, "train")
    renamed = read_conllu(text.replace("\tw", "\tother"))  # same ids, other words: the same split
    assert [split_of(s) for s in renamed] == [split_of(s) for s in sentences]


def test_missing_package_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(deptag, "_site_directories", lambda: [str(tmp_path)])
    with pytest.raises(MissingPackageError, match=re.escape("pip install 'turkish-treebanks==1.0.0'")):
        treebank_paths()


def test_the_real_treebank():
    paths = treebank_paths()  # make test installs turkish-treebanks (the trees extra): no skip
    assert [p.replace("\\", "/").rsplit("/", 2)[-2:] for p in paths] == [["data", "web.conllu"], ["data", "wiki.conllu"]]
    treebank = turkish_treebank()
    ids = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            ids += [line.split("=", 1)[1].strip() for line in f if line.startswith("# sent_id")]
    splits = [treebank.split(s) for s in ("train", "valid", "test")]
    assert sorted(s.metadata["sent_id"] for part in splits for s in part) == sorted(ids)
    assert all(split_of(s) == name for part, name in zip(splits, ("train", "valid", "test")) for s in part)
    assert 0.07 < len(treebank.valid) / len(ids) < 0.13 and 0.07 < len(treebank.test) / len(ids) < 0.13
    assert {"NOUN", "VERB", "ADJ", "PUNCT"} <= set(treebank.tagset)
    trees = TreeBatch.from_conllu(treebank.valid)  # every sentence a tree, one node per word
    assert len(trees) == len(treebank.valid) and trees.num_nodes == sum(len(s) for s in treebank.valid)
    assert isinstance(treebank.valid[0], conllu.TokenList)
