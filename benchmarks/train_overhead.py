"""``python -m benchmarks.train_overhead [--smoke]``: what the trainer costs per step over a bare loop.

Both run the same model, batches, Adam and global-norm clipping on the adding problem; the
trainer adds its bookkeeping (guard, pre-clip norm as a float, metrics to JSONL, scheduler,
carried state). Steps alternate between the two (interleaved blocks), and the table gives
medians of per-step times and their ratio trainer / bare loop.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
from torch import nn

from carousel.train import TrainConfig, Trainer
from carousel.train.tasks.adding import AddingOptions, AddingTask


def bare_step(model, optimizer, batch) -> float:
    x, y = batch
    prediction, _ = model(x)
    loss = nn.functional.mse_loss(prediction, y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    return float(loss.detach())


def measure(length: int, hidden: int, batch: int, blocks: int, per_block: int) -> dict[str, float]:
    options = AddingOptions(length=length, hidden=hidden, eval_size=10)
    config = TrainConfig(steps=10**9, batch_size=batch, progress=False, eval_every=0, checkpoint_every=10**9)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(AddingTask(options), config, run_dir=run_dir)
        trainer._restore_rng = None  # noqa: SLF001 - the benchmark drives train_step itself
        from carousel.train.metrics import MetricsLog

        trainer._metrics = MetricsLog(f"{run_dir}/metrics.jsonl")  # noqa: SLF001 - as fit() would
        torch.manual_seed(0)
        bare = AddingTask(options).build_model()
        opt = torch.optim.Adam(bare.parameters(), lr=1e-3)
        batches = AddingTask(options).train_batches(batch, trainer.shard, 0)
        times: dict[str, list[float]] = {"bare loop": [], "trainer": []}
        for _ in range(2):  # warm-up
            bare_step(bare, opt, next(batches))
            trainer.train_step()
        for _ in range(blocks):
            for name in times:
                for _ in range(per_block):
                    start = time.perf_counter()
                    if name == "trainer":
                        trainer.train_step()
                    else:
                        bare_step(bare, opt, next(batches))
                    times[name].append(time.perf_counter() - start)
        trainer._metrics.close()  # noqa: SLF001
    return {name: statistics.median(t) for name, t in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.train_overhead", description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="one tiny size, few steps (CI)")
    args = parser.parse_args(argv)
    sizes = [(10, 8, 4)] if args.smoke else [(10, 16, 8), (50, 64, 32), (100, 128, 64)]
    blocks, per_block = (2, 2) if args.smoke else (15, 10)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; medians of per-step times, {blocks}x{per_block} interleaved\n")
    print("| T | hidden | batch | bare loop (ms) | trainer (ms) | trainer / bare |")
    print("|---|---|---|---|---|---|")
    for T, H, B in sizes:
        m = measure(T, H, B, blocks, per_block)
        print(f"| {T} | {H} | {B} | {m['bare loop'] * 1e3:.2f} | {m['trainer'] * 1e3:.2f} | {m['trainer'] / m['bare loop']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
