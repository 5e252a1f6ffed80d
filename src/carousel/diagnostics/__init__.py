"""Diagnostics: see *why* a recurrent network learns long dependencies or fails to.

* ``gradient_flow(model, compute_loss)``: ``||dL/ds_k||`` for every step k and layer;
* ``step_jacobian`` / ``spectrum``: singular values and spectral radius of ``ds_t/ds_(t-l)``
  against the lag; ``recurrent_radius``: of each block of ``weight_hh``;
* ``gate_stats``: mean and saturated share of every gate at every step;
* ``judge``: vanishing / exploding / healthy, with the numbers;
* ``diagnose(model, compute_loss)``: all of it at once, as a ``Snapshot`` that saves to JSON
  (``carousel.train.DiagnosticsHook`` records snapshots while a trainer runs);
* ``record_activations`` / ``rank_units`` / ``activation_page``: which units of a character
  model track brackets, quotes or the position in a line, on a self-contained HTML page;
* ``carousel.diagnostics.plots``: PNG plots (matplotlib is imported only there).

Every diagnostic reads a ``recording`` of the model's ``Recurrent`` layers; cells are unchanged.
"""

from .activations import Activations, activation_page, rank_units, record_activations, text_features
from .flow import FlowCurve, flow_from_traces, gradient_flow
from .gates import GateStats, gate_stats
from .jacobian import Spectrum, recurrent_blocks, recurrent_radius, spectrum, step_jacobian
from .snapshot import LayerSnapshot, Snapshot, append_snapshot, diagnose, load_history
from .trace import LayerTrace, recording
from .verdict import Verdict, judge

__all__ = [
    "recording",
    "LayerTrace",
    "gradient_flow",
    "flow_from_traces",
    "FlowCurve",
    "step_jacobian",
    "spectrum",
    "Spectrum",
    "recurrent_blocks",
    "recurrent_radius",
    "gate_stats",
    "GateStats",
    "judge",
    "Verdict",
    "diagnose",
    "Snapshot",
    "LayerSnapshot",
    "append_snapshot",
    "load_history",
    "record_activations",
    "Activations",
    "text_features",
    "rank_units",
    "activation_page",
]
