#!/usr/bin/env bash
# Everything this kit needs a GPU for, as one prepared call on a lent GPU machine (benchmarks/RESULTS.md
# records what it found). From the repository root, on the GPU machine:
#
#     OUT=/path/to/out bash benchmarks/gpu_session.sh [SECONDS]      # default 540: the whole call's budget
#
# In the order that matters, each step with its own time limit, every result written under $OUT:
#   1. env.txt       the GPU, the driver, the Python packages;
#   2. tests.log     tests/test_gpu.py (sync detector, CPU/GPU agreement, bf16, the trainer on CUDA);
#   3. bench.log     the issue-3 speed target on the GPU: bench_train.py --interleave --profile at 128x128,
#                    batch 8, first compiled with CUDA graphs (mode "reduce-overhead", never measured yet:
#                    the lever RESULTS.md Run 8 left) and plain bf16 + torch.compile (students and the loss's
#                    terms), then fp32 and bf16 eager, bench_losses.py on CUDA, then 512x1024 (the
#                    Cityscapes crop);
#   4. tests_compile.log  the compiled-training test (torch.compile takes a minute or more);
#   5. research.tar.gz  only with RESEARCH_OUT=results/sweeps/NAME (write the round down in
#                    results/sweeps/README.md first): grid workers share the GPU until the budget's end
#                    minus a margin (SIGINT: an unfinished run checkpoints and is left out). The grid's
#                    settings below are item 16's, which ran at commit 699c6c2 (then always on, into
#                    results/sweeps/gpu-mnv2-lr01); edit them for another round, and give it its own folder:
#                    the grid skips finished runs, so an old folder would only grow.
# Needs only what the GPU image has (torch, timm, scikit-image, pandas, pytest): the kit travels as source
# (PYTHONPATH), nothing is installed. PY overrides the interpreter (a dry run on a CPU: PY=.venv/bin/python).
set -u
PY=${PY:-python3}
OUT=${OUT:-gpu-out}
BUDGET=${1:-540}
WORKERS=${WORKERS:-12}
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT"
START=$(date +%s)
left() { echo $((BUDGET - ($(date +%s) - START))); }
stamp() { echo "[$(date -u +%H:%M:%S) +$(($(date +%s) - START))s] $*" | tee -a "$OUT/session.log"; }
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 CI=true

stamp "1. environment"
{
    date -u; git rev-parse HEAD 2>/dev/null; nvidia-smi; nproc; free -g
    "$PY" -c "import sys, torch, timm, numpy; print(sys.version); print('torch', torch.__version__, 'timm', timm.__version__, 'numpy', numpy.__version__); print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no cuda')"
} > "$OUT/env.txt" 2>&1

stamp "2. GPU tests (without the compiled-training one: step 4)"
timeout 150 "$PY" -m pytest tests/test_gpu.py -p no:cacheprovider -q -rA \
    -k "not compiled_training" > "$OUT/tests.log" 2>&1
stamp "   tests exit $? ($(tail -n 1 "$OUT/tests.log"))"

stamp "3. benchmarks"
RESERVE=${RESERVE:-120}  # seconds kept for steps 4-5 whatever the benchmarks take ("OUT=... RESERVE=300" for research)
bench() {  # bench LIMIT_S COMMAND...: one benchmark, its output appended to bench.log
    local limit=$(($(left) - RESERVE))
    [ "$1" -lt "$limit" ] && limit=$1
    if [ "$limit" -lt 20 ]; then stamp "   skipped (time): ${*:2}"; return; fi
    echo "### $(date -u +%H:%M:%S) limit ${limit}s: ${*:2}" >> "$OUT/bench.log"
    timeout "$limit" "${@:2}" >> "$OUT/bench.log" 2>&1
    stamp "   exit $? after: ${*:2}"
}
bench 240 "$PY" benchmarks/bench_train.py --interleave --profile --settings bf16+cudagraphs bf16+compile --steps 21 --warmup 8 --workers 8
bench 90 "$PY" benchmarks/bench_train.py --interleave --profile --settings fp32 bf16 --steps 21 --warmup 5 --workers 8
bench 60 "$PY" benchmarks/bench_losses.py --device cuda --precision bf16 --repeats 21 --warmup 5 --dense --count-ops
bench 60 "$PY" benchmarks/bench_losses.py --device cuda --precision fp32 --repeats 21 --warmup 5
bench 90 "$PY" benchmarks/bench_train.py --interleave --profile --settings bf16 fp32 --size 512 1024 --steps 11 --warmup 3 --workers 8

if [ "$(left)" -gt 60 ]; then
    stamp "4. the compiled-training test"
    limit=$(($(left) - 30)); [ "$limit" -gt 240 ] && limit=240
    timeout "$limit" "$PY" -m pytest tests/test_gpu.py -p no:cacheprovider -q -rA -k compiled_training \
        > "$OUT/tests_compile.log" 2>&1
    stamp "   exit $? ($(tail -n 1 "$OUT/tests_compile.log"))"
fi

GRID=${RESEARCH_OUT:-}
[ -z "$GRID" ] && { stamp "done (no RESEARCH_OUT: no research round)"; exit 0; }
stamp "5. research into $GRID until $((BUDGET - 30)) s"
LIMIT=$(($(left) - 30))
if [ "$LIMIT" -gt 60 ]; then
    for w in $(seq 1 "$WORKERS"); do
        OMP_NUM_THREADS=1 timeout -k 20 -s INT "$LIMIT" "$PY" -m collab_lib.experiments --recipe cpu \
            --configurations independent collab --seeds $(seq 1 60) \
            --set cnn=deeplabv3plus_mobilenetv2 lr_cnn=0.1 steps=1200 eval_interval=300 checkpoint_interval=300 "device=$DEVICE" \
            --out "$GRID" > "$OUT/worker$w.tmp" 2>&1 &
        sleep 2
    done
    wait
fi
finished=$(find "$GRID" -name metrics.json 2>/dev/null | wc -l)
stamp "   research: $finished runs finished"
tail -n 5 "$OUT"/worker*.tmp > "$OUT/workers.log" 2>&1
rm -f "$OUT"/worker*.tmp
tar czf "$OUT/research.tar.gz" --exclude='*.pt' --exclude='grid.lock' "$GRID" 2>/dev/null
stamp "done"
