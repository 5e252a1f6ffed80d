"""``carousel train regimes``: the metrics against a direct computation, the ARI on a hand example,
batches that are a pure function of (seed, step) and split over ranks, a short run that beats the
last-value baseline, the plot, bad options and the command line."""

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from carousel.cli import app
from carousel.data.regimes import REGIME_MAPS, regime_switching
from carousel.train import build_config, get_task, train_run
from carousel.train.task import Shard
from carousel.train.tasks.regimes import VALID_SEED, adjusted_rand_index, plot_experts
from train_toys import last_eval

TINY = {"length": 30, "hidden": 6, "eval_size": 40}


def task(**options):
    cls = get_task("regimes")
    return cls(cls.Options(**{**TINY, **options}))


def test_the_ari_on_hand_examples():
    # true [0,0,1,1] against found [0,0,1,2]: pair index 1, expected 1/3, maximum 3/2, so (1 - 1/3) / (3/2 - 1/3) = 4/7
    assert adjusted_rand_index(torch.tensor([0, 0, 1, 2]), torch.tensor([0, 0, 1, 1])) == pytest.approx(4 / 7)
    assert adjusted_rand_index(torch.tensor([[2, 2], [0, 0]]), torch.tensor([[0, 0], [1, 1]])) == pytest.approx(1.0)  # renamed
    assert adjusted_rand_index(torch.tensor([0, 1, 0, 1]), torch.tensor([0, 0, 1, 1])) == pytest.approx(-0.5)
    with pytest.raises(ValueError, match="expected two labelings of the same items, got 3 and 4 labels"):
        adjusted_rand_index(torch.tensor([0, 1, 0]), torch.tensor([0, 0, 1, 1]))


def test_evaluate_against_a_direct_computation():
    t = task(regimes=4, stay=0.7, noise=0.2)
    torch.manual_seed(0)
    model = t.build_model().eval()
    with torch.no_grad():
        metrics = t.evaluate(model, "valid")
        d = regime_switching(40, 30, num_regimes=4, stay=0.7, noise=0.2, seed=VALID_SEED)
        x, y = d.values[:, :-1, None], d.values[:, 1:, None]
        prediction = model(x)
        gates = model.moe.last_gates  # (40, 29, 4)
    assert metrics["loss"] == pytest.approx(F.mse_loss(prediction, y).item(), rel=1e-5)
    assert metrics["baseline"] == pytest.approx(((d.values[:, 1:] - d.values[:, :-1]) ** 2).mean().item(), rel=1e-5)
    # the oracle by the rule: p_stay on the current regime's map, the rest spread over the other three
    maps = [[a * v + b for a, b in REGIME_MAPS] for v in d.values[:, :-1].reshape(-1).tolist()]
    expected = [0.7 * m[r] + 0.1 * (sum(m) - m[r]) for m, r in zip(maps, d.regimes[:, :-1].reshape(-1).tolist())]
    oracle = ((torch.tensor(expected) - d.values[:, 1:].reshape(-1)) ** 2).mean().item()
    assert metrics["oracle"] == pytest.approx(oracle, rel=1e-5) and 0.04 < metrics["oracle"] < metrics["baseline"]
    assert metrics["ari"] == pytest.approx(adjusted_rand_index(gates.argmax(-1), d.regimes[:, 1:]))
    with torch.no_grad():
        assert t.evaluate(model, "test")["baseline"] != metrics["baseline"]  # other sequences


def test_the_ari_scores_the_regime_of_the_target():
    """An oracle that names the regime producing each target and repeats the last value scores ARI 1
    and the baseline's MSE; naming the regime of the input instead scores less (the chain switches)."""
    t = task(stay=0.7)
    d = regime_switching(40, 30, num_regimes=3, stay=0.7, noise=0.1, seed=VALID_SEED)
    model = t.build_model()
    t.predict = lambda model, x: (x, d.regimes[:, 1:])
    metrics = t.evaluate(model, "valid")
    assert metrics["ari"] == pytest.approx(1.0) and metrics["loss"] == pytest.approx(metrics["baseline"])
    t.predict = lambda model, x: (x, d.regimes[:, :-1])
    assert t.evaluate(model, "valid")["ari"] < 0.8


def test_the_step_reports_the_balance_loss_and_adds_it():
    t = task(balance=0.5)
    torch.manual_seed(0)
    model = t.build_model()
    out = t.step(model, next(t.train_batches(8, Shard(), seed=1)), None)
    assert out.metrics["aux"] > 0
    assert out.loss.item() == pytest.approx(out.metrics["mse"] + 0.5 * out.metrics["aux"], rel=1e-5)
    gates = model.moe.last_gates.reshape(-1, 3).sum(0)
    assert out.metrics["aux"] == pytest.approx((gates.var(unbiased=False) / gates.mean() ** 2).item(), rel=1e-4)


def test_batches_are_seeded_split_over_ranks_and_resume():
    t = task()
    whole = t.train_batches(8, Shard(), seed=3)
    first, second = next(whole), next(whole)
    assert first[0].shape == (8, 29, 1) and not torch.equal(first[0], second[0])
    assert torch.equal(first[0][:, 1:], first[1][:, :-1])  # the target is the next value
    halves = [next(t.train_batches(8, Shard(r, 2), seed=3)) for r in (0, 1)]
    assert torch.equal(torch.cat([x for x, _ in halves]), first[0])
    again = t.train_batches(8, Shard(), seed=3)
    again.load_state_dict(whole.state_dict())
    assert torch.equal(next(again)[1], next(whole)[1])


def test_a_short_run_beats_the_last_value_baseline(tmp_path):
    """Measured: 150 steps reach a validation MSE of 0.207 where repeating the last value has 0.384 (the
    oracle that knows the current regime has 0.142), and the experts already follow the regimes (ARI 0.38)."""
    config = build_config("regimes", {"length": 40, "hidden": 16, "eval_size": 200, "steps": 150, "lr": 0.01,
                                      "batch_size": 32, "eval_every": 150, "checkpoint_every": 150, "progress": False})
    train_run(config, tmp_path / "run")
    final = last_eval(tmp_path / "run")
    assert final["loss"] < 0.7 * final["baseline"] and final["oracle"] < final["loss"], final
    assert final["ari"] > 0.15, final


def test_the_plot_is_a_png_of_one_evaluated_sequence(tmp_path, monkeypatch):
    path = plot_experts(torch.tensor([0, 0, 2, 2, 1]), [1, 1, 0, 0, 2], tmp_path / "experts.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    t = task()
    seen = {}
    monkeypatch.setattr("carousel.train.tasks.regimes.plot_experts", lambda w, r, p: seen.update(w=w, r=r) or p)
    model = t.build_model()
    t.plot(model, tmp_path / "one.png", index=3)
    x, _, regimes = t.data(40, VALID_SEED)
    with torch.no_grad():
        model(x)
    assert torch.equal(seen["r"], regimes[3]) and torch.equal(seen["w"], model.moe.last_gates[3].argmax(-1))
    with pytest.raises(ValueError, match=r"expected index in \[0, 40\) \(the valid sequences\), got 40"):
        t.plot(model, tmp_path / "bad.png", index=40)
    with pytest.raises(ValueError, match="expected winners and regimes of the same non-zero length, got 2 and 3"):
        plot_experts([0, 1], [0, 1, 1], tmp_path / "bad.png")


@pytest.mark.parametrize("options, message", [
    ({"regimes": 5}, r"expected regimes in \[2, 4\], got 5"),
    ({"length": 2}, "expected length >= 3, got 2"),
    ({"stay": 1.2}, r"expected stay in \[0, 1\], got 1.2"),
    ({"balance": -1.0}, "expected balance >= 0, got -1.0"),
    ({"hidden": 0}, "expected hidden >= 1, got 0"),
])
def test_bad_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        task(**options)


def test_the_command_line(tmp_path):
    run = tmp_path / "run"
    args = ["train", "regimes", "--length", "10", "--hidden", "4", "--eval-size", "8", "--steps", "2",
            "--batch-size", "4", "--no-progress", "--run-dir", str(run)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "2 steps" in result.output and (run / "checkpoints" / "best.safetensors").exists()
    bad = CliRunner().invoke(app, ["train", "regimes", "--regimes", "1", "--run-dir", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "expected regimes in [2, 4], got 1" in bad.output and "Traceback" not in bad.output
