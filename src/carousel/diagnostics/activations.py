r"""Which neurons of a character model mean something: activations over a text, ranked, on one HTML page.

``record_activations(model, vocab, text)`` runs a token model (``model(ids, state)``, e.g.
``CharLM``) over ``text`` and keeps, after each character ``t``, every unit of every recurrent
layer: the state fields (``h``, and ``c`` for an LSTM) and the gates (``i``, ``f``, ``o`` of an
LSTM; ``r``, ``z`` of a GRU). A unit is named ``"L.field:k"``, e.g. ``"0.c:17"``.

``text_features(text)`` describes each position with simple facts: inside ``( )``, ``[ ]``,
``{ }``, ``< >`` or double quotes, and the position in the line. ``rank_units`` scores every unit
against every feature by the Pearson correlation over the text,

.. math::
    r(a, f) = \frac{\sum_t (a_t - \bar a)(f_t - \bar f)}{\sqrt{\sum_t (a_t - \bar a)^2 \sum_t (f_t - \bar f)^2}}

and lists the units with the largest ``|r|`` (Karpathy, Johnson & Fei-Fei 2015, "Visualizing and
Understanding Recurrent Networks", found such quote, bracket and line-length cells by eye).

``activation_page(...)`` writes one self-contained HTML file (no external resource): the text
with each character's background coloured by the chosen unit's value after reading it (blue
positive, red negative; a state unit scaled by its largest ``|a|``, a gate in (0, 1) shown as
``2a - 1``, white at one half: ``display_values``), the ranking beside it, and a
short script that recolours the text when a row of the ranking is clicked (or the page is
opened with ``#unit=NAME``).
"""

from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn

from ..data.vocab import Vocabulary
from .trace import recording

GATES = ("i", "f", "o", "r", "z")  # gate names of carousel cells: values in (0, 1)
BRACKETS = {"( )": ("(", ")"), "[ ]": ("[", "]"), "{ }": ("{", "}"), "< >": ("<", ">")}


@dataclass
class Activations:
    """``values`` (N, U): unit ``names[u]`` after each of the N characters of ``text``."""

    text: str
    names: list[str]
    values: Tensor

    def unit(self, name: str) -> Tensor:
        if name not in self.names:
            raise ValueError(f"unknown unit {name!r}; units are named 'LAYER.FIELD:INDEX', e.g. {self.names[0]!r}, {self.names[-1]!r}")
        return self.values[:, self.names.index(name)]


@torch.no_grad()
def record_activations(model: nn.Module, vocab: Vocabulary, text: str) -> Activations:
    """Every state unit and gate of every recurrent layer of ``model`` after each character of ``text``."""
    if not isinstance(text, str) or not text:
        raise ValueError("expected a non-empty text to record activations over")
    if not isinstance(vocab, Vocabulary):
        raise TypeError(f"expected vocab to be a carousel.data.Vocabulary, got {type(vocab).__name__}")
    was_training = model.training
    model.eval()
    try:
        ids = vocab.encode(text).unsqueeze(0).to(next(model.parameters()).device)  # (1, N)
        with recording(model) as traces:
            model(ids, None)
    finally:
        model.train(was_training)
    names, columns = [], []
    for layer, trace in enumerate(traces.values()):
        fields: dict[str, list[Tensor]] = {f: [s[i][0] for s in trace.states] for i, f in enumerate(trace.fields)}
        for px, before in zip(trace.px, trace.inputs):
            for g, v in trace.cell.gates(px, before).items():
                fields.setdefault(g, []).append(v[0])
        for f, steps in fields.items():
            col = torch.stack(steps).float().cpu()  # (N, H)
            names += [f"{layer}.{f}:{k}" for k in range(col.shape[1])]
            columns.append(col)
    return Activations(text, names, torch.cat(columns, dim=1))  # (N, U)


def text_features(text: str) -> dict[str, Tensor]:
    """Facts about each position of ``text`` (after reading that character), as float vectors (N,).

    Only features that vary over the text are returned (a constant cannot correlate).
    """
    if not isinstance(text, str):
        raise TypeError(f"expected text as a str, got {type(text).__name__}")
    n = len(text)
    feats = {f"inside {k}": torch.zeros(n) for k in BRACKETS}
    feats['inside "quotes"'] = torch.zeros(n)
    feats["position in line"] = torch.zeros(n)
    depth = {k: 0 for k in BRACKETS}
    quoted, column = False, 0
    for t, ch in enumerate(text):
        for k, (open_, close) in BRACKETS.items():
            depth[k] += (ch == open_) - (ch == close and depth[k] > 0)
            feats[f"inside {k}"][t] = float(depth[k] > 0 and ch != close)
        if ch == '"':
            quoted = not quoted
        feats['inside "quotes"'][t] = float(quoted)
        if ch == "\n":
            column, quoted = 0, False
        else:
            column += 1
        feats["position in line"][t] = float(column)
    return {k: v for k, v in feats.items() if float(v.std()) > 0}


class Ranked(NamedTuple):
    feature: str
    unit: str
    r: float


def correlations(values: Tensor, feature: Tensor) -> Tensor:
    """Pearson ``r`` of each column of ``values`` (N, U) with ``feature`` (N,); 0 for a constant column."""
    a = values.double() - values.double().mean(0)
    f = feature.double() - feature.double().mean()
    den = (a.square().sum(0) * f.square().sum()).sqrt()
    return torch.where(den > 0, (a * f[:, None]).sum(0) / den.clamp_min(1e-300), torch.zeros_like(den))


def rank_units(acts: Activations, features: dict[str, Tensor] | None = None, *, per_feature: int = 3) -> list[Ranked]:
    """The ``per_feature`` units most correlated (by ``|r|``) with each feature, best first overall."""
    features = text_features(acts.text) if features is None else features
    found = []
    for name, f in features.items():
        r = correlations(acts.values, f)
        for u in r.abs().argsort(descending=True)[:per_feature].tolist():
            found.append(Ranked(name, acts.names[u], float(r[u])))
    return sorted(found, key=lambda x: -abs(x.r))


def display_values(acts: Activations, name: str) -> Tensor:
    """What the page shows for unit ``name``, in [-1, 1]: ``2a - 1`` for a gate, ``a / max |a|`` for a state unit."""
    v = acts.unit(name).double()
    field = name.split(".", 1)[1].split(":", 1)[0]
    if field in GATES:
        return 2.0 * v - 1.0
    scale = float(v.abs().max())
    return v / scale if scale > 0 else v


def activation_page(acts: Activations, path: str | os.PathLike, *, unit: str | None = None,
                    ranking: list[Ranked] | None = None, title: str = "Activations") -> str:
    """Write the HTML page (see the module docstring); ``unit`` is shown first (default: the top-ranked)."""
    ranking = rank_units(acts) if ranking is None else ranking
    shown = [u for u in dict.fromkeys(([unit] if unit else []) + [r.unit for r in ranking])]
    if not shown:
        shown = [acts.names[0]]
    data = {}
    for name in shown:
        data[name] = [round(float(x), 3) for x in display_values(acts, name)]
    first = shown[0]
    chars = "".join(
        f'<span style="background:{_colour(a)}" title="{a:.3f}">{_char_html(c)}</span>' for c, a in zip(acts.text, data[first])
    )
    rows = "".join(
        f'<tr data-unit="{html.escape(r.unit)}"><td>{html.escape(r.feature)}</td><td>{html.escape(r.unit)}</td><td>{r.r:+.3f}</td></tr>'
        for r in ranking
    )
    page = _PAGE.format(
        title=html.escape(title), first=html.escape(first), chars=chars, rows=rows,
        data=json.dumps(data).replace("</", "<\\/"), n=len(acts.text), units=len(acts.names),
    )
    with open(path, "w", encoding="utf-8") as f:
        f.write(page)
    return os.fspath(path)


def _colour(a: float) -> str:
    """Background of a value in [-1, 1]: blue for positive, red for negative, opacity |a| (same rule as the script)."""
    rgb = "33,102,172" if a >= 0 else "178,24,43"
    return f"rgba({rgb},{abs(a):.3f})"


def _char_html(c: str) -> str:
    return "\u21b5\n" if c == "\n" else html.escape(c)


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; display: flex; gap: 2em; align-items: flex-start; }}
#text {{ font-family: monospace; white-space: pre-wrap; line-height: 1.5; flex: 3; }}
#side {{ flex: 1; min-width: 22em; }}
table {{ border-collapse: collapse; }} td {{ padding: 2px 8px; border-bottom: 1px solid #ddd; cursor: pointer; }}
tr.chosen {{ background: #ffe9a8; }}
</style></head><body>
<div style="flex:3"><h2>{title}</h2>
<p>{n} characters; each coloured by unit <b id="unit">{first}</b> after reading it
(blue positive, red negative; a state unit scaled by its largest value, a gate <i>a</i> in (0, 1) shown as 2<i>a</i> &minus; 1).
Units: {units} in all, named LAYER.FIELD:INDEX (h, c: state; i, f, o, r, z: gates).</p>
<div id="text">{chars}</div></div>
<div id="side"><h3>Most interpretable units</h3><p>Pearson r with a fact about each position; click a row.</p>
<table><tr><th>feature</th><th>unit</th><th>r</th></tr>{rows}</table></div>
<script id="activations" type="application/json">{data}</script>
<script>
const data = JSON.parse(document.getElementById("activations").textContent);
const spans = document.getElementById("text").children;
function colour(a) {{ return "rgba(" + (a >= 0 ? "33,102,172" : "178,24,43") + "," + Math.abs(a).toFixed(3) + ")"; }}
function show(name) {{
  const v = data[name]; if (!v) return;
  for (let t = 0; t < spans.length; t++) {{ spans[t].style.background = colour(v[t]); spans[t].title = v[t].toFixed(3); }}
  document.getElementById("unit").textContent = name;
  for (const row of document.querySelectorAll("tr[data-unit]")) row.classList.toggle("chosen", row.dataset.unit === name);
}}
for (const row of document.querySelectorAll("tr[data-unit]")) row.addEventListener("click", () => show(row.dataset.unit));
const wanted = decodeURIComponent((location.hash.match(/unit=([^&]+)/) || [])[1] || "");
show(wanted in data ? wanted : "{first}");
</script></body></html>
"""
