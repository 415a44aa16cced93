#!/usr/bin/env bash
# The GPU measurements of issue 15, as one prepared script (one H100 or H200, about 6 minutes
# of GPU time in all; each step has its own time limit, so one slow step cannot eat the rest).
#
# Prepare once, on a machine with PyPI (the development machine), from the repository root:
#   echo /.whl/ >> .git/info/exclude; ../shared/tools/gpu-wheels.sh
# then run it on the GPU machine from the repository root, with .whl/ copied along (the device
# tool: carry [".whl"]), in two calls that each stay under 10 minutes (7 at most):
#   bash benchmarks/gpu_run.sh A        # ~3 min: training (stage 1 with and without levers, stage 2)
#   bash benchmarks/gpu_run.sh B        # ~3 min: extraction + loader, decoding (bf16, then fp32)
# (no argument: A then B). Every table goes to $OUT/bench.md (default ./gpu-out, or the device
# tool's $OUT) with its command line: append them to docs/benchmarks.md. Logs: $OUT/<step>.log.
#
# What each step measures (docs/benchmarks.md, "Issue 15"):
#   A1 stage 1 through the recipe (Stage1Brain + SpeechBrain fit) with every lever on: bf16
#      autocast, bucket padding to 64 frames, compile_step (CUDA graphs), fused AdamW, pinned
#      memory, deferred host reads; host synchronizations counted per step;
#   A2 the same with the YAML defaults (bf16 autocast only): the baseline of A1;
#   A3 stage 2 with the projector compiled, fused AdamW and the prompt prefix reused (the
#      levers-off figures are those of 2026-12-04, run3: 0.193 s per micro-batch);
#   B1 extraction and the stage-1 loader (8 workers), unchanged here: the --parts total;
#   B2 decoding: static cache + compiled decoding steps, batches of 32 sorted by length, against
#      the dynamic cache on the same batches and one-by-one decoding;
#   B3 decoding in fp32: token identity of the compiled engine with one-by-one decoding.
set -uo pipefail
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || { echo "wheel install failed (see the header)"; exit 1; }
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)

bench() {  # bench NAME TIME_LIMIT_S BENCHMARK_ARGS...
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS
    echo "== $name ($(date -u +%H:%M:%S)): benchmark.py $*"
    timeout "$limit" python3 benchmarks/benchmark.py --device cuda --precision bf16 \
        --append-to "$OUT/bench.md" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    echo "== $name: exit $rc after $((SECONDS - start)) s"
    grep -E "^\| (Recipe|Step alone|Host sync|Micro-batch time|1000 optimizer|Batched|One-by-one|Speedup|Identical|End to end|Epoch 1)" \
        "$OUT/$name.log" || tail -5 "$OUT/$name.log"
}

S1_LEVERS=(--pad-multiple 64 --compile --fused-adamw --pin-memory --deferred-sync --num-workers 8)
for run in "${@:-A B}"; do
    case $run in
    A)
        bench A1-stage1-levers 170 --parts stage1 "${S1_LEVERS[@]}" \
            --note "$GPU, issue 15 set A: stage-1 recipe, every lever on"
        bench A2-stage1-baseline 110 --parts stage1 --num-workers 8 \
            --note "$GPU, issue 15 set A: stage-1 recipe, YAML defaults (bf16 autocast only)"
        bench A3-stage2-levers 140 --parts stage2 --steps 16 --warmup 3 --compile --fused-adamw \
            --reuse-prompt-prefix \
            --note "$GPU, issue 15 set A: stage 2, compiled projector, fused AdamW, prefix reuse"
        ;;
    B)
        bench B1-extract-cache 100 --parts extract cache --num-workers 8 --extract-utterances 96 \
            --note "$GPU, issue 15 set B: extraction and loader, 8 workers"
        bench B2-decode-compiled 170 --parts decode --decode-engine compiled --decode-batch 32 \
            --decode-utterances 64 --decode-single 4 \
            --note "$GPU, issue 15 set B: static cache + compiled decoding, batch 32"
        bench B3-decode-fp32 110 --parts decode --llm-dtype fp32 --decode-engine compiled \
            --decode-batch 8 --decode-utterances 8 --decode-single 8 --max-new-tokens 40 \
            --note "$GPU, issue 15 set B: fp32 token identity of the compiled engine"
        ;;
    *)
        echo "unknown set $run (A or B)"
        ;;
    esac
done
echo "Tables: $OUT/bench.md"
