#!/usr/bin/env bash
# One call on a lent GPU machine (the `device` tool): GPU correctness tests, then timings and a
# profile, then (only when .sweep/data.npz was carried) the demo's pretraining search
# (benchmarks/demo_sweep.py). The steps are in order of importance: should the call's limit cut
# the last ones (CUDA graphs, the search), what ran before is already under $OUT. The steps'
# limits add up to 730 s, past the call's 590: they are ceilings for the compilations; the
# times expected on an H200 add up to roughly 500 (an estimate from the 2026-11-26 run, eager
# steps of 0.3 s: no compiled step has been timed on a GPU).
# The machine's image has torch, scikit-learn, scipy, pandas and pytest but not nilearn,
# brainspace or skorch; the package imports without them (they are loaded only when used), and
# the test files below need none of them but test_finetune.py, run only where skorch imports.
# Results land under $OUT.
#
#   run(command="bash benchmarks/device_check.sh", carry=[".wheels"], timeout_s=590)
#
# or in two calls, so that a failed first part leaves device time to mend and rerun it (a
# session has 15 minutes of device time, machine start included; the machine stays warm for
# about 30 s after a call, so the second call must follow at once):
#   run(command="PART=core bash benchmarks/device_check.sh", carry=[".wheels"], timeout_s=400)
#   run(command="PART=levers bash benchmarks/device_check.sh", carry=[".wheels"], timeout_s=...)
# PART=core: the GPU tests, pretraining and embedding eager (with the matmul peak and the
# profile) and compiled, fine-tuning eager (limits 390 s in all); PART=levers: fine-tuning
# compiled, each attention kernel, gradient accumulation, CUDA graphs and the search (limits
# 340 s); PART=all (the default): both, in that order.
#
# BENCH_ARGS is added to every bench_model.py call: a smoke run of the whole script on a CPU,
# before spending device time (the forced cuDNN kernel stops at once there: it needs CUDA;
# nothing else should fail; on a busy CPU raise the steps' limits, e.g. BENCH_S=500
# COMPILE_S=900 FINETUNE_S=500 FINETUNE_COMPILE_S=900 BACKEND_S=300 ACCUMULATION_S=300
# GRAPHS_S=900, or the steps are cut):
#   BENCH_ARGS="--preset tiny --regions 60 --frames 64 --batch 4 --device cpu --peak-size 1024" \
#     bash benchmarks/device_check.sh
set -uo pipefail
PART=${PART:-all}
case "$PART" in
  all|core|levers) ;;
  *) echo "PART must be all, core or levers, got '$PART'" >&2; exit 2 ;;
esac
# whether the steps of part $1 run
part() {
  [ "$PART" = all ] || [ "$PART" = "$1" ]
}
OUT=${OUT:-/tmp/device_out}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PY:-python3}
BENCH="$PY benchmarks/bench_model.py ${BENCH_ARGS:-}"
# torch.compile's kernels in a cache of this run's own. A compilation cut by `timeout` can
# leave a half-written kernel library there, which a later step would load and die on
# ("invalid ELF header"): after a step stopped so, the cache starts afresh.
export TORCHINDUCTOR_CACHE_DIR="$(mktemp -d)"
trap 'rm -rf "$TORCHINDUCTOR_CACHE_DIR"' EXIT
# Each step's limit sends SIGTERM, then SIGKILL KILL_S seconds later: the training loops note a
# SIGTERM and stop only after the step they are in, and a step that is a torch.compile
# compilation ran on past its limit with nothing to end it (a CPU smoke run, 2026-12-06).
limit() {
  timeout -k "${KILL_S:-10}" "$@"
}
fresh_cache_if_cut() {
  if [ "$1" -eq 124 ] || [ "$1" -eq 137 ]; then
    rm -rf "$TORCHINDUCTOR_CACHE_DIR"
    TORCHINDUCTOR_CACHE_DIR="$(mktemp -d)"
  fi
}
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
} 2>&1 | tee "$OUT/device.txt"

# skorch (for the fine-tuning estimators) and its pure-Python dependencies from wheels carried
# in .wheels (the machine has no network):
#   pip download skorch tabulate tqdm --no-deps -d .wheels             # here, before the call
FINETUNE_TESTS=""
if ls .wheels/*.whl > /dev/null 2>&1; then
  # pip's whole output kept: a refusal gives its reason first, before lines of advice
  $PY -m pip install -q --no-index --no-deps .wheels/*.whl 2>&1 | tee "$OUT/wheels.txt" \
    | tail -2
fi
# only where skorch imports: the fine-tuning test file imports it, and an error collecting that
# file would stop pytest before any test ran
if $PY -c "import skorch" > /dev/null 2>&1; then
  FINETUNE_TESTS=tests/test_finetune.py
else
  echo "skorch does not import (pip's output, if wheels were carried: wheels.txt):" \
    "no fine-tuning test or timing" | tee "$OUT/no_finetune.txt"
fi

if part core; then
  # 1. Correctness: every gpu-marked test (bf16 steps, CUDA masks without host syncs, embedder
  #    CPU/GPU agreement and pickling after a CUDA fit, pretrainer on CUDA, fine-tuning on CUDA
  #    when skorch imports). The pretrainer's test runs last: it compiles its step
  #    (compile="auto" on CUDA) into an empty cache, the slowest of them: a cut stops it alone.
  limit "${TEST_S:-90}" $PY -m pytest -q -m gpu -p no:cacheprovider \
    tests/test_masking.py tests/test_training.py tests/test_embed.py $FINETUNE_TESTS \
    tests/test_pretrain.py 2>&1 | tee "$OUT/gpu_tests.txt" | tail -15
  fresh_cache_if_cut $?

  # 2. Timings with their correctness checks (research anchors in benchmarks/README.md), one
  #    JSON line each: base, 450 regions x 160 frames. Eager with the bf16 matmul peak and a
  #    profile of the top kernels, then compiled (static-shape masks: one graph, so a few
  #    warm-up steps cover the compilation), then fine-tuning eager; in part levers,
  #    fine-tuning compiled, then each attention kernel, CUDA graphs.
  limit "${BENCH_S:-100}" $BENCH --what both --steps 20 --warmup 5 --peak \
    --profile "$OUT/profile_eager.txt" 2>&1 | tee -a "$OUT/bench.jsonl" | tail -3
  fresh_cache_if_cut $?
  limit "${COMPILE_S:-140}" $BENCH --what both --steps 20 --warmup 5 \
    --compile 2>&1 | tee -a "$OUT/bench.jsonl" | tail -2
  fresh_cache_if_cut $?
fi
# fine-tuning (BrainJEPAClassifier on skorch, the whole encoder over all 4500 tokens, batch 16),
# eager (part core) then with skorch's compile=True (part levers), when skorch imports
if [ -n "$FINETUNE_TESTS" ] && part core; then
  limit "${FINETUNE_S:-60}" $BENCH --what finetune --steps 10 \
    --warmup 3 2>&1 | tee -a "$OUT/bench.jsonl" | tail -1
  fresh_cache_if_cut $?
fi
if [ -n "$FINETUNE_TESTS" ] && part levers; then
  limit "${FINETUNE_COMPILE_S:-100}" $BENCH --what finetune \
    --steps 10 --warmup 3 --compile 2>&1 | tee -a "$OUT/bench.jsonl" | tail -1
  fresh_cache_if_cut $?
fi
if part levers; then
  for backend in cudnn flash; do
    limit "${BACKEND_S:-40}" $BENCH --what both --steps 10 --warmup 3 \
      --sdpa-backend $backend 2>&1 | tee -a "$OUT/bench.jsonl" | tail -2
    fresh_cache_if_cut $?
  done
  # gradient accumulation: batch 16 as 2 micro-batches of 8 (the activations of 8 in memory)
  limit "${ACCUMULATION_S:-40}" $BENCH --what train --steps 10 \
    --warmup 3 --accumulation-steps 2 2>&1 | tee -a "$OUT/bench.jsonl" | tail -1
  fresh_cache_if_cut $?
  limit "${GRAPHS_S:-120}" $BENCH --what train --steps 20 --warmup 5 \
    --compile --compile-mode reduce-overhead 2>&1 | tee -a "$OUT/bench.jsonl" | tail -1
  fresh_cache_if_cut $?
fi

# 3. Optional, when .sweep/data.npz was carried: the demo's pretraining search, 12 jobs at a time
#    (part levers).
if [ -f .sweep/data.npz ] && part levers; then
  limit "${SWEEP_S:-200}" $PY benchmarks/demo_sweep.py run --data .sweep/data.npz \
    --out "$OUT/sweep.jsonl" --workers 12 --device cuda > "$OUT/sweep.txt" 2>&1
  pkill -f "demo_sweep.py run" ; sleep 2
  $PY benchmarks/demo_sweep.py run --data .sweep/data.npz --out "$OUT/sweep.jsonl" \
    --summary-only 2>&1 | tee -a "$OUT/sweep.txt"
fi
