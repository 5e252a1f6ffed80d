"""The demo's chooser: on fake throughput measurements a fast machine gets a wider model and a slow
one a narrower; the rule's predictions fall with characters seen; the real measurement times real steps."""

from __future__ import annotations

import math

import pytest

from carousel.studies import sizing
from carousel.studies.sizing import Candidate, candidates, choose, fit_to_machine, measure_rate, predicted_bpc

WIDTHS = sorted(sizing.CURVES)


def machine(speed: float) -> dict[Candidate, float]:
    """Characters per second of every width on a machine ``speed`` times this project's CPU in fp32
    (a step costs about H^2: 45,000/s at 256 units here)."""
    return {Candidate(h, "fp32"): speed * 45_000 * (256 / h) ** 2 for h in WIDTHS}


def test_a_faster_machine_or_a_longer_budget_gets_a_wider_model():
    slow, here, fast = (choose(300.0, machine(s)).candidate.hidden for s in (0.1, 1.0, 30.0))
    assert slow < here < fast, (slow, here, fast)
    assert (slow, fast) == (min(WIDTHS), max(WIDTHS))
    assert choose(20.0, machine(1.0)).candidate.hidden == min(WIDTHS)  # a short budget: the narrowest
    assert choose(300.0, machine(1.0)).candidate.hidden <= choose(1800.0, machine(1.0)).candidate.hidden


def test_the_choice_is_the_lowest_prediction_and_says_so():
    choice = choose(300.0, machine(1.0))
    predictions = [p for _, _, p in choice.others]
    assert choice.predicted == min(predictions) and len(choice.others) == len(WIDTHS)
    line = choice.line(5)
    assert line.startswith(f"LSTM {choice.candidate.hidden}, fp32: ") and "chars/s measured" in line
    assert f"predicted {choice.predicted:.2f} training bpc" in line and "in 5 min" in line
    with pytest.raises(ValueError, match="at least one candidate"):
        choose(300.0, {})


@pytest.mark.parametrize("hidden", WIDTHS)
def test_predictions_fall_with_characters(hidden):
    values = [predicted_bpc(hidden, c) for c in (1e6, 5e6, 2e7, 1e8)]
    assert all(a > b for a, b in zip(values, values[1:])) and 1.0 < values[-1] < values[0] < 3.0
    assert math.isnan(predicted_bpc(hidden + 1, 1e6))  # no curve: nothing to predict


def test_a_width_given_by_hand_is_measured_not_chosen(monkeypatch):
    pool = candidates(300, "fp32", fast_bf16=True)
    assert pool == [Candidate(300, "fp32")]
    choice = fit_to_machine(60.0, pool, 50, measure=lambda c, v: 1000.0)
    assert choice.candidate == Candidate(300, "fp32") and math.isnan(choice.predicted)
    assert "predicted" not in choice.line(1) and "1,000 chars/s" in choice.line(1)
    assert {c.precision for c in candidates(None, "auto", fast_bf16=True)} == {"bf16"}
    assert {c.precision for c in candidates(None, "auto", fast_bf16=False)} == {"fp32"}
    assert [c.hidden for c in candidates(None, "fp32", fast_bf16=False)] == WIDTHS


def test_measure_rate_times_real_training_steps():
    rate = measure_rate(Candidate(16, "fp32"), 20, steps=1)
    # a rate, not a threshold: how fast depends on the machine and its load (a busy 2-core machine
    # measured 830 characters per second here, an idle one 10 times more)
    assert math.isfinite(rate) and rate > 0


def test_a_burst_of_load_during_one_measurement_does_not_decide_the_choice():
    rates = {128: 60_000.0, 256: 34_000.0, 384: 25_000.0, 512: 16_500.0, 768: 9_600.0}
    calls = []

    def measure(candidate, vocab_size):  # the first round of 512 and 768 ran beside other work: 3 times slower
        calls.append(candidate.hidden)
        slowed = candidate.hidden >= 512 and calls.count(candidate.hidden) == 1
        return rates[candidate.hidden] / (3 if slowed else 1)

    pool = candidates(None, "bf16", fast_bf16=True)
    quiet = choose(1800.0, {c: rates[c.hidden] for c in pool})
    assert quiet.candidate.hidden >= 512  # what an undisturbed machine chooses for 30 minutes
    assert fit_to_machine(1800.0, pool, 50, measure=measure).candidate == quiet.candidate
    assert calls == WIDTHS * 2  # interleaved rounds, every width in each
    calls.clear()
    assert fit_to_machine(1800.0, pool, 50, measure=measure, rounds=1).candidate != quiet.candidate
