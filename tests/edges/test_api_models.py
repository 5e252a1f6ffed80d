"""Bad input to the models (``CharLM``, ``RecurrentModel``) and to sampling (see ``api_matrix``)."""

from __future__ import annotations

import torch

import carousel as C
from carousel.data.vocab import Vocabulary
from carousel.decode.sampling import generate, next_token
from carousel.models import CharLM, RecurrentModel
from edges.api_matrix import Case, parametrize, raises, run_case

V, E, H, B, T, I = 6, 4, 5, 2, 3, 3


def _lm(**kw):
    torch.manual_seed(0)
    return CharLM(V, embed_size=E, hidden_size=H, **kw)


def _ids(*shape, device="cpu", dtype=torch.int64):
    return torch.randint(0, V, shape or (B, T), generator=torch.Generator().manual_seed(1)).to(device=device, dtype=dtype)


def _rm(**kw):
    torch.manual_seed(0)
    return RecurrentModel("gru", I, H, 2, **kw)


def _x(*shape, dtype=torch.float32, device="cpu"):
    return torch.randn(*(shape or (B, T, I)), generator=torch.Generator().manual_seed(1)).to(device=device, dtype=dtype)


def _lstm_state(dtype=torch.float32, device="cpu"):
    return C.LSTMState(torch.zeros(B, H, dtype=dtype, device=device), torch.zeros(B, H, dtype=dtype, device=device))


def _logits():
    return torch.tensor([[0.0, 1.0, 3.0, 2.0], [5.0, 0.0, 1.0, 4.0]])


def _vocab():
    return Vocabulary(list("abcde"))


def _same(reference):
    def check(result):
        torch.testing.assert_close(result, reference(), rtol=0, atol=0)

    return check


def _model_rates(name: str) -> list[Case]:
    return [
        Case(f"charlm-{name}-nan", lambda: _lm(**{name: float("nan")}), raises(ValueError, name, "nan")),
        Case(f"charlm-{name}-one", lambda: _lm(**{name: 1.0}), raises(ValueError, name, "[0, 1)", "1.0")),
        Case(f"charlm-{name}-string", lambda: _lm(**{name: "0.1"}), raises(TypeError, name, "'0.1'")),
    ]


RATES = ("embed_dropout", "input_dropout", "between_dropout", "output_dropout", "weight_drop", "recurrent_dropout", "zoneout_h", "zoneout_c")

CASES = [
    *[c for name in RATES for c in _model_rates(name)],
    Case("charlm-vocab-one", lambda: CharLM(1), raises(ValueError, "vocab_size", ">= 2", "1")),
    Case("charlm-vocab-float", lambda: CharLM(6.0), raises(TypeError, "vocab_size", "6.0")),
    Case("charlm-hidden-float", lambda: CharLM(V, hidden_size=8.5), raises(TypeError, "hidden_size", "8.5")),
    Case("charlm-hidden-string", lambda: CharLM(V, hidden_size="8"), raises(TypeError, "hidden_size", "'8'")),
    Case("charlm-hidden-count", lambda: CharLM(V, hidden_size=[8], layers=2), raises(ValueError, "2 hidden sizes", "got 1")),
    Case("charlm-layers-zero", lambda: CharLM(V, layers=0), raises(ValueError, "layers", "0")),
    Case("charlm-tied-string", lambda: _lm(tied="yes"), raises(TypeError, "tied", "'yes'")),
    Case("charlm-cell-unknown", lambda: _lm(cell="lsmt"), raises(ValueError, "'lsmt'", "'lstm'")),
    Case("charlm-cell-not-callable", lambda: _lm(cell=3), raises(TypeError, "cell", "int")),
    Case("charlm-cell-option", lambda: _lm(cell_options={"forget_bias": float("nan")}), raises(ValueError, "forget_bias", "nan")),
    Case("charlm-cell-options-list", lambda: _lm(cell_options=["forget_bias"]), raises(TypeError, "cell options", "list")),
    Case("charlm-vocabulary-string", lambda: CharLM(V, vocabulary="abcde"), raises(TypeError, "Vocabulary", "str")),
    Case("generate-vocab-string", lambda: generate(_lm(), "abcde", "a", 3), raises(TypeError, "Vocabulary", "str")),
    Case("charlm-initial-state-negative", lambda: _lm().initial_state(-2), raises(ValueError, "batch_size", "-2")),
    Case("charlm-backend", lambda: _lm(backend="cuda"), raises(ValueError, "'cuda'", "'auto'")),
    Case("charlm-ids-float", lambda: _lm()(_ids().float()), raises(ValueError, "character ids", "(B, T)", "torch.float32")),
    Case("charlm-ids-rank1", lambda: _lm()(_ids(T)), raises(ValueError, "(B, T)", f"({T},)")),
    Case("charlm-ids-meta", lambda: _lm()(_ids(device="meta")), raises(ValueError, "cpu", "meta")),
    Case("charlm-ids-range", lambda: _lm()(_ids() + V), raises(ValueError, f"[0, {V})", "got ids from")),
    Case("charlm-ids-negative", lambda: _lm()(-_ids() - 1), raises(ValueError, f"[0, {V})", "-")),
    Case("charlm-state-one-layer-state", lambda: _lm(layers=2)(_ids(), _lstm_state()),
         raises(TypeError, "tuple of 2 per-layer states", "one LSTMState")),
    Case("charlm-state-float64", lambda: _lm()(_ids(), (_lstm_state(torch.float64),)), raises(ValueError, "torch.float32", "torch.float64")),
    Case("charlm-state-meta", lambda: _lm()(_ids(), (_lstm_state(device="meta"),)), raises(ValueError, "cpu", "meta")),
    Case("charlm-state-gru-for-lstm", lambda: _lm()(_ids(), (C.GRUState(torch.zeros(B, H)),)), raises(ValueError, "LSTMState", "GRUState")),
    Case("charlm-int32-ids", lambda: _lm()(_ids(dtype=torch.int32))[0], _same(lambda: _lm()(_ids())[0])),
    Case("charlm-B0", lambda: _lm()(_ids(0, T))[0], _same(lambda: _lm()(_ids())[0][:0])),
    Case("charlm-vocabulary-size", lambda: CharLM(V, vocabulary=_vocab().__class__(list("ab"))), raises(ValueError, f"vocab_size={V}", "3 symbols")),
    Case("model-readout", lambda: _rm(readout="first"), raises(ValueError, "readout", "'first'", "'last'")),
    Case("model-dropout-nan", lambda: _rm(dropout=float("nan")), raises(ValueError, "dropout", "nan")),
    Case("model-dropout-bool", lambda: _rm(dropout=False), raises(TypeError, "dropout", "bool")),
    Case("model-output-zero", lambda: RecurrentModel("gru", I, H, 0), raises(ValueError, "output_size", "0")),
    Case("model-hidden-float", lambda: RecurrentModel("gru", I, 5.0, 2), raises(TypeError, "hidden_size", "5.0")),
    Case("model-input-float64", lambda: _rm()(_x(dtype=torch.float64)), raises(ValueError, "torch.float32", "torch.float64")),
    Case("model-input-meta", lambda: _rm()(_x(device="meta")), raises(ValueError, "cpu", "meta")),
    Case("model-input-int", lambda: _rm()(_x().long()), raises(ValueError, "floating-point", "torch.int64")),
    Case("model-lengths-float", lambda: _rm()(_x(), None, [2.5, 3]), raises(TypeError, "integer lengths", "2.5")),
    Case("model-lengths-meta", lambda: _rm()(_x(), None, torch.tensor([2, 3], device="meta")), raises(ValueError, "lengths on cpu", "meta")),
    Case("model-lengths-beyond", lambda: _rm()(_x(), None, [2, 4]), raises(ValueError, f"T={T}", "4")),
    Case("model-state-one", lambda: _rm(layers=2)(_x(), C.GRUState(torch.zeros(B, H))), raises(TypeError, "2 per-layer states", "GRUState")),
    Case("model-tokens-float", lambda: _rm(vocab_size=V)(_x()), raises(ValueError, "token ids", "(B, T)", "torch.float32")),
    Case("model-tokens-range", lambda: _rm(vocab_size=V)(_ids() + V), raises(ValueError, f"[0, {V})", "got ids from")),
    Case("model-lengths-tuple", lambda: _rm()(_x(), None, (2, 3))[0], _same(lambda: _rm()(_x(), None, torch.tensor([2, 3]))[0])),
    # sampling
    Case("next-temperature-nan", lambda: next_token(_logits(), temperature=float("nan")), raises(ValueError, "temperature", "finite", "nan")),
    Case("next-temperature-inf", lambda: next_token(_logits(), temperature=float("inf")), raises(ValueError, "temperature", "inf")),
    Case("next-temperature-negative", lambda: next_token(_logits(), temperature=-1), raises(ValueError, "temperature >= 0", "-1")),
    Case("next-temperature-string", lambda: next_token(_logits(), temperature="1"), raises(TypeError, "temperature", "'1'")),
    Case("next-temperature-bool", lambda: next_token(_logits(), temperature=True), raises(TypeError, "temperature", "bool")),
    Case("next-top-k-negative", lambda: next_token(_logits(), top_k=-1), raises(ValueError, "top_k >= 0", "-1")),
    Case("next-top-k-float", lambda: next_token(_logits(), top_k=2.0), raises(TypeError, "top_k", "integer", "2.0")),
    Case("next-logits-rank1", lambda: next_token(torch.zeros(4)), raises(ValueError, "(B, V)", "(4,)")),
    Case("next-logits-int", lambda: next_token(torch.zeros(2, 4, dtype=torch.int64)), raises(ValueError, "floating-point", "torch.int64")),
    Case("next-logits-list", lambda: next_token([[0.0, 1.0]]), raises(TypeError, "(B, V)", "list")),
    Case("next-banned-range", lambda: next_token(_logits(), banned=9), raises(ValueError, "banned", "[0, 4)", "9")),
    Case("next-greedy", lambda: next_token(_logits(), temperature=0, banned=None), _same(lambda: torch.tensor([2, 0]))),
    Case("next-top-one", lambda: next_token(_logits(), top_k=1, generator=torch.Generator().manual_seed(0)), _same(lambda: torch.tensor([2, 3]))),
    Case("generate-length-zero", lambda: generate(_lm(), _vocab(), "a", 0), raises(ValueError, "length", ">= 1", "0")),
    Case("generate-length-float", lambda: generate(_lm(), _vocab(), "a", 2.5), raises(TypeError, "length", "2.5")),
    Case("generate-num-zero", lambda: generate(_lm(), _vocab(), "a", 3, num=0), raises(ValueError, "num", "0")),
    Case("generate-prime-none", lambda: generate(_lm(), _vocab(), None, 3), raises(TypeError, "prime", "NoneType")),
    Case("generate-threads-zero", lambda: generate(_lm(), _vocab(), "a", 3, threads=0), raises(ValueError, "threads", "0")),
    Case("generate-seed-float", lambda: generate(_lm(), _vocab(), "a", 3, seed=0.5), raises(TypeError, "seed", "0.5")),
    Case("generate-temperature-inf", lambda: generate(_lm(), _vocab(), "a", 3, temperature=float("inf")), raises(ValueError, "temperature", "inf")),
    Case("generate-greedy-repeatable", lambda: generate(_lm(), _vocab(), "ab", 6, temperature=0, seed=None).texts,
         lambda texts: _greedy_by_hand(texts)),
]


def _greedy_by_hand(texts):
    """temperature 0 equals taking the argmax (never the unknown symbol) by hand, one step at a time."""
    model, vocab = _lm().eval(), _vocab()
    with torch.no_grad():
        z, state = model(vocab.encode("ab").unsqueeze(0), None)
        out = []
        for _ in range(6):
            logits = z[0, -1].clone()
            logits[0] = float("-inf")
            c = int(logits.argmax())
            out.append(c)
            z, state = model(torch.tensor([[c]]), state)
    assert texts == [vocab.decode(torch.tensor(out))]


@parametrize(CASES)
def test_api_edge(case):
    run_case(case)
