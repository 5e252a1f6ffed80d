"""carousel's ``GatedGraphNetwork`` beside PyTorch Geometric's ``GatedGraphConv``, one process, interleaved.

PyTorch Geometric is not a carousel dependency; run this where it is importable::

    pip install --no-deps --target /tmp/pyg torch_geometric xxhash tqdm psutil requests urllib3 idna certifi
    PYTHONPATH=/tmp/pyg .venv/bin/python -m benchmarks.ggnn_pyg [--graphs 256] [--hidden 64] [--steps 5]

Both run the same K propagation steps over the same batch with the same weights (one edge type,
no message bias, torch's GRU form, the same ``W`` at every step: PyG's layer allows one per step)
and the script first checks that their node states agree. Printed: the median time of a training
step (forward, ``h.sum()``, backward) and of inference, and the ratio carousel / PyG.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from carousel.data.graphs import reachability
from carousel.structures import GatedGraphNetwork, GraphBatch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ggnn_pyg", description=__doc__.splitlines()[0])
    parser.add_argument("--graphs", type=int, default=256)
    parser.add_argument("--nodes", type=int, default=100, help="largest graph (sizes uniform from half of it)")
    parser.add_argument("--degree", type=float, default=2.0)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)
    from torch_geometric.nn import GatedGraphConv  # noqa: PLC0415  (optional, outside carousel)

    H, K = args.hidden, args.steps
    data = reachability(args.graphs, args.nodes, mean_degree=args.degree, seed=0)
    graphs = GraphBatch.from_graphs(data.graphs)
    torch.manual_seed(0)
    ours = GatedGraphNetwork(H, 1, steps=K, input_size=2, bias=False, gru_variant="torch")
    theirs = GatedGraphConv(H, K, aggr="add")
    with torch.no_grad():
        theirs.weight.copy_(ours.edge_weight[0].t().expand(K, H, H))  # PyG: m = h @ weight[k]
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(theirs.rnn, name).copy_(getattr(ours.cell, name))
    x0 = torch.nn.functional.pad(graphs.x, (0, H - 2))
    edge_index = graphs.edge_index

    def run_ours():
        return ours(graphs).h

    def run_theirs():
        return theirs(x0, edge_index)

    gap = (run_ours() - run_theirs()).abs().max().item()
    print(f"{graphs.num_graphs} graphs, {graphs.num_nodes} nodes, {graphs.num_edges} edges, H={H}, K={K}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; largest |h_carousel - h_pyg| = {gap:.2e}")
    if gap > 1e-4:
        raise SystemExit("the two implementations disagree; no timing")

    def train(f):
        h = f()
        h.sum().backward()

    def infer(f):
        with torch.no_grad():
            f()

    for mode, wrap in (("train", train), ("inference", infer)):
        times = {"carousel": [], "pyg": []}
        for r in range(args.repeats + 2):
            order = [("carousel", run_ours), ("pyg", run_theirs)]
            for name, f in order if r % 2 else order[::-1]:
                start = time.perf_counter()
                wrap(f)
                if r >= 2:  # two warm-up rounds
                    times[name].append(time.perf_counter() - start)
        ours_ms, theirs_ms = (1000 * statistics.median(times[k]) for k in ("carousel", "pyg"))
        print(f"| {mode:9} | carousel {ours_ms:8.2f} ms | PyG {theirs_ms:8.2f} ms | ratio {ours_ms / theirs_ms:5.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
