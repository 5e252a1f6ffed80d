"""``carousel train regimes``: predict the next value of a sequence whose dynamics switch between K regimes.

The data are ``carousel.data.regimes.regime_switching``: a sticky Markov chain over K affine maps
``x_t = a_r x_{t-1} + b_r + noise``. The model is a mixture of K linear experts
(``carousel.layers.MixtureOfExperts``), each a map ``x_t -> x_{t+1}`` (the form of one regime),
whose gate is read from a recurrent network over the values seen so far: the gate has to
recognise the current regime from the recent history, and each expert can specialise in one map
(the adaptive mixture of Jacobs, Jordan, Nowlan & Hinton 1991, "Adaptive Mixtures of Local
Experts", with a recurrent gate). The loss is the MSE of the next value plus ``--balance`` times
the load-balancing loss of Shazeer et al. 2017 (eq. 6-7), reported as ``aux`` in the step metrics.

``evaluate`` reports ``loss`` (MSE), ``baseline`` (the MSE of predicting the last value again),
``oracle`` (the MSE of the best prediction of one that knows the regime of the last step, the
maps and the chain: ``p_stay`` times the current map's value plus the mean of the other maps
times ``1 - p_stay``, a floor no model of the values can beat on average) and ``ari``, the adjusted Rand index
(Hubert & Arabie 1985, "Comparing Partitions") between the winning expert (largest gate) of
every step and the regime that produced its target: 1 when the experts sort the steps exactly
by regime (under any renaming), about 0 for an assignment unrelated to the regimes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..._checks import check_number
from ...cells import cell_names
from ...data.regimes import MAX_REGIMES, regime_maps, regime_switching
from ...layers import MixtureOfExperts
from ...models import RecurrentModel
from ..batches import SeededBatches, derive_seed
from ..config import option
from ..registry import register_task
from ..task import Shard, StepOutput, Task

VALID_SEED, TEST_SEED = 4_000_037, 4_000_039  # fixed: every run is scored on the same sequences


@dataclass(frozen=True)
class RegimesOptions:
    regimes: int = option(3, f"number of regimes K (2 to {MAX_REGIMES}), and of experts")
    length: int = option(100, "sequence length T")
    stay: float = option(0.95, "probability that the regime is kept from one step to the next")
    noise: float = option(0.1, "standard deviation of the additive noise")
    cell: str = option("gru", "recurrent cell of the gate network", choices=cell_names)
    hidden: int = option(32, "hidden units of the gate network")
    balance: float = option(0.01, "weight of the load-balancing (importance) loss")
    eval_size: int = option(500, "sequences in the validation and test sets")

    def __post_init__(self) -> None:
        if not 2 <= self.regimes <= MAX_REGIMES:
            raise ValueError(f"expected regimes in [2, {MAX_REGIMES}], got {self.regimes}")
        if self.length < 3:
            raise ValueError(f"expected length >= 3, got {self.length}")
        for name in ("hidden", "eval_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"expected {name} >= 1, got {getattr(self, name)}")
        check_number(self.stay, "stay", low=0.0, high=1.0)
        check_number(self.noise, "noise", low=0.0)
        check_number(self.balance, "balance", low=0.0)


class _Columns(nn.Module):
    """``module`` applied to the columns ``[start, stop)`` of an (N, I) input."""

    def __init__(self, start: int, stop: int, module: nn.Module) -> None:
        super().__init__()
        self.start, self.stop, self.module = start, stop, module

    def forward(self, x: Tensor) -> Tensor:
        return self.module(x[:, self.start:self.stop])


class RegimesModel(nn.Module):
    """A recurrent gate over the values and K linear experts on the last value.

    ``forward(x)``: x (B, T, 1) -> the next values (B, T, 1); afterwards ``moe.last_gates``
    (B, T, K) holds each step's gate and ``moe.aux_loss`` its importance loss.
    """

    def __init__(self, regimes: int, hidden: int, cell: str = "gru") -> None:
        super().__init__()
        self.encoder = RecurrentModel(cell, 1, hidden, regimes, readout="all")  # (B, T, K) gate logits
        experts = [_Columns(0, 1, nn.Linear(1, 1)) for _ in range(regimes)]
        self.moe = MixtureOfExperts(experts, _Columns(1, 1 + regimes, nn.Identity()))

    def forward(self, x: Tensor) -> Tensor:
        logits, _ = self.encoder(x)  # (B, T, K)
        return self.moe(torch.cat([x, logits], dim=-1))  # (B, T, 1)


def adjusted_rand_index(assigned: Tensor, truth: Tensor) -> float:
    """The adjusted Rand index (Hubert & Arabie 1985) of two labelings of the same items (any shape,
    flattened), by scikit-learn's ``adjusted_rand_score``. ``ValueError`` when the sizes differ."""
    from sklearn.metrics import adjusted_rand_score

    if assigned.numel() != truth.numel():
        raise ValueError(f"expected two labelings of the same items, got {assigned.numel()} and {truth.numel()} labels")
    return float(adjusted_rand_score(truth.reshape(-1).cpu().numpy(), assigned.reshape(-1).cpu().numpy()))


def oracle_mse(values: Tensor, regimes: Tensor, num_regimes: int, stay: float) -> float:
    """The MSE of predicting x_{t+1} by its expectation given x_t, the regime r_t and the chain:
    ``stay * f_{r_t}(x_t) + (1 - stay) * mean_{j != r_t} f_j(x_t)`` over ``values`` and ``regimes``
    (N, T) from ``regime_switching`` with ``num_regimes`` K; ``ValueError`` for K outside [2, 4]."""
    maps = regime_maps(num_regimes)
    K = maps.shape[0]
    x, current = values[:, :-1], regimes[:, :-1]  # (N, T-1)
    mapped = x[..., None] * maps[:, 0] + maps[:, 1]  # (N, T-1, K): every regime's map of x_t
    transition = torch.full((K, K), (1 - stay) / (K - 1)).fill_diagonal_(stay)  # (K, K) P(r_{t+1} | r_t)
    expected = (mapped * transition[current]).sum(-1)  # (N, T-1)
    return float(F.mse_loss(expected, values[:, 1:]))


def plot_experts(winners: Sequence[int] | Tensor, regimes: Sequence[int] | Tensor, path: str | Path) -> Path:
    """Save a PNG at ``path`` of the winning expert (top) and the true regime (bottom) at every step
    of one sequence (both (T,) integer labels); returns the path. ``ValueError`` when their lengths
    differ or are 0. Needs matplotlib (``pip install carousel[plot]``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    w, r = torch.as_tensor(winners).reshape(-1), torch.as_tensor(regimes).reshape(-1)
    if w.numel() != r.numel() or w.numel() == 0:
        raise ValueError(f"expected winners and regimes of the same non-zero length, got {w.numel()} and {r.numel()}")
    fig, axes = plt.subplots(2, 1, sharex=True, figsize=(8, 3))
    for ax, labels, title in zip(axes, (w, r), ("winning expert", "true regime")):
        ax.step(range(labels.numel()), labels.tolist(), where="post")
        ax.set_ylabel(title)
    axes[1].set_xlabel("step")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, format="png")
    plt.close(fig)
    return path


@register_task
class RegimesTask(Task):
    """Next value of a sequence switching between K affine regimes; a mixture of K experts with a recurrent gate."""

    name = "regimes"
    Options = RegimesOptions
    unit = "seq"

    def data(self, num_sequences: int, seed: int) -> tuple[Tensor, Tensor, Tensor]:
        """Inputs (N, T-1, 1) x_0..x_{T-2}, targets (N, T-1, 1) x_1..x_{T-1}, and the regime of each
        target (N, T-1)."""
        o = self.options
        d = regime_switching(num_sequences, o.length, num_regimes=o.regimes, stay=o.stay, noise=o.noise, seed=seed)
        return d.values[:, :-1, None], d.values[:, 1:, None], d.regimes[:, 1:]

    def build_model(self) -> nn.Module:
        return RegimesModel(self.options.regimes, self.options.hidden, self.options.cell)

    def train_batches(self, batch_size: int, shard: Shard, seed: int) -> SeededBatches:
        rows = shard.rows(batch_size)

        def make(i: int) -> tuple[Tensor, Tensor]:
            x, y, _ = self.data(batch_size, derive_seed(seed, i))
            return x[rows], y[rows]

        return SeededBatches(make)

    def step(self, model: nn.Module, batch, state) -> StepOutput:
        x, y = batch
        mse = F.mse_loss(model(x), y)
        aux = model.moe.aux_loss
        return StepOutput(mse + self.options.balance * aux, None, x.shape[0], {"mse": float(mse.detach()), "aux": float(aux.detach())})

    def predict(self, model: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
        """The predictions (N, T, 1) and the winning expert of every step (N, T) for inputs (N, T, 1)."""
        prediction = model(x)
        return prediction, model.moe.last_gates.argmax(-1)

    def plot(self, model: nn.Module, path: str | Path, split: str = "valid", index: int = 0) -> Path:
        """Plot the winning expert against the true regime over sequence ``index`` of ``split``'s
        set (:func:`plot_experts`); ``ValueError`` for an unknown split or an index outside
        [0, eval_size)."""
        seed = VALID_SEED if self.check_split(split) == "valid" else TEST_SEED
        if not 0 <= index < self.options.eval_size:
            raise ValueError(f"expected index in [0, {self.options.eval_size}) (the {split} sequences), got {index}")
        x, _, regimes = self.data(self.options.eval_size, seed)  # the evaluated set, of which one sequence
        with torch.no_grad():
            _, winners = self.predict(model, x[index:index + 1].to(next(model.parameters()).device))
        return plot_experts(winners[0].cpu(), regimes[index], path)

    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        seed = VALID_SEED if self.check_split(split) == "valid" else TEST_SEED
        o = self.options
        d = regime_switching(o.eval_size, o.length, num_regimes=o.regimes, stay=o.stay, noise=o.noise, seed=seed)
        x, y, regimes = d.values[:, :-1, None], d.values[:, 1:, None], d.regimes[:, 1:]
        device = next(model.parameters()).device
        total, winners = 0.0, []
        for xb, yb in zip(x.split(500), y.split(500)):
            prediction, won = self.predict(model, xb.to(device))
            total += float(F.mse_loss(prediction, yb.to(device), reduction="sum"))
            winners.append(won.cpu())
        return {"loss": total / y.numel(), "baseline": float(F.mse_loss(x, y)), "oracle": oracle_mse(d.values, d.regimes, o.regimes, o.stay),
                "ari": adjusted_rand_index(torch.cat(winners), regimes)}
