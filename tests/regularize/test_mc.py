"""MC dropout: dropout kept on at prediction time; seeded samples, predictive mean, spread, interval."""

import pytest
import torch
from torch import nn

import carousel as C
from carousel.regularize import RecurrentDropout, VariationalDropout, mc_dropout, mc_mode, weight_drop


class Regressor(nn.Module):
    """GRU with recurrent dropout, dropout on its final state, a linear head: (B, T, 1) -> (B,)."""

    def __init__(self, hidden=24, p=0.1):
        super().__init__()
        self.rnn = C.Recurrent(RecurrentDropout(C.GRUCell(1, hidden), p))
        self.drop = VariationalDropout(p)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x):
        _, state = self.rnn(x)
        return self.head(self.drop(state.h)).squeeze(-1)  # (B,)


def _task(n, generator, noise=0.3):
    x = torch.randn(n, 8, 1, generator=generator)
    signal = torch.tanh(x[:, :, 0].mean(1) * 2) + 0.5 * x[:, -1, 0]
    return x, signal + noise * torch.randn(n, generator=generator)


@pytest.fixture
def one_thread():
    """Tiny matrices gain nothing from threads, and on a loaded machine two threads can wait on each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_ninety_percent_interval_covers_about_ninety_percent_of_held_out_targets(one_thread):
    g = torch.Generator().manual_seed(0)
    (x_tr, y_tr), (x_cal, y_cal), (x_te, y_te) = _task(512, g), _task(256, g), _task(512, g)
    torch.manual_seed(0)
    model = Regressor()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(250):
        idx = torch.randint(0, 512, (64,), generator=g)
        loss = ((model(x_tr[idx]) - y_tr[idx]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    calibration = mc_dropout(model, x_cal, samples=64, seed=1)
    sigma = calibration.noise_std_for(y_cal)
    prediction = mc_dropout(model, x_te, samples=64, seed=2, noise_std=sigma)
    coverage = prediction.coverage(y_te)
    rmse = float(((prediction.mean - y_te) ** 2).mean().sqrt())
    print(f"\nMC dropout 90% interval: coverage {coverage:.3f} of 512 held-out targets, noise_std {sigma:.3f}, rmse {rmse:.3f}")
    assert rmse < 0.45, f"the model did not learn the task (rmse {rmse:.3f}; noise alone gives 0.3)"
    assert 0.70 <= coverage <= 0.99, f"coverage {coverage:.3f} of a 90% interval"
    assert not model.training and not model.rnn.cell.training, "mc_dropout left the model's modes changed"


def test_moments_match_the_closed_form():
    # y = sum_f x_f m_f with m_f = z_f / (1 - p): E[y] = sum x_f, Var[y] = p / (1 - p) sum x_f^2
    p = 0.3
    x = torch.randn(5, 1, 12, dtype=torch.float64)
    mean = x.sum((1, 2))
    std = (p / (1 - p) * (x**2).sum((1, 2))).sqrt()

    class Summed(nn.Module):
        def __init__(self):
            super().__init__()
            self.drop = VariationalDropout(p)

        def forward(self, x):
            return self.drop(x).sum((1, 2))  # (B,)

    for batched, n, tol in ((True, 20000, 0.05), (False, 2000, 0.15)):
        pred = mc_dropout(Summed(), x, samples=n, seed=3, batched=batched)
        assert pred.samples.shape == (n, 5)
        assert ((pred.mean - mean).abs() / std).max() < tol * 2
        assert ((pred.std / std) - 1).abs().max() < tol, f"batched={batched}"
        z = (pred.upper - pred.mean) / pred.std
        torch.testing.assert_close(z, torch.full_like(z, 1.6448536269514722))  # Phi^-1(0.95)


def test_seeded_reproducible_and_leaves_the_callers_random_state_alone():
    model = Regressor()
    x = torch.randn(4, 5, 1)
    torch.manual_seed(123)
    a = mc_dropout(model, x, samples=8, seed=7)
    after_call = torch.rand(3)
    torch.manual_seed(123)
    assert torch.equal(torch.rand(3), after_call)
    b = mc_dropout(model, x, samples=8, seed=7)
    c = mc_dropout(model, x, samples=8, seed=8)
    assert torch.equal(a.samples, b.samples)
    assert not torch.equal(a.samples, c.samples)
    assert bool((a.samples.std(0) > 0).all()), "the samples do not vary: dropout was off"


def test_mc_mode_turns_on_only_the_dropout():
    cell = RecurrentDropout(C.LSTMCell(3, 4, layer_norm=True), 0.2)
    model = nn.ModuleDict({"rnn": C.Recurrent(cell), "bn": nn.BatchNorm1d(4), "drop": nn.Dropout(0.1)})
    model.train()
    model["bn"].eval()  # a mixed starting point must come back as it was
    before = {n: m.training for n, m in model.named_modules()}
    with mc_mode(model):
        assert model["drop"].training and cell.training
        assert not model["bn"].training and not cell.cell.training and not cell.cell.ln_c.training
        assert not model["rnn"].training
    assert {n: m.training for n, m in model.named_modules()} == before


def test_shared_masks_run_the_samples_one_after_another():
    model = Regressor(p=0.0)
    weight_drop(model.rnn, 0.5)
    x = torch.randn(3, 4, 1)
    with pytest.raises(ValueError, match="WeightDrop draws one mask for the whole batch"):
        mc_dropout(model, x, samples=4, batched=True)
    pred = mc_dropout(model, x, samples=6, seed=0)
    assert bool((pred.samples.std(0) > 0).all())


def test_layers_returning_output_and_state_give_their_output():
    layer = C.Recurrent(RecurrentDropout(C.GRUCell(2, 3), 0.3))
    x = torch.randn(4, 5, 2)
    pred = mc_dropout(layer, x, samples=5)
    assert pred.samples.shape == (5, 4, 5, 3)
    last = mc_dropout(layer, x, samples=5, output=lambda r: r[1].h)
    assert last.mean.shape == (4, 3)


def test_bad_arguments():
    model = Regressor()
    x = torch.randn(2, 3, 1)
    with pytest.raises(ValueError, match="expected samples to be an integer >= 2, got 1"):
        mc_dropout(model, x, samples=1)
    with pytest.raises(ValueError, match=r"expected level in \(0, 1\), got 1.0"):
        mc_dropout(model, x, level=1.0)
    with pytest.raises(ValueError, match="expected noise_std >= 0, got -1"):
        mc_dropout(model, x, noise_std=-1)
    with pytest.raises(ValueError, match="at least one tensor input"):
        mc_dropout(model, "x")
    with pytest.raises(ValueError, match=r"batch size at dim 0, got shapes \(2, 3, 1\), \(3,\)"):
        mc_dropout(lambda_model(), x, torch.ones(3))
    with pytest.raises(TypeError, match="expected a torch.nn.Module, got function"):
        mc_dropout(lambda x: x, x)


def lambda_model():
    class TwoInputs(nn.Module):
        def forward(self, x, w):
            return x.sum((1, 2)) * w[: x.shape[0]]

    return TwoInputs()


def test_batching_needs_the_batch_at_dim_0():
    lstm = C.LSTM(2, 3, dropout=0.2, num_layers=2)  # time-major, like torch.nn.LSTM
    x = torch.randn(5, 4, 2)  # (T, B, I)
    with pytest.raises(ValueError, match="built with batch_first=False; build it batch-first or pass batched=False"):
        mc_dropout(lstm, x, samples=3)
    pred = mc_dropout(lstm, x, samples=3, batched=False)
    assert pred.samples.shape == (3, 5, 4, 3)

    class SumOverBatch(nn.Module):
        def __init__(self):
            super().__init__()
            self.drop = nn.Dropout(0.5)

        def forward(self, x):
            return self.drop(x).sum(0)  # (F,): no batch left

    with pytest.raises(ValueError, match=r"expected 12 rows, got shape \(2,\); pass batched=False"):
        mc_dropout(SumOverBatch(), torch.randn(4, 2), samples=3)


def test_drop_in_between_layer_dropout_stays_on_under_mc_mode():
    torch.manual_seed(8)
    lstm = C.LSTM(2, 3, num_layers=2, dropout=0.5, batch_first=True).eval()
    x = torch.randn(4, 5, 2)
    pred = mc_dropout(lstm, x, samples=4)
    assert bool((pred.samples.std(0) > 0).any()), "the dropout between layers was off under mc_mode"
    assert torch.equal(lstm(x)[0], lstm(x)[0]) and not lstm.training
