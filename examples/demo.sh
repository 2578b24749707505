#!/usr/bin/env bash
# The whole galtools pipeline on built-in data, as a user would write it: galprep commands only.
#
#   make demo                 # or: bash examples/demo.sh  (with galprep on PATH)
#   SCALE=4 make demo         # 4× more galaxies and training for a bigger machine
#   DEMO_DIR=/scratch/demo make demo
#
# Writes everything under $DEMO_DIR (default: demo/) and a report, demo/report.md, that links
# every number and picture.  About 10 minutes on 2 CPU cores at SCALE=1.
set -euo pipefail

SCALE=${SCALE:-1}
D=${DEMO_DIR:-demo}
SIZE=${SIZE:-32}                 # stamp side used for training (pixels)
N_TRAIN=${N_TRAIN:-$((4000 * SCALE))}        # simulated disks for the inclination regressor
N_HELD=${N_HELD:-$((600 * SCALE))}          # held-out disks (another seed)
N_KINDS=${N_KINDS:-$((2000 * SCALE))}        # mixed kinds for the classifier and GANs
PASSES=$((8 * SCALE))
export PYTHONWARNINGS=ignore TF_CPP_MIN_LOG_LEVEL=3

if [ -x .venv/bin/galprep ] && ! command -v galprep >/dev/null; then
  export PATH="$PWD/.venv/bin:$PATH"
fi
if [ -e "$D" ] && [ "${DEMO_KEEP:-0}" != 1 ]; then
  rm -rf "$D"
fi
mkdir -p "$D"/{data,prep,runs,results,pictures}

T0=$(date +%s)
step() { printf '\n\033[1m== %s\033[0m  (%ds)\n' "$*" $(( $(date +%s) - T0 )); }
run() { printf '$ %s\n' "$*"; "$@"; }
json() {  # json FILE KEY.PATH → a value from a JSON file (for the report)
  python3 -c 'import json,sys
d=json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."):
    d=d[int(k)] if isinstance(d,list) else d[k]
print(f"{d:.4g}" if isinstance(d,float) else d)' "$1" "$2"
}

# ------------------------------------------------------------------ 1. built-in data
step "1. Simulate labelled galaxies (GalSim) and cut real HST galaxies"
# resolved, disk-dominated galaxies: the inclination task of the SDSS research this mirrors
DISKS=(--size 64 --pixel-scale 0.2 --bands gri --kinds disk --inclination 45:90
       --disk-hlr 1:2.5 --bulge-fraction 0:0.3 --flux 2e4:2e5)
run galprep simulate -n "$N_TRAIN" "${DISKS[@]}" --seed 1 -q -o "$D/data/disks.h5"
run galprep simulate -n "$N_HELD" "${DISKS[@]}" --seed 2 -q -o "$D/data/heldout.h5"
run galprep simulate -n "$N_KINDS" --size "$SIZE" --pixel-scale 0.4 --bands gri \
    --kinds disk:0.4,elliptical:0.25,merger:0.15,star:0.1,artifact:0.1 --seed 3 -q \
    -o "$D/data/kinds.h5"
run galprep cutouts --hubble-deep-field --size "$SIZE" --exclude-stars -q -o "$D/data/hdf.h5"
run galprep info "$D/data/disks.h5" --no-scan
run galprep show "$D/data/disks.h5" -n 25 --caption inclination -o "$D/pictures/disks.png"
run galprep show "$D/data/kinds.h5" -n 25 --random --caption kind -o "$D/pictures/kinds.png"
run galprep show "$D/data/hdf.h5" -n 25 -o "$D/pictures/hdf.png"

# ------------------------------------------------------------------ 2. preparation
step "2. Resize, split, augment to uniform inclination"
run galprep resize "$D/data/disks.h5" --size "$SIZE" --crop 0.75 -q -o "$D/prep/disks.h5"
run galprep resize "$D/data/heldout.h5" --size "$SIZE" --crop 0.75 -q -o "$D/prep/heldout.h5"
run galprep split "$D/prep/disks.h5" --test 0.1 --val 0.1 --seed 0 -q -o "$D/prep/split"
run galprep augment "$D/prep/split/train_000.h5" --uniform inclination --bins 45:90:5 \
    --per-bin $((1200 * SCALE)) --rot90 1 --hflip 0.5 --vflip 0.5 --batches 4 --seed 0 -q \
    -o "$D/prep/augmented"
run galprep info "$D/prep/augmented/batch_000.h5" --no-scan

# ------------------------------------------------------------------ 3. regression
step "3. Train the vgg inclination regressor batch by batch; score the held-out set"
run galprep train-batch "$D"/prep/augmented/batch_*.h5 --val "$D/prep/split/val_000.h5" \
    --model vgg --arch small --target inclination --target-range 45,90 \
    --passes "$PASSES" --batch-size 64 --lr 0.002 --seed 0 -q -o "$D/runs/vgg"
run galprep score "$D/runs/vgg" "$D/prep/split/test_000.h5" --truth inclination \
    --fit-bias "$D/results/bias.json" -q -o "$D/results/test_predictions.csv"
run galprep score "$D/runs/vgg" "$D/prep/heldout.h5" --truth inclination \
    --report "$D/results/heldout_raw.json" -q -o "$D/results/heldout_raw.csv"
run galprep score "$D/runs/vgg" "$D/prep/heldout.h5" --truth inclination \
    --bias-correction "$D/results/bias.json" --report "$D/results/heldout.json" \
    --plot "$D/pictures/heldout_residuals.png" -q -o "$D/results/heldout_predictions.csv"

# ------------------------------------------------------------------ 4. classification
step "4. Classify galaxy kinds"
run galprep split "$D/data/kinds.h5" --test 0.2 --stratify kind --seed 0 -q -o "$D/prep/kinds"
run galprep train-batch "$D/prep/kinds/train_000.h5" --model cnn-classifier --target kind \
    --backbone 16,32 --head 64,relu --epochs $((20 * SCALE)) --batch-size 64 --seed 0 -q \
    -o "$D/runs/classifier"
run galprep score "$D/runs/classifier" "$D/prep/kinds/test_000.h5" --truth kind --top-k 2 \
    --report "$D/results/classifier.json" --confusion "$D/results/confusion.json" \
    --plot "$D/pictures/confusion.png" -q -o "$D/results/classifier_predictions.csv"

# ------------------------------------------------------------------ 5. generation + metrics
step "5. Train GANs, generate galaxies, compare real vs generated"
run galprep train-batch "$D/prep/split/train_000.h5" --model dcgan --width 32 \
    --epochs $((6 * SCALE)) --batch-size 64 --seed 0 -q -o "$D/runs/dcgan"
run galprep generate "$D/runs/dcgan" -n 1000 --seed 1 --montage "$D/pictures/dcgan.png" -q \
    -o "$D/results/generated.h5"
run galprep train-batch "$D/prep/split/train_000.h5" --model cgan \
    --condition inclination,disk_hlr --width 32 --epochs $((6 * SCALE)) --batch-size 64 \
    --seed 0 -q -o "$D/runs/cgan"
run galprep generate "$D/runs/cgan" --conditions-from "$D/prep/split/test_000.h5" --seed 1 \
    --montage "$D/pictures/cgan.png" -q -o "$D/results/cgan_generated.h5"
run galprep metrics "$D/prep/split/test_000.h5" "$D/results/generated.h5" --power --morph \
    --fid --kid --features "run:$D/runs/vgg" --kid-subsets 50 \
    --plots "$D/pictures/metrics" -q -o "$D/results/metrics_dcgan.json"
run galprep metrics "$D/prep/split/test_000.h5" "$D/prep/heldout.h5" --power --morph \
    --fid --kid --features "run:$D/runs/vgg" --kid-subsets 50 \
    -q -o "$D/results/metrics_real_vs_real.json"

# ------------------------------------------------------------------ 6. denoising
step "6. Degrade, train denoisers with and without α-mixing, robustness table"
run galprep degrade "$D/prep/split/train_000.h5" --psf gaussian:sigma=1 --noise 0.02 \
    --seed 0 -q -o "$D/prep/pairs_sim.h5"
run galprep degrade "$D/data/hdf.h5" --psf gaussian:sigma=1 --noise 0.02 --seed 1 -q \
    -o "$D/prep/pairs_hdf.h5"
run galprep degrade "$D/prep/split/test_000.h5" --psf gaussian:sigma=1 --noise 0.02 \
    --seed 2 -q -o "$D/prep/pairs_test.h5"
run galprep train-batch "$D/prep/pairs_sim.h5" --model resnet-denoiser \
    --epochs $((2 * SCALE)) --batch-size 32 --seed 0 -q -o "$D/runs/denoiser"
run galprep train-batch "$D/prep/pairs_sim.h5" --model resnet-denoiser --mix \
    "$D/prep/pairs_hdf.h5" --alpha 0.5 --epochs $((2 * SCALE)) --batch-size 32 --seed 0 -q \
    -o "$D/runs/denoiser_mix"
run galprep denoise "$D/runs/denoiser" "$D/prep/pairs_test.h5" \
    --report "$D/results/denoise.json" -q -o "$D/results/denoised.h5"
run galprep show "$D/results/denoised.h5" -n 16 -o "$D/pictures/denoised.png"
run galprep denoise "$D/runs/denoiser" "$D/runs/denoiser_mix" "$D/prep/pairs_hdf.h5" \
    --robustness "$D/results/robustness.json" --limit 200 -q

# ------------------------------------------------------------------ 7. report
step "7. Report"
WALL=$(( $(date +%s) - T0 ))
R="$D/report.md"
{
  echo "# galtools demo report"
  echo
  echo "SCALE=$SCALE, stamps ${SIZE}×${SIZE}, wall time ${WALL} s on $(nproc) cores."
  echo
  echo "## 1. Data"
  echo "- $N_TRAIN simulated disks (inclination 45–90°), $N_HELD held-out disks (other seed),"
  echo "  $N_KINDS mixed kinds, and $(galprep info "$D/data/hdf.h5" --json --no-scan | python3 -c 'import json,sys; print(json.load(sys.stdin)["n"])') real HST galaxies from the Hubble Deep Field."
  echo "- ![disks](pictures/disks.png) ![kinds](pictures/kinds.png) ![hdf](pictures/hdf.png)"
  echo
  echo "## 2. Preparation"
  echo "Disks resized to ${SIZE}×${SIZE} (crop 0.75), split 80/10/10, and augmented to a uniform"
  echo "inclination distribution (9 bins of 5°) in 4 shuffled batch files of"
  echo "$(galprep info "$D/prep/augmented/batch_000.h5" --json --no-scan | python3 -c 'import json,sys; print(json.load(sys.stdin)["n"])') images each."
  echo
  echo "## 3. Inclination regression (vgg, run \`runs/vgg\`, curves: [curves.png](runs/vgg/curves.png))"
  echo "| set | RMSE (°) | MAE (°) | bias (°) |"
  echo "|---|---|---|---|"
  echo "| held-out, raw | $(json "$D/results/heldout_raw.json" metrics.rmse) | $(json "$D/results/heldout_raw.json" metrics.mae) | $(json "$D/results/heldout_raw.json" metrics.bias) |"
  echo "| held-out, bias-corrected | $(json "$D/results/heldout.json" metrics.rmse) | $(json "$D/results/heldout.json" metrics.mae) | $(json "$D/results/heldout.json" metrics.bias) |"
  echo
  echo "Bias fit on the test split: [bias.json](results/bias.json). ![residuals](pictures/heldout_residuals.png)"
  echo
  echo "## 4. Kind classification (cnn-classifier)"
  echo "Accuracy $(json "$D/results/classifier.json" metrics.accuracy), top-2 $(json "$D/results/classifier.json" metrics.top_k.2)."
  echo "[confusion.json](results/confusion.json) ![confusion](pictures/confusion.png)"
  echo
  echo "## 5. Generated galaxies"
  echo "![dcgan](pictures/dcgan.png) ![cgan](pictures/cgan.png)"
  echo
  echo "| comparison | FID (run features) | KID | power W1 (mean) | morphology W1 (Gini) |"
  echo "|---|---|---|---|---|"
  for m in dcgan real_vs_real; do
    f="$D/results/metrics_$m.json"
    echo "| test vs $m | $(json "$f" metrics.fid.fid) | $(json "$f" metrics.kid.kid) ± $(json "$f" metrics.kid.kid_std) | $(json "$f" metrics.power.mean_wasserstein) | $(json "$f" metrics.morph.wasserstein.gini) |"
  done
  echo
  echo "Plots: [metrics/](pictures/metrics/)"
  echo
  echo "## 6. Denoising"
  echo "MSE before $(json "$D/results/denoise.json" before.mse), after $(json "$D/results/denoise.json" after.mse) (PSNR $(json "$D/results/denoise.json" before.psnr) → $(json "$D/results/denoise.json" after.psnr) dB) on degraded held-out simulated disks."
  echo
  echo "Robustness on degraded real HST galaxies (PSNR in dB; [robustness.json](results/robustness.json)):"
  echo
  echo "| case | no denoising | plain run | α=0.5 mixed with HST |"
  echo "|---|---|---|---|"
  for c in "as given" "half resolution" "noise ×4" "both"; do
    f="$D/results/robustness.json"
    echo "| $c | $(json "$f" "without_denoising.$c.psnr") | $(json "$f" "runs.0.cases.$c.psnr") | $(json "$f" "runs.1.cases.$c.psnr") |"
  done
  echo
  echo "![robustness](results/robustness.png)"
  echo "![denoised](pictures/denoised.png)"
} > "$R"
step "done: $R"
cat "$R"
