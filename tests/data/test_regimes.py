"""``carousel.data.regimes``: every value recomputed from its regime label, a sticky chain, seeding, bad options."""

import pytest
import torch

from carousel.data.regimes import REGIME_MAPS, regime_maps, regime_switching


def test_every_value_follows_its_regime_exactly():
    d = regime_switching(20, 60, num_regimes=4, stay=0.8, noise=0.3, seed=5)
    assert d.values.shape == d.regimes.shape == d.noise.shape == (20, 60)
    assert torch.equal(d.values[:, 0], d.noise[:, 0])
    for n in range(20):
        for t in range(1, 60):
            a, b = REGIME_MAPS[int(d.regimes[n, t])]
            expected = torch.tensor(a) * d.values[n, t - 1] + torch.tensor(b) + d.noise[n, t]
            assert torch.allclose(d.values[n, t], expected, atol=1e-6), (n, t)
    assert set(d.regimes.unique().tolist()) == {0, 1, 2, 3}
    assert d.noise[:, 1:].std().item() == pytest.approx(0.3, rel=0.1)


def test_the_chain_is_sticky_and_moves_to_another_regime():
    d = regime_switching(200, 100, num_regimes=3, stay=0.9, noise=0.0, seed=1)
    kept = (d.regimes[:, 1:] == d.regimes[:, :-1]).double().mean().item()
    assert kept == pytest.approx(0.9, abs=0.01)
    assert torch.equal(regime_switching(5, 30, stay=1.0, seed=2).regimes.diff(dim=1), torch.zeros(5, 29, dtype=torch.int64))
    assert (regime_switching(5, 30, stay=0.0, seed=2).regimes.diff(dim=1) != 0).all()  # a switch always changes the regime


def test_seeded():
    a, b = regime_switching(4, 30, seed=7), regime_switching(4, 30, seed=7)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a.values, regime_switching(4, 30, seed=8).values)


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match=r"expected num_regimes in \[2, 4\] \(the regimes defined\), got 5"):
        regime_switching(2, 10, num_regimes=5)
    with pytest.raises(ValueError, match="expected num_regimes to be an integer >= 2, got 1"):
        regime_maps(1)
    with pytest.raises(ValueError, match=r"expected stay in \[0, 1\], got 1.5"):
        regime_switching(2, 10, stay=1.5)
    with pytest.raises(ValueError, match="expected noise >= 0"):
        regime_switching(2, 10, noise=-0.1)
    with pytest.raises(ValueError, match="expected length to be an integer >= 2, got 1"):
        regime_switching(2, 1)
    with pytest.raises(TypeError, match="expected num_sequences to be an integer"):
        regime_switching(2.0, 10)
