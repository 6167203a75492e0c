#!/usr/bin/env bash
# Every GPU figure of docs/performance.md in one run (about 7 minutes on one H200):
#
#   OUT=bench-out bash bench/gpu_check.sh
#
# The machine needs torch, timm, numpy and PIL; fbp's other needs (pydantic) are taken from
# .devdeps/ when missing (`pip install --target .devdeps pydantic` on a machine with an index).
# Each step has its own time limit and writes its own file under $OUT, so a slow step costs
# only its own figures.
set -uo pipefail
OUT=${OUT:-bench-out}
mkdir -p "$OUT"
export FBP_CACHE_DIR=${FBP_CACHE_DIR:-/tmp/fbp-cache}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
python -c "import pydantic" 2>/dev/null || export PYTHONPATH=$PYTHONPATH:$PWD/.devdeps
DATA=/tmp/fbp-bench-faces  # 4000 synthetic faces at 350 px, as JPEG: both pipelines read them

step() {  # step NAME SECONDS COMMAND...: run, keep its output, say how it ended
    local name=$1 limit=$2; shift 2
    local start=$SECONDS
    timeout "$limit" "$@" > "$OUT/$name.txt" 2>&1
    local code=$?
    echo "$name: exit $code after $((SECONDS - start)) s" | tee -a "$OUT/steps.txt"
    grep -v "Warning\|warn(" "$OUT/$name.txt" | tail -n 12
}

nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
python -c "import torch, timm; print('torch', torch.__version__, 'timm', timm.__version__, torch.cuda.get_device_name())" > "$OUT/versions.txt" 2>&1
step data 90 python -c "
from pathlib import Path
from fbp.data.faces import SynthParams, generate
if not (Path('$DATA') / 'manifest.json').exists():
    generate(Path('$DATA'), SynthParams(n=4000, size=350, seed=0))
print('faces ready')"
step throughput 300 python bench/throughput.py --mode gpu --data "$DATA"
step packing 150 python bench/packing.py --mode gpu --data "$DATA"
step precision 90 python bench/precision.py --mode gpu
step packing-graphs 150 python bench/packing.py --mode gpu --data "$DATA" --trials 1,2 --compile reduce-overhead
step predict 150 python bench/predict_speed.py --n 4000 --backbone seresnext50_32x4d --device cuda --batch-size 256 --data "$DATA"
