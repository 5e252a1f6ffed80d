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

from carousel.train import TrainConfig, Trainer  # noqa: E402
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


if __name__ == "__main__":
    torch.set_num_threads(1)
    out = Path(sys.argv[1])
    for name in TASKS:
        t = train(name, out / f"run-{name}")
        r = t.shard.rank
        save_file({k: v.contiguous() for k, v in t.model.state_dict().items()}, str(out / f"{name}-rank{r}.safetensors"))
        (out / f"{name}-rank{r}.json").write_text(json.dumps({"world": t.shard.world_size, "losses": [h["loss"] for h in t.history]}))
