#!/usr/bin/env bash
# One call on a lent GPU machine (the `device` tool): GPU correctness tests, then timings.
# The machine's image has torch, scikit-learn, scipy, pandas and pytest but not nilearn,
# brainspace or skorch; the package imports without them (they are loaded only when used), and
# the test files below need none of them. Results land under $OUT.
#
#   run(command="bash benchmarks/device_check.sh", timeout_s=540)
set -uo pipefail
OUT=${OUT:-/tmp/device_out}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PY:-python3}
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
} 2>&1 | tee "$OUT/device.txt"

# 1. Correctness: every gpu-marked test (bf16 steps, CUDA masks without host syncs, embedder
#    CPU/GPU agreement and pickling after a CUDA fit, pretrainer on CUDA).
timeout 240 $PY -m pytest -q -m gpu -p no:cacheprovider \
  tests/test_masking.py tests/test_training.py tests/test_embed.py tests/test_pretrain.py \
  2>&1 | tee "$OUT/gpu_tests.txt" | tail -15

# 2. Timings (research anchors in DESIGN.md section 5): base, 450 regions x 160 frames.
for flags in "" "--compile"; do
  timeout 150 $PY benchmarks/bench_model.py --what both --steps 20 --warmup 5 $flags \
    2>&1 | tee -a "$OUT/bench.txt" | tail -8
done
