"""Bad input to the library around the models: generated tasks (``carousel.data``), scheduled
sampling and sampling from logits (``carousel.decode``), the diagnostics and ``last_step``
(see ``api_matrix``)."""

from __future__ import annotations

import math

import torch

from carousel.data import adding_problem, copying_memory, parity
from carousel.data.graphs import reachability
from carousel.decode import SamplingSchedule, next_token
from carousel.diagnostics import diagnose, recurrent_radius
from carousel.data import Vocabulary
from carousel.diagnostics import gate_stats, record_activations, step_jacobian, text_features
from carousel.models import CharLM, RecurrentModel, cell_factory, last_step
from carousel.train import Hook, TrainConfig, Trainer, clip_gradients, derive_seed, get_task
import carousel as C
from edges.api_matrix import Case, parametrize, raises, run_case

NAN, INF = math.nan, math.inf


def _y():
    return torch.arange(12.0).view(2, 3, 2)  # (B=2, T=3, H=2)


def _rows(want):
    """``last_step`` picked these rows of ``_y()`` (row b at step lengths[b] - 1)."""

    def check(got):
        torch.testing.assert_close(got, torch.stack([_y()[b, t] for b, t in enumerate(want)]))

    return check


def _radius_of_hh(result):
    """The spectral radius equals the largest |eigenvalue| of weight_hh, computed here by numpy."""
    import numpy as np

    cell, radius = result
    want = float(np.abs(np.linalg.eigvals(cell.weight_hh.detach().double().numpy())).max())
    assert abs(radius["hh"] - want) < 1e-9, (radius, want)


def _elman_radius():
    torch.manual_seed(0)
    cell = C.ElmanCell(3, 4)
    return cell, recurrent_radius(cell)


def _model():
    torch.manual_seed(0)
    return RecurrentModel("elman", 1, 4, 1)


def _linear_jacobian():
    """An identity-activation Elman cell: ds_t/ds_(t-1) is W_hh for every sequence."""
    torch.manual_seed(0)
    cell = C.ElmanCell(3, 4, nonlinearity="identity")
    return cell, step_jacobian(cell, torch.randn(2, 4), None)


def _is_w_hh(result):
    cell, jac = result
    for b in range(2):
        torch.testing.assert_close(jac[b], cell.weight_hh.detach())


CASES = [
    # ---- generated tasks: seed and dtype ----
    Case("adding-seed-str", lambda: adding_problem(2, 10, seed="a"), raises(TypeError, "seed", "str 'a'")),
    Case("adding-seed-float", lambda: adding_problem(2, 10, seed=1.5), raises(TypeError, "seed", "1.5")),
    Case("adding-int-dtype", lambda: adding_problem(2, 10, dtype=torch.int64), raises(ValueError, "floating-point dtype", "torch.int64")),
    Case("copying-dtype-str", lambda: copying_memory(2, 10, dtype="float32"), raises(TypeError, "torch.dtype", "'float32'")),
    Case("parity-int-dtype", lambda: parity(2, 10, dtype=torch.int32), raises(ValueError, "floating-point dtype", "torch.int32")),
    # ---- graph task: numbers checked, settings that can never give an answer refused (they hung) ----
    Case("reach-degree-inf", lambda: reachability(2, mean_degree=INF), raises(ValueError, "mean_degree", "inf")),
    Case("reach-degree-str", lambda: reachability(2, mean_degree="1"), raises(TypeError, "mean_degree", "str '1'")),
    Case("reach-graphs-float", lambda: reachability(2.5), raises(TypeError, "num_graphs", "2.5")),
    Case("reach-seed-float", lambda: reachability(2, seed=1.5), raises(TypeError, "seed", "1.5")),
    Case("reach-complete-graphs", lambda: reachability(4, max_nodes=6, mean_degree=100.0), raises(ValueError, "mean_degree=100", "both answers")),
    # ---- scheduled sampling: every constant finite, unused ones refused, the step a number ----
    Case("schedule-k-inf", lambda: SamplingSchedule("inverse_sigmoid", k=INF), raises(ValueError, "k", "finite", "inf")),
    Case("schedule-c-inf", lambda: SamplingSchedule("linear", k=1.0, c=INF), raises(ValueError, "c", "finite", "inf")),
    Case("schedule-k-str", lambda: SamplingSchedule("exponential", k="0.5"), raises(TypeError, "k", "str '0.5'")),
    Case("schedule-step-nan", lambda: SamplingSchedule("exponential", k=0.5)(NAN), raises(ValueError, "training step", "nan")),
    Case("schedule-none-with-k", lambda: SamplingSchedule("none", k=0.0), raises(ValueError, "'none'", "k=0.0", "default")),
    Case("schedule-c-unused", lambda: SamplingSchedule("exponential", k=0.5, c=0.1), raises(ValueError, "'exponential'", "c=0.1")),
    Case("schedule-linear-ok", lambda: SamplingSchedule("linear", k=1.0, c=0.25, minimum=0.1)(2), lambda eps: eps == 0.5 or _fail(eps)),
    # ---- sampling from logits that a diverged model gives ----
    Case("next-token-nan-logits", lambda: next_token(torch.full((2, 5), NAN)), raises(ValueError, "NaN", "logits")),
    Case("next-token-inf-logit", lambda: next_token(torch.tensor([[0.0, INF, 1.0]])), raises(ValueError, "+inf")),
    Case("next-token-only-banned", lambda: next_token(torch.tensor([[0.0, -INF, -INF]]), banned=0), raises(ValueError, "finite logit", "banned=0")),
    Case("next-token-greedy-ok", lambda: next_token(torch.tensor([[9.0, 1.0, 3.0]]), temperature=0), lambda t: t.tolist() == [2] or _fail(t)),
    # ---- last_step: lengths as everywhere else ----
    Case("last-step-float-lengths", lambda: last_step(_y(), [2.5, 3]), raises(TypeError, "integer lengths", "2.5")),
    Case("last-step-length-0", lambda: last_step(_y(), [0, 3]), raises(ValueError, "at least 1", "0")),
    Case("last-step-length-past-t", lambda: last_step(_y(), [4, 3]), raises(ValueError, "T=3", "4")),
    Case("last-step-rank-2", lambda: last_step(torch.zeros(2, 3), [1, 2]), raises(ValueError, "(B, T, H)", "(2, 3)")),
    Case("last-step-ok", lambda: last_step(_y(), torch.tensor([1, 3])), _rows([0, 2])),
    # ---- diagnostics: wrong objects ----
    Case("radius-of-linear", lambda: recurrent_radius(torch.nn.Linear(2, 2)), raises(TypeError, "carousel Cell", "Linear")),
    Case("radius-of-layer", lambda: recurrent_radius(C.Recurrent(C.ElmanCell(3, 4))), raises(TypeError, "Recurrent", "layer.cell")),
    Case("radius-of-cell-ok", _elman_radius, _radius_of_hh),
    Case("diagnose-loss-not-callable", lambda: diagnose(_model(), 3.0), raises(TypeError, "compute_loss", "float")),
    Case("diagnose-model-none", lambda: diagnose(None, lambda: torch.zeros(())), raises(TypeError, "torch.nn.Module", "NoneType")),
    Case("jacobian-state-tensor", lambda: step_jacobian(C.LSTMCell(3, 4), torch.zeros(2, 16), torch.zeros(2, 4)), raises(TypeError, "LSTMState", "a tensor")),
    Case("jacobian-px-float64", lambda: step_jacobian(C.LSTMCell(3, 4), torch.zeros(2, 16, dtype=torch.float64), None), raises(ValueError, "torch.float32", "torch.float64")),
    Case("jacobian-px-width", lambda: step_jacobian(C.LSTMCell(3, 4), torch.zeros(2, 5), None), raises(ValueError, "(B, 16)", "(2, 5)")),
    Case("jacobian-linear-ok", _linear_jacobian, _is_w_hh),
    Case("gate-stats-none", lambda: gate_stats(None), raises(TypeError, "LayerTrace", "NoneType")),
    Case("text-features-int", lambda: text_features(5), raises(TypeError, "str", "int")),
    Case("activations-vocab-str", lambda: record_activations(CharLM(4, embed_size=2, hidden_size=3), "abc", "abc"), raises(TypeError, "Vocabulary", "str")),
    # ---- training options from Python: integers are integers, flags are flags, hooks are hooks ----
    Case("config-seed-float", lambda: TrainConfig(seed=1.5), raises(ValueError, "seed", "integer", "1.5")),
    Case("config-eval-every-float", lambda: TrainConfig(eval_every=2.5), raises(ValueError, "eval_every", "integer", "2.5")),
    Case("config-progress-str", lambda: TrainConfig(progress="yes"), raises(ValueError, "progress", "True or False", "'yes'")),
    Case("config-warmup-whole-run", lambda: TrainConfig(steps=10, warmup=10), raises(ValueError, "warmup < steps", "10")),
    Case("config-momentum-1", lambda: TrainConfig(optimizer="sgd", momentum=1.0), raises(ValueError, "momentum in [0, 1)", "1.0")),
    Case("config-momentum-adam", lambda: TrainConfig(momentum=0.9), raises(ValueError, "momentum 0", "'adam'", "0.9")),
    Case("trainer-hook-int", lambda: Trainer(get_task("adding")(), TrainConfig(steps=1), hooks=[3]), raises(TypeError, "Hook", "int")),
    Case("trainer-hook-ok", lambda: Trainer(get_task("adding")(), TrainConfig(steps=1), hooks=[Hook()]), lambda t: len(t.hooks) == 1 or _fail(t.hooks)),
    Case("derive-seed-float", lambda: derive_seed(1.5, 2), raises(TypeError, "integer seed parts", "1.5")),
    Case("derive-seed-str", lambda: derive_seed("a"), raises(TypeError, "integer seed parts", "'a'")),
    Case("clip-norm-nan", lambda: clip_gradients([torch.nn.Parameter(torch.ones(2))], max_norm=NAN), raises(ValueError, "max_norm", "nan")),
    Case("decode-float-ids", lambda: Vocabulary.from_text("abc").decode(torch.tensor([1.5, 2.0])), raises(TypeError, "integer indices", "torch.float32")),
    Case("decode-ok", lambda: Vocabulary.from_text("abc").decode([1, 3]), lambda t: t == "ac" or _fail(t)),
    Case("cell-option-unknown", lambda: cell_factory("gru", {"forget_bias": 1.0}), raises(ValueError, "'gru'", "'forget_bias'", "variant")),
    Case("charlm-cell-option-unknown", lambda: CharLM(5, cell_options={"bogus": 1}), raises(ValueError, "'bogus'", "forget_bias")),
    Case("to-torch-says-why", lambda: C.LSTM(3, 4, layer_norm=True).to_torch(), raises(ValueError, "no torch.nn equivalent", "layer_norm=True")),
]



def _fail(got):
    raise AssertionError(got)


@parametrize(CASES)
def test_api_edge(case):
    run_case(case)
