r"""Monte Carlo dropout: a trained model's dropout kept on at prediction time, to measure uncertainty.

Gal & Ghahramani 2016, "Dropout as a Bayesian Approximation: Representing Model Uncertainty in
Deep Learning": a network trained with dropout is an approximate Bayesian model; averaging N
passes with fresh masks approximates its predictive distribution. With samples
``y_1 .. y_N`` and an observation noise ``sigma`` (the model's own noise level, e.g. from
held-in residuals; 0 gives the model's uncertainty alone):

.. math::
    \mu = \frac{1}{N} \sum_n y_n, \qquad
    s^2 = \frac{1}{N} \sum_n y_n^2 - \mu^2 + \sigma^2, \qquad
    \text{interval} = \mu \pm z_{(1 + \text{level}) / 2}\, s
"""

from __future__ import annotations

import contextlib
import math
import statistics
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch
from torch import Tensor, nn

from .._checks import check_flag, check_number, check_size
from .masks import Stochastic

TORCH_DROPOUTS = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


@contextlib.contextmanager
def mc_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Evaluation mode for every module except dropout-like ones (torch's and carousel's regularisers).

    Batch or layer statistics, teacher forcing flags and the like behave as at evaluation; only the
    random masks stay on. Every module's mode is restored when the block ends.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected a torch.nn.Module, got {type(model).__name__}")
    modules = list(model.modules())
    before = [m.training for m in modules]
    model.eval()
    for m in modules:
        if isinstance(m, TORCH_DROPOUTS + (Stochastic,)):
            m.training = True  # this module only, not its children (a wrapped cell stays in eval)
    try:
        yield model
    finally:
        for m, was in zip(modules, before):
            m.training = was


@dataclass(frozen=True)
class MCPrediction:
    """Predictive mean, standard deviation and ``level`` interval from ``samples`` (N, B, ...)."""

    mean: Tensor
    std: Tensor
    lower: Tensor
    upper: Tensor
    samples: Tensor
    level: float
    noise_std: float

    def covers(self, target: Tensor) -> Tensor:
        """Boolean tensor: whether each target lies inside the interval."""
        return (target >= self.lower) & (target <= self.upper)

    def coverage(self, target: Tensor) -> float:
        """Fraction of ``target`` inside the interval (about ``level`` when the model is calibrated)."""
        return float(self.covers(target).float().mean())

    def noise_std_for(self, target: Tensor) -> float:
        """The observation noise ``sigma`` that makes the predictive variance match these residuals.

        ``sigma^2 = mean((target - mean)^2) - mean(model variance)``, at least 0. Estimate it on
        held-in data, then pass it as ``noise_std`` when predicting on new data.
        """
        model_var = self.samples.var(dim=0, correction=0)
        excess = float(((target - self.mean) ** 2).mean() - model_var.mean())
        return math.sqrt(max(excess, 0.0))


def _first_tensor(result: Any) -> Tensor:
    if isinstance(result, Tensor):
        return result
    if isinstance(result, (tuple, list)) and result and isinstance(result[0], Tensor):
        return result[0]  # carousel layers return (outputs, final_state)
    raise TypeError(f"expected the model to return a tensor or a tuple starting with one, got {type(result).__name__}")


def _shares_masks(model: nn.Module) -> list[str]:
    return [
        type(m).__name__ for m in model.modules()
        if isinstance(m, Stochastic) and m.shares_mask_across_batch and getattr(m, "p", 0.0) > 0.0
    ]


def mc_dropout(
    model: nn.Module,
    *inputs: Any,
    samples: int = 100,
    level: float = 0.9,
    seed: int = 0,
    noise_std: float = 0.0,
    batched: bool | None = None,
    output: Callable[[Any], Tensor] | None = None,
) -> MCPrediction:
    """``samples`` stochastic passes of ``model(*inputs)`` under :func:`mc_mode`, summarised.

    Batched (the default where possible): every tensor input is repeated ``samples`` times along
    dim 0 (the batch; the output's batch must be at dim 0 too) and the model runs once on
    ``samples * B`` rows; masks are drawn per row, so rows are
    independent samples. Regularisers that share one mask across the batch (``WeightDrop``,
    ``EmbeddingDropout``) make batching wrong, so then the passes run one after another
    (``batched=True`` with them is an error). ``output`` picks the tensor from the model's
    return (default: the tensor itself, or the first element of a tuple, as carousel's layers
    return ``(outputs, state)``). ``seed`` fixes every mask, and the caller's random state is
    left as it was. Runs without gradients.

    The interval is Gaussian, ``mean ± z * std``: it covers about ``level`` of new targets only
    when the samples' spread plus ``noise_std`` matches the model's real error. With
    ``noise_std=0`` it is the model's uncertainty alone, usually too narrow; estimate the noise on
    held-in data (``MCPrediction.noise_std_for``), pass it here, and check the result on held-out
    data with ``MCPrediction.coverage``. Raises ``TypeError`` for options of the wrong type and
    ``ValueError`` for ``samples < 2``, ``level`` outside (0, 1) or a negative or non-finite ``noise_std``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected a torch.nn.Module, got {type(model).__name__}")
    check_size(samples, "samples", minimum=2)
    _check_summary(level, noise_std)
    check_number(seed, "seed", integer=True)
    if batched is not None:
        check_flag(batched, "batched")
    if output is not None and not callable(output):
        raise TypeError(f"expected output to be a function picking the tensor from the model's return, got {type(output).__name__}")
    tensors = [x for x in inputs if isinstance(x, Tensor)]
    if not tensors:
        raise ValueError("expected at least one tensor input to predict from")
    B = tensors[0].shape[0] if tensors[0].dim() else 0
    shared = _shares_masks(model)
    if batched is None:
        batched = not shared
    elif batched and shared:
        raise ValueError(
            f"batched=True cannot give independent samples: {', '.join(sorted(set(shared)))} draws one mask for the "
            "whole batch; leave batched out (or False) to run the passes one after another"
        )
    if batched and getattr(model, "batch_first", True) is False:
        raise ValueError(
            f"batched samples repeat the batch at dim 0, but this {type(model).__name__} was built with "
            "batch_first=False; build it batch-first or pass batched=False"
        )
    if batched and any(x.dim() == 0 or x.shape[0] != B for x in tensors):
        shapes = ", ".join(str(tuple(x.shape)) for x in tensors)
        raise ValueError(f"batched samples need every tensor input to have the batch size at dim 0, got shapes {shapes}")
    pick = output or _first_tensor
    devices = sorted({x.device.index or 0 for x in tensors if x.device.type == "cuda"})
    with torch.no_grad(), mc_mode(model), torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        if batched:
            many = [x.repeat(samples, *[1] * (x.dim() - 1)) if isinstance(x, Tensor) else x for x in inputs]
            y = pick(model(*many))  # (N * B, ...), sample-major
            if y.dim() == 0 or y.shape[0] != samples * B:
                raise ValueError(
                    f"batched samples need the output's batch at dim 0: expected {samples * B} rows, got shape "
                    f"{tuple(y.shape)}; pass batched=False"
                )
            ys = y.reshape(samples, B, *y.shape[1:])  # (N, B, ...)
        else:
            ys = torch.stack([pick(model(*inputs)) for _ in range(samples)])  # (N, B, ...)
    return summarise(ys, level=float(level), noise_std=float(noise_std))


def summarise(samples: Tensor, *, level: float = 0.9, noise_std: float = 0.0) -> MCPrediction:
    """Mean, standard deviation (model spread plus ``noise_std``) and a Gaussian interval of ``samples`` (N, ...)."""
    _check_summary(level, noise_std)
    mean = samples.mean(dim=0)
    std = (samples.var(dim=0, correction=0) + noise_std**2).sqrt()
    z = statistics.NormalDist().inv_cdf((1.0 + level) / 2.0)
    return MCPrediction(mean, std, mean - z * std, mean + z * std, samples, level, noise_std)


def _check_summary(level: object, noise_std: object) -> None:
    check_number(level, "level", low=0.0, high=1.0, low_open=True, high_open=True)
    check_number(noise_std, "noise_std", low=0.0)
