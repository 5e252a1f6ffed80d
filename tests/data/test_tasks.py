"""Synthetic tasks: their definitions checked element by element against a plain loop, their chance
baselines against closed forms computed here, and their boundary errors."""

import math

import pytest
import torch
import torch.nn.functional as F

from carousel.data.tasks import (
    ADDING_BASELINE_MSE,
    SYNTHETIC_TASKS,
    adding_problem,
    copying_baseline,
    copying_memory,
    counting_ones,
    parity,
    score,
    synthetic_task,
    zeros_even,
)


def test_adding_problem_definition():
    x, y = adding_problem(64, 31, seed=3)
    assert x.shape == (64, 31, 2) and y.shape == (64, 1)
    for n in range(64):
        marks = [t for t in range(31) if x[n, t, 1] == 1.0]
        assert len(marks) == 2 and marks[0] < 15 <= marks[1], marks  # one mark in each half
        assert torch.all((x[n, :, 1] == 0) | (x[n, :, 1] == 1))
        assert y[n, 0].item() == pytest.approx(x[n, marks[0], 0].item() + x[n, marks[1], 0].item(), abs=1e-6)
    assert 0 <= x[..., 0].min() and x[..., 0].max() < 1


def test_adding_baseline_is_the_variance_of_a_sum_of_two_uniforms():
    x, y = adding_problem(200_000, 10, seed=0)
    task = SYNTHETIC_TASKS["adding"]
    assert ADDING_BASELINE_MSE == pytest.approx(2 * (1 / 12))  # Var U(0,1) = 1/12, two of them
    assert task.chance(y, 10) == pytest.approx(1 / 6, abs=3e-3)
    # predicting 1 (the mean) is the best constant: any other constant is worse by (c - 1)^2
    assert F.mse_loss(torch.full_like(y, 1.1), y).item() == pytest.approx(1 / 6 + 0.01, abs=3e-3)


def test_copying_memory_definition():
    T = 7
    x, y = copying_memory(32, T, seed=5)
    assert x.shape == (32, T + 20, 10) and y.shape == (32, T + 20)
    tokens = x.argmax(-1)
    assert torch.equal(F.one_hot(tokens, 10).float(), x)  # exactly one-hot
    for n in range(32):
        symbols = tokens[n, :10]
        assert torch.all((symbols >= 1) & (symbols <= 8))
        rest = tokens[n, 10:].tolist()
        assert rest == [0] * (T - 1) + [9] + [0] * 10  # blanks, the delimiter, blanks
        assert y[n, : T + 10].tolist() == [0] * (T + 10)
        assert torch.equal(y[n, T + 10 :], symbols)


def test_copying_baseline_closed_form_and_computed():
    for T in (1, 100, 1000):
        assert copying_baseline(T) == pytest.approx(10 * math.log(8) / (T + 20))
    task = SYNTHETIC_TASKS["copying"]
    x, y = copying_memory(500, 100, seed=1)
    assert task.chance(y, 100) == pytest.approx(copying_baseline(100), rel=1e-6)
    # a confident blank everywhere costs the logit gap, 20 nats, at each of the last 10 of 120 steps
    always_blank = torch.full((500, 120, 9), -10.0)
    always_blank[..., 0] = 10.0
    assert score(task, always_blank, y) == pytest.approx(20 * 10 / 120, rel=1e-4)


def test_symbol_frequencies_are_uniform():
    _, y = copying_memory(4000, 5, seed=2)
    counts = torch.bincount(y[:, -10:].reshape(-1), minlength=9)[1:].double()
    assert counts.sum() == 40_000
    assert (counts / counts.sum() - 1 / 8).abs().max() < 0.01


@pytest.mark.parametrize("T", [1, 2, 9])
def test_bit_tasks_against_a_plain_loop(T):
    for gen in (parity, counting_ones, zeros_even):
        x, y = gen(50, T, seed=T)
        assert x.shape == (50, T, 1)
        assert torch.all((x == 0) | (x == 1))
    x, _ = parity(50, T, seed=T)
    for n in range(50):
        bits = [int(b) for b in x[n, :, 0].tolist()]
        assert parity(50, T, seed=T)[1][n].item() == sum(bits) % 2
        assert counting_ones(50, T, seed=T)[1][n, 0].item() == sum(bits)
        assert zeros_even(50, T, seed=T)[1][n].item() == int(bits.count(0) % 2 == 0)


def test_bit_task_baselines():
    T = 40
    _, y = counting_ones(100_000, T, seed=0)
    assert SYNTHETIC_TASKS["counting"].baseline(T) == T / 4
    assert SYNTHETIC_TASKS["counting"].chance(y, T) == pytest.approx(T / 4, rel=0.02)  # Binomial(T, 1/2) variance
    for name, gen in (("parity", parity), ("zeros_even", zeros_even)):
        _, y = gen(100_000, T, seed=1)
        assert y.float().mean().item() == pytest.approx(0.5, abs=0.01)  # balanced: a coin is the best guess
        assert SYNTHETIC_TASKS[name].chance(y, T) == pytest.approx(math.log(2))


def test_same_seed_same_data_and_different_seed_different_data():
    for task in SYNTHETIC_TASKS.values():
        a, b, c = (task.generate(8, 12, seed=s) for s in (4, 4, 5))
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        assert not torch.equal(a[0], c[0])
        assert a[0].shape[-1] == task.input_size and a[0].dtype == torch.float32


def test_every_task_learnable_signal_beats_chance_with_the_oracle():
    """The oracle prediction (the target itself, or logits on it) scores far below chance: score() reads targets right."""
    for task in SYNTHETIC_TASKS.values():
        x, y = task.generate(64, 15, seed=0)
        oracle = y.clone().float() if task.loss == "mse" else 20.0 * F.one_hot(y, task.output_size).float() - 10.0
        assert score(task, oracle, y) < 1e-3 < task.chance(y, 15)


def test_bad_input_errors():
    with pytest.raises(ValueError, match="length"):
        adding_problem(4, 1)
    with pytest.raises(ValueError, match="num"):
        copying_memory(0, 10)
    with pytest.raises(TypeError, match="length to be an integer >= 1, got float 2.5"):
        parity(3, 2.5)
    with pytest.raises(ValueError, match="unknown synthetic task 'add'.*'adding'"):
        synthetic_task("add")
