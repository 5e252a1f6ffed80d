"""``carousel train reachability``: does node s reach node t in a random directed graph? A gated graph network.

The data are ``carousel.data.graphs.reachability``, random graphs or two chains (``--family``;
balanced classes: the majority-class baseline is 50%, and ``evaluate`` reports it for the split as
``majority``). The model is a
``GatedGraphNetwork`` over the edges and their reverses (two edge types), the gated-sum graph
readout and a linear layer to the two classes; it is scored by cross-entropy and accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from ...data.graphs import FAMILIES, reachability
from ...structures import GatedGraphNetwork, GatedSumReadout, GraphBatch
from ..batches import SeededBatches, derive_seed
from ..config import option
from ..registry import register_task
from ..task import Shard, StepOutput, Task

VALID_SEED, TEST_SEED = 3_000_017, 3_000_023  # fixed: every run is scored on the same graphs


@dataclass(frozen=True)
class ReachabilityOptions:
    nodes: int = option(12, "largest graph; sizes are uniform from nodes // 2 to nodes")
    family: str = option("random", "graphs: 'random' (Erdős–Rényi) or 'chains' (two directed paths: only following edges answers)", choices=FAMILIES)
    degree: float = option(1.5, "mean out-degree of the random graphs")
    hidden: int = option(32, "node state size H")
    propagation: int = option(6, "propagation steps K of the gated graph network")
    eval_size: int = option(1000, "graphs in the validation and test sets")

    def __post_init__(self) -> None:
        for name in ("hidden", "propagation", "eval_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"expected {name} >= 1, got {getattr(self, name)}")
        if self.nodes < (4 if self.family == "chains" else 2):
            raise ValueError(f"expected nodes >= {4 if self.family == 'chains' else 2} for {self.family} graphs, got {self.nodes}")
        if not self.degree > 0:
            raise ValueError(f"expected degree > 0, got {self.degree}")
        if self.family == "random" and self.degree >= self.nodes - 1:
            raise ValueError(f"expected degree < nodes - 1 = {self.nodes - 1} (the most edges a node can have), got {self.degree:g}: "
                             "every graph would be complete, so no target would be unreachable")


class ReachabilityModel(nn.Module):
    """Gated graph network, gated-sum readout (Li et al. 2016, eq. 7), linear head: (G, 2) logits."""

    def __init__(self, hidden: int, propagation: int) -> None:
        super().__init__()
        self.ggnn = GatedGraphNetwork(hidden, 2, steps=propagation, input_size=2)
        self.readout = GatedSumReadout(hidden, hidden, hidden)
        self.head = nn.Linear(hidden, 2)

    def forward(self, graphs: GraphBatch) -> Tensor:
        h, h0 = self.ggnn(graphs)  # (N, H) each
        return self.head(self.readout(h, h0, graphs))  # (G, 2)


@register_task
class ReachabilityTask(Task):
    """Reachability in random directed graphs (does s reach t?) with a gated graph network; chance 50%."""

    name = "reachability"
    Options = ReachabilityOptions
    unit = "graph"

    def data(self, num_graphs: int, seed: int) -> tuple[GraphBatch, Tensor]:
        """``num_graphs`` graphs from ``seed``, batched with their reverse edges, and their labels (G,)."""
        o = self.options
        d = reachability(num_graphs, o.nodes, mean_degree=o.degree, family=o.family, seed=seed)
        return GraphBatch.from_graphs(d.graphs).add_reverse_edges(), d.labels

    def build_model(self) -> nn.Module:
        return ReachabilityModel(self.options.hidden, self.options.propagation)

    def train_batches(self, batch_size: int, shard: Shard, seed: int) -> SeededBatches:
        o, rows = self.options, shard.rows(batch_size)

        def make(i: int) -> tuple[GraphBatch, Tensor]:
            d = reachability(batch_size, o.nodes, mean_degree=o.degree, family=o.family, seed=derive_seed(seed, i))
            return GraphBatch.from_graphs(d.graphs[rows]).add_reverse_edges(), d.labels[rows]

        return SeededBatches(make)

    def step(self, model: nn.Module, batch, state) -> StepOutput:
        graphs, labels = batch
        logits = model(graphs.to(labels.device))
        return StepOutput(F.cross_entropy(logits, labels), None, labels.shape[0])

    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        seed = VALID_SEED if self.check_split(split) == "valid" else TEST_SEED
        device = next(model.parameters()).device
        total, right, n, ones = 0.0, 0, self.options.eval_size, 0
        for start in range(0, n, 500):
            graphs, labels = self.data(min(500, n - start), derive_seed(seed, start))
            logits = model(graphs.to(device))
            labels = labels.to(device)
            total += float(F.cross_entropy(logits, labels, reduction="sum"))
            right += int((logits.argmax(-1) == labels).sum())
            ones += int(labels.sum())
        return {"loss": total / n, "accuracy": right / n, "majority": max(ones, n - ones) / n}
