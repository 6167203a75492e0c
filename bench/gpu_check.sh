#!/usr/bin/env bash
# Every GPU figure of docs/performance.md in one run that fits one lease of a GPU machine:
#
#   OUT=bench-out bash bench/gpu_check.sh            # one H200: at most 8 minutes (DEADLINE=480)
#   MODE=cpu OUT=bench-out bash bench/gpu_check.sh   # the same steps, small, on the CPU: under 3 minutes
#
# Steps, each under its own limit and all under one DEADLINE (a slow step costs only its own
# figures, and the rest still run): generated faces; training throughput against the
# upstream-style pipeline; evaluation against a bare forward; the train command on the faces;
# export and predict of its models; trials sharing the GPU; bf16 against fp32. At most 8 files
# land in $OUT: steps.txt (the machine, each step's exit and time, its last lines) and one
# <step>.txt each.
#
# The machine needs torch, timm, numpy, pandas, pyarrow, safetensors, PIL and pyyaml. fbp's other
# need, pydantic, comes from wheels carried in the working tree when the machine lacks it:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 \
#       -d .whl pydantic pydantic-core annotated-types typing-inspection typing-extensions
# (.whl/ is git-ignored; the versions of this checkout's environment, so that the two pydantics match).
set -uo pipefail
T0=$SECONDS
MODE=${MODE:-gpu}
OUT=${OUT:-bench-out}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
if ! python3 -c "import pydantic" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --target /tmp/fbp-site .whl/*.whl > /tmp/fbp-pip.txt 2>&1 || cat /tmp/fbp-pip.txt
    export PYTHONPATH=/tmp/fbp-site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 FBP_CACHE_DIR=${FBP_CACHE_DIR:-/tmp/fbp-cache-$MODE}
CLI='import sys; from search.cli import main; sys.exit(main())'
WORK=/tmp/fbp-check-$MODE
DATA=$WORK/faces
if [ "$MODE" = gpu ]; then
    DEADLINE=${DEADLINE:-480}; N=4000; SIDE=350; DEVICE=cuda
    TRAIN=(--set train.epochs=2)
    PACKING=(--trials 1,2 --compile reduce-overhead)
    PREDICT=(--n 4000 --backbone seresnext50_32x4d --device cuda --batch-size 256 --data "$DATA")
else
    DEADLINE=${DEADLINE:-170}; N=512; SIDE=96; DEVICE=cpu
    TRAIN=(--set train.epochs=1 --set train.compile=off --set model.backbone=test_resnet --set data.image_size=32 --set data.folds=[1,2])
    PACKING=(--trials 1,2)
    PREDICT=(--n 128 --large 4 --rounds 1)  # its own 350 px faces: the decode lines need them
fi

step() {  # step NAME LIMIT COMMAND...: under min(LIMIT, the time left), its output in $OUT/NAME.txt
    local name=$1 limit=$2; shift 2
    local left=$((DEADLINE - (SECONDS - T0)))
    [ "$left" -lt "$limit" ] && limit=$left
    if [ "$limit" -lt 10 ]; then echo "== $name: skipped, $left s left of $DEADLINE" | tee -a "$OUT/steps.txt"; return; fi
    local start=$SECONDS
    timeout "$limit" "$@" > "$OUT/$name.txt" 2>&1
    local code=$?
    { echo "== $name: exit $code after $((SECONDS - start)) s (limit $limit)"; grep -v "Warning\|warn(" "$OUT/$name.txt" | tail -n 14; } | tee -a "$OUT/steps.txt"
}

rm -rf "$WORK" && mkdir -p "$WORK"
{
    echo "mode $MODE, deadline $DEADLINE s, $(nproc) cores"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
    python3 -c "import torch, timm, pydantic; print('torch', torch.__version__, 'timm', timm.__version__, 'pydantic', pydantic.__version__, 'cuda', torch.cuda.is_available() and torch.cuda.get_device_name())"
} 2>&1 | tee "$OUT/steps.txt"

step data 60 python3 -c "
from pathlib import Path
from fbp.data.faces import SynthParams, generate
generate(Path('$DATA'), SynthParams(n=$N, size=$SIDE, seed=$([ "$MODE" = gpu ] && echo 0 || echo 36)))
print('$N faces of $SIDE px ready')"
step throughput 150 python3 bench/throughput.py --mode "$MODE" --data "$DATA"
step evaluation 60 python3 bench/evaluation.py --mode "$MODE" --repeats 5
step train 90 python3 -c "$CLI" train studies/paper.yaml --set data.root="$DATA" --set model.pretrained=false "${TRAIN[@]}" --out "$WORK/train"
step predict 100 bash -c "python3 bench/predict_speed.py ${PREDICT[*]} && \
    python3 -c '$CLI' export '$WORK/train' --out '$WORK/model' > /dev/null && \
    time python3 -c '$CLI' predict '$WORK/model' '$DATA/Images' --device $DEVICE --batch-size 256 --out '$WORK/scores.csv' && wc -l '$WORK/scores.csv'"
step packing 80 python3 bench/packing.py --mode "$MODE" --data "$DATA" "${PACKING[@]}"
step precision 60 python3 bench/precision.py --mode "$MODE"
echo "total $((SECONDS - T0)) s of $DEADLINE" | tee -a "$OUT/steps.txt"
