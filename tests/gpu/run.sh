#!/bin/bash
# On the lent GPU machine, from the repository root, with carry ["build/gpu-carry"]:
#   bash tests/gpu/run.sh            (figures in $OUT/gpu.json)
# Installs the carried wheels into a folder of their own (nothing of the machine's is
# replaced), then runs tests/gpu/check.py and the GPU tests.  Extra arguments go to check.py
# (--cpu: the same on the CPU, small).
set -u
CARRY=${CARRY:-build/gpu-carry}
OUT=${OUT:-/tmp/galtools-gpu-out}
SITE=${SITE:-/tmp/galtools-gpu-site}
PY=${PY:-python3}
mkdir -p "$OUT"
if [ ! -f "$SITE/.installed" ]; then
    rm -rf "$SITE"
    "$PY" -m pip install --quiet --no-index --no-deps --target "$SITE" "$CARRY"/wheels/*.whl \
        || { echo "installing the carried wheels failed"; exit 2; }
    touch "$SITE/.installed"
fi
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}" KERAS_BACKEND=jax
export GALTOOLS_GPU_CHECK_OUT="$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null \
    | tee "$OUT/nvidia-smi.txt"
timeout "${CHECK_TIMEOUT:-420}" "$PY" tests/gpu/check.py --carry "$CARRY" --out "$OUT/gpu.json" "$@"
status=$?
if "$PY" -c "import pytest" 2>/dev/null; then
    timeout 120 "$PY" -m pytest -q -p no:cacheprovider tests/gpu/test_gpu.py 2>&1 | tail -5
fi
exit $status
