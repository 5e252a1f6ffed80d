"""Run by tests/train/test_distributed.py under ``torchrun --nproc_per_node=2``: the plain training
code, unchanged, then each rank writes its weights and losses for the test to compare."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).parent))

from train_toys import ToyStream, ToyStreamOptions  # noqa: E402

from carousel.train import Hook, TrainConfig, Trainer, latest_checkpoint  # noqa: E402
from carousel.train.tasks.adding import AddingOptions, AddingTask  # noqa: E402

CONFIG = dict(steps=3, batch_size=8, optimizer="sgd", lr=0.5, momentum=0.9, progress=False, eval_every=2, checkpoint_every=2, device="cpu")
TASKS = {
    "adding": lambda: AddingTask(AddingOptions(length=7, hidden=8, layers=2, eval_size=40)),
    "stream": lambda: ToyStream(ToyStreamOptions(bptt=5, bptt_back=8, cell="gru")),
}


def train(name: str, run_dir: Path | None) -> Trainer:
    trainer = Trainer(TASKS[name](), TrainConfig(**CONFIG), run_dir=run_dir)
    trainer.fit()
    return trainer


class Interrupt(Hook):
    def on_step(self, trainer, record):
        if trainer.step == 3:  # after the checkpoint of step 2, before that of step 3
            raise KeyboardInterrupt


def interrupted_and_resumed(name: str, run_dir: Path) -> Trainer:
    """The run of ``train``, interrupted at step 3 on every rank, then resumed from step 2."""
    try:
        Trainer(TASKS[name](), TrainConfig(**CONFIG), run_dir=run_dir, hooks=[Interrupt()]).fit()
    except KeyboardInterrupt:
        pass
    trainer = Trainer(TASKS[name](), TrainConfig(**CONFIG), run_dir=run_dir)
    trainer.load(latest_checkpoint(run_dir / "checkpoints"))
    trainer.fit()
    return trainer


if __name__ == "__main__":
    torch.set_num_threads(1)
    out = Path(sys.argv[1])
    for name in TASKS:
        t = train(name, out / f"run-{name}")
        r = t.shard.rank
        save_file({k: v.contiguous() for k, v in t.model.state_dict().items()}, str(out / f"{name}-rank{r}.safetensors"))
        (out / f"{name}-rank{r}.json").write_text(json.dumps({"world": t.shard.world_size, "losses": [h["loss"] for h in t.history]}))
    t = interrupted_and_resumed("stream", out / "run-stream-resumed")
    save_file({k: v.contiguous() for k, v in t.model.state_dict().items()}, str(out / f"resumed-rank{t.shard.rank}.safetensors"))
    (out / f"resumed-rank{t.shard.rank}.json").write_text(json.dumps({"from": t.history[0]["step"], "losses": [h["loss"] for h in t.history]}))
