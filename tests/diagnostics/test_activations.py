"""Activation page: recorded units against the LSTM equations, features, correlations, ranking,
a self-contained page, and the page's script run in headless Chromium."""

import re
import shutil
import subprocess

import numpy as np
import pytest
import torch

from carousel.data import Vocabulary
from carousel.diagnostics.activations import (
    Activations,
    activation_page,
    correlations,
    display_values,
    rank_units,
    record_activations,
    text_features,
)
from carousel.models import CharLM

TEXT = 'x = f(a, [b]) + "q(r)"\n  <unk> y\n'


def _model(seed=0):
    vocab = Vocabulary.from_text(TEXT)
    torch.manual_seed(seed)
    return CharLM(len(vocab), embed_size=5, hidden_size=6, layers=2).double(), vocab


def test_recorded_units_follow_the_lstm_equations():
    model, vocab = _model()
    acts = record_activations(model, vocab, TEXT)
    H, N = 6, len(TEXT)
    assert acts.values.shape == (N, 2 * 5 * H)  # two layers of h, c, i, f, o
    # the reference: torch's own LSTM equations, written out, on layer 0
    cell = model.rnn.layers[0].cell
    x = model.embedding.weight[vocab.encode(TEXT)]  # (N, E)
    h, c = torch.zeros(H, dtype=torch.float64), torch.zeros(H, dtype=torch.float64)
    for t in range(N):
        pre = cell.weight_ih @ x[t] + cell.bias_ih + cell.weight_hh @ h + cell.bias_hh
        i, f, g, o = pre.split(H)
        i, f, g, o = i.sigmoid(), f.sigmoid(), g.tanh(), o.sigmoid()
        c = f * c + i * g
        h = o * c.tanh()
        for name, value in (("h", h), ("c", c), ("i", i), ("f", f), ("o", o)):
            got = torch.stack([acts.unit(f"0.{name}:{k}")[t] for k in range(H)])
            torch.testing.assert_close(got, value.float(), rtol=1e-5, atol=1e-6)
    # the top layer's h is the model's output
    model.eval()
    with torch.no_grad():
        _, state = model(vocab.encode(TEXT).unsqueeze(0))
    torch.testing.assert_close(acts.values[-1, [acts.names.index(f"1.h:{k}") for k in range(H)]], state[1].h[0].float())
    with pytest.raises(ValueError, match="unknown unit '9.h:0'"):
        acts.unit("9.h:0")


def test_text_features_by_hand():
    f = text_features('a(b"c"d)e\n"f<g>')
    assert f["inside ( )"].tolist() == [0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0]
    assert f['inside "quotes"'].tolist() == [0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1]
    assert f["inside < >"].tolist() == [0] * 12 + [1, 1, 0]
    assert f["position in line"].tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5]
    assert "inside [ ]" not in f  # constant features are left out


def test_correlations_match_numpy_and_ranking_finds_a_planted_unit():
    g = torch.Generator().manual_seed(0)
    values = torch.randn(200, 30, generator=g)
    feature = (torch.arange(200) % 17).float()
    values[:, 12] = 0.5 * feature + 0.3 * torch.randn(200, generator=g)  # one unit that tracks the feature
    values[:, 20] = 1.0  # a constant unit
    r = correlations(values, feature)
    want = [np.corrcoef(values[:, u].numpy(), feature.numpy())[0, 1] for u in range(30) if u != 20]
    np.testing.assert_allclose(np.delete(r.numpy(), 20), want, rtol=1e-6, atol=1e-9)
    assert r[20] == 0
    acts = Activations("z" * 200, [f"0.h:{u}" for u in range(30)], values)
    ranked = rank_units(acts, {"count": feature}, per_feature=3)
    assert ranked[0].unit == "0.h:12" and ranked[0].r > 0.8


def test_display_values():
    values = torch.tensor([[0.2, -0.5, 0.9], [0.6, 0.25, 0.1]])
    acts = Activations("ab", ["0.h:0", "0.c:0", "1.f:3"], values)
    torch.testing.assert_close(display_values(acts, "0.h:0"), torch.tensor([1 / 3, 1.0], dtype=torch.float64))
    torch.testing.assert_close(display_values(acts, "0.c:0"), torch.tensor([-1.0, 0.5], dtype=torch.float64))
    torch.testing.assert_close(display_values(acts, "1.f:3"), torch.tensor([0.8, -0.8], dtype=torch.float64))


def _page(tmp_path):
    model, vocab = _model(1)
    acts = record_activations(model, vocab, TEXT * 3)
    path = activation_page(acts, tmp_path / "page.html", unit="0.c:2", title="test page")
    return acts, open(path, encoding="utf-8").read(), path


def test_page_is_self_contained_and_coloured_by_the_chosen_unit(tmp_path):
    acts, page, _ = _page(tmp_path)
    assert not re.search(r"(src|href)\s*=|https?://|@import", page)
    spans = re.findall(r'<span style="background:rgba\((\d+),(\d+),(\d+),([\d.]+)\)" title="([-\d.]+)">', page)
    assert len(spans) == len(acts.text)
    v = acts.unit("0.c:2")
    scaled = v / v.abs().max()  # a state unit: scaled by its largest value
    for (r, g, b, a, title), want in zip(spans, scaled.tolist()):
        assert float(a) == pytest.approx(abs(want), abs=1e-3)
        assert (r, g, b) == (("33", "102", "172") if round(want, 3) >= 0 else ("178", "24", "43"))


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip("headless Chromium is not installed (Debian: apt-get install chromium; `make test` does it as root)")


def test_page_script_recolours_in_headless_chromium(tmp_path):
    browser = _chromium()
    acts, _, path = _page(tmp_path)
    ranked = rank_units(acts)
    unit = ranked[1].unit  # not the unit the page opens with
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom"]
    done = subprocess.run([browser, *flags, f"file://{path}#unit={unit}"], capture_output=True, text=True, timeout=120)
    dom = done.stdout
    assert done.returncode == 0 and "<span" in dom, done.stderr[-2000:]
    assert re.search(r'id="unit">([^<]*)<', dom).group(1) == unit
    assert re.search(r'<tr data-unit="([^"]*)" class="chosen"', dom).group(1) == unit
    styles = re.findall(r'<span style="background: rgba?\((\d+), (\d+), (\d+)(?:, ([\d.]+))?\);"', dom)  # opaque: rgb()
    assert len(styles) == len(acts.text)
    scaled = display_values(acts, unit).tolist()
    for (r, g, b, a), want in zip(styles, scaled):
        alpha = 1.0 if a == "" else float(a)
        assert alpha == pytest.approx(round(abs(want), 3), abs=0.005)  # the browser keeps 8 bits of alpha
        assert (r, g, b) == (("33", "102", "172") if round(want, 3) >= 0 else ("178", "24", "43"))
