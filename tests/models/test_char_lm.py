"""CharLM against torch.nn references, state carrying, tied weights, regularisers, bad input."""

import pytest
import torch
from torch import nn

import carousel
from carousel.models import CharLM

V = 11


def _ids(B, T, seed=0):
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))


def _reference(model: CharLM, kind: str):
    """torch.nn's embedding, recurrent stack and linear head holding the model's weights."""
    sizes = [layer.cell.hidden_size for layer in model.rnn.layers]
    rnn_cls = {"lstm": nn.LSTM, "gru": nn.GRU}[kind]
    ref = rnn_cls(model.embed_size, sizes[0], num_layers=len(sizes), batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        for l, layer in enumerate(model.rnn.layers):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(ref, f"{name}_l{l}").copy_(getattr(layer.cell, name))
    emb = model.embedding.weight

    def run(x, h=None):
        y, h = ref(emb[x], h)
        return model.head(y), h

    return run


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_matches_torch_nn(kind):
    torch.manual_seed(0)
    model = CharLM(V, cell=kind, embed_size=6, hidden_size=9, layers=2).double()
    ref = _reference(model, kind)
    x = _ids(3, 13)
    z, state = model(x)
    z_ref, h_ref = ref(x)
    torch.testing.assert_close(z, z_ref)
    h_ref = h_ref[0] if kind == "lstm" else h_ref
    for l in range(2):
        torch.testing.assert_close(state[l].h, h_ref[l])
    # gradients of every parameter agree too
    z.square().sum().backward()
    g = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    ref(x)[0].square().sum().backward()
    for n, p in model.named_parameters():
        if n.startswith(("embedding", "head")):
            torch.testing.assert_close(p.grad, g[n])


def test_two_chunks_with_carried_state_equal_one_pass():
    torch.manual_seed(1)
    model = CharLM(V, embed_size=5, hidden_size=[8, 7], layers=2).double()
    x = _ids(4, 20, seed=3)
    z, s = model(x)
    z1, s1 = model(x[:, :8])
    z2, s2 = model(x[:, 8:], s1)
    torch.testing.assert_close(torch.cat([z1, z2], dim=1), z)
    for a, b in zip(s2, s):
        for fa, fb in zip(a, b):
            torch.testing.assert_close(fa, fb)
    assert len(model.initial_state(4)) == 2 and model.initial_state(4)[1].c.shape == (4, 7)


def test_tied_weights_share_the_embedding():
    torch.manual_seed(2)
    model = CharLM(V, embed_size=6, hidden_size=[10, 6], layers=2, tied=True)
    assert model.head.weight is model.embedding.weight
    assert sum(p.numel() for p in model.parameters()) == sum(
        p.numel() for n, p in model.named_parameters() if n != "head.weight"
    )
    z, _ = model(_ids(2, 5))
    z.sum().backward()
    assert model.embedding.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="tied weights need the last layer's output size to equal embed_size=6, got 10"):
        CharLM(V, embed_size=6, hidden_size=10, tied=True)


def test_regularisers_are_off_in_eval_and_active_in_training():
    torch.manual_seed(3)
    rates = dict(embed_dropout=0.2, input_dropout=0.2, between_dropout=0.3, output_dropout=0.3,
                 weight_drop=0.4, recurrent_dropout=0.25, zoneout_h=0.1, zoneout_c=0.2)
    plain = CharLM(V, embed_size=5, hidden_size=8, layers=2)
    reg = CharLM(V, embed_size=5, hidden_size=8, layers=2, **rates)
    missing, unexpected = reg.load_state_dict(plain.state_dict(), strict=True)
    assert not missing and not unexpected
    x = _ids(3, 12, seed=4)
    plain.eval(), reg.eval()
    z_plain, _ = plain(x)
    z_eval, _ = reg(x)
    # zoneout in evaluation mode mixes in the previous state by its expectation, so it differs;
    # everything else is the identity: check against a model with zoneout only
    zo = CharLM(V, embed_size=5, hidden_size=8, layers=2, zoneout_h=0.1, zoneout_c=0.2)
    zo.load_state_dict(plain.state_dict())
    zo.eval()
    torch.testing.assert_close(z_eval, zo(x)[0])
    assert not torch.allclose(z_eval, z_plain)
    reg.train()
    torch.manual_seed(5)
    a, _ = reg(x)
    torch.manual_seed(5)
    b, _ = reg(x)
    torch.manual_seed(6)
    c, _ = reg(x)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c) and not torch.allclose(a, z_eval)


def test_any_cell_by_name_or_factory():
    torch.manual_seed(4)
    x = _ids(2, 7)
    for cell in ("elman", "mingru", "antisymmetric", lambda i, h: carousel.OrthogonalCell(i, h)):
        model = CharLM(V, cell=cell, embed_size=4, hidden_size=6)
        z, _ = model(x)
        assert torch.isfinite(z).all() and z.shape == (2, 7, V)
    # the named cell is the one built: a GRU layer holds a GRU cell
    assert isinstance(CharLM(V, cell="gru", hidden_size=6).rnn.layers[0].cell, carousel.GRUCell)


def test_bad_input():
    model = CharLM(V, embed_size=4, hidden_size=6)
    with pytest.raises(ValueError, match=r"expected character ids of shape \(B, T\) and an integer dtype, got shape \(2, 3\), dtype torch.float32"):
        model(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="expected character ids"):
        model(torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="unknown cell 'lstn'.*lstm"):
        CharLM(V, cell="lstn")
    with pytest.raises(ValueError, match="expected 2 hidden sizes, one per layer, got 1"):
        CharLM(V, hidden_size=[8], layers=2)
    with pytest.raises(ValueError, match="input_dropout"):
        CharLM(V, input_dropout=1.5)
    with pytest.raises(TypeError, match="expected cell as a name"):
        CharLM(V, cell=3)
