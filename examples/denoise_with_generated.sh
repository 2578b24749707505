#!/usr/bin/env bash
# Generated galaxies used downstream (Holzschuh et al. 2022): denoisers trained on simulated
# pairs with a share α ∈ {0, 0.5, 1} of *generated* galaxies mixed in, several seeds per α,
# evaluated on the paper's four cases (as given, half resolution, noise ×4, both) with the
# MSE as mean ± std over the seeds.
#
#   bash examples/denoise_with_generated.sh GENERATOR_RUN TRAIN.h5 TEST.h5 OUT_DIR
#
# GENERATOR_RUN  a run that generates images (ddpm, dcgan, cgan...); a conditional run draws
#                its conditions row by row from TRAIN.h5's label columns
# TRAIN.h5       clean simulated galaxies (the simulated training set)
# TEST.h5        clean galaxies to evaluate on (degraded here with another seed)
# Settings (environment): SEEDS="0 1 2", EPOCHS=4, N_GEN (default: as many as TRAIN.h5),
# PSF="gaussian:sigma=1", NOISE=0.02, STEPS (diffusion sampler steps), LIMIT (test images),
# GENERATED (a file of galaxies GENERATOR_RUN already made: used instead of sampling anew),
# PRECISION (the denoisers' --precision, default float32; auto: mixed_bfloat16 where the hardware
# computes in bfloat16, ~1.7× faster on a CPU with AVX512_BF16, many times slower where emulated),
# AUGMENT (the denoisers' --augment, default "dihedral,blur=0.5:2@0.7": flips, quarter turns and
# extra blur of the input, so that they learn to undo more than the training degradation; without
# it a denoiser is worse than none on the shifted cases; "none": off).
#
# α=0 trains on the simulated pairs only, α=0.5 mixes generated pairs in with
# `train-batch --mix --alpha 0.5` (half of the batches, for EPOCHS/2 epochs), α=1 trains on
# generated pairs only (EPOCHS × N_TRAIN / N_GEN epochs): every run takes about the same number
# of steps, and sees about as many images.  The table (robustness.json, .png, and the text
# printed at the end) groups the runs of each α over their seeds.
set -euo pipefail
if [ $# -ne 4 ]; then
  sed -n '2,20p' "$0" >&2
  exit 2
fi
GEN_RUN=$1 TRAIN=$2 TEST=$3 OUT=$4
SEEDS=${SEEDS:-"0 1 2"}
EPOCHS=${EPOCHS:-4}
if [ $((EPOCHS % 2)) -ne 0 ]; then
  echo "EPOCHS must be even (α=0.5 trains EPOCHS/2 epochs of twice as many steps)" >&2
  exit 2
fi
PSF=${PSF:-gaussian:sigma=1}
NOISE=${NOISE:-0.02}
PRECISION=${PRECISION:-float32}
AUGMENT=${AUGMENT:-dihedral,blur=0.5:2@0.7}
mkdir -p "$OUT"/{pairs,runs}
run() { printf '$ %s\n' "$*"; "$@"; }

# what is already in OUT is reused (a rerun resumes): only when it was made the same way
SETTINGS="run=$GEN_RUN train=$TRAIN test=$TEST generated=${GENERATED:-} n_gen=${N_GEN:-} psf=$PSF noise=$NOISE steps=${STEPS:-} epochs=$EPOCHS precision=$PRECISION augment=$AUGMENT"
if [ -e "$OUT/settings.txt" ] && [ "$(cat "$OUT/settings.txt")" != "$SETTINGS" ]; then
  echo "$OUT was made with other settings ($(cat "$OUT/settings.txt")): use another OUT_DIR or delete it" >&2
  exit 1
fi
printf '%s\n' "$SETTINGS" > "$OUT/settings.txt"

N_TRAIN=$(galprep info "$TRAIN" --json --no-scan | python3 -c 'import json,sys; print(json.load(sys.stdin)["n"])')
if [ -n "${GENERATED:-}" ]; then
  ln -sf "$(cd "$(dirname "$GENERATED")" && pwd)/$(basename "$GENERATED")" "$OUT/generated.h5"
  N_GEN=$(galprep info "$GENERATED" --json --no-scan | python3 -c 'import json,sys; print(json.load(sys.stdin)["n"])')
fi
N_GEN=${N_GEN:-$N_TRAIN}
GEN_ARGS=(-n "$N_GEN" --seed 7 -q)
if python3 -c 'import json,sys; sys.exit(not json.load(open(sys.argv[1]))["conditions"])' \
    "$GEN_RUN/config.json" 2>/dev/null; then
  GEN_ARGS+=(--conditions-from "$TRAIN")
fi
[ -n "${STEPS:-}" ] && GEN_ARGS+=(--steps "$STEPS")
[ -e "$OUT/generated.h5" ] || run galprep generate "$GEN_RUN" "${GEN_ARGS[@]}" \
    --montage "$OUT/generated.png" -o "$OUT/generated.h5"

degrade() {  # degrade CLEAN SEED OUT
  [ -e "$3" ] || run galprep degrade "$1" --psf "$PSF" --noise "$NOISE" --seed "$2" -q -o "$3"
}
degrade "$TRAIN" 0 "$OUT/pairs/sim.h5"
degrade "$OUT/generated.h5" 1 "$OUT/pairs/gen.h5"
degrade "$TEST" 2 "$OUT/pairs/test.h5"

GEN_EPOCHS=$(( (EPOCHS * N_TRAIN + N_GEN / 2) / N_GEN ))
GEN_EPOCHS=$(( GEN_EPOCHS < 1 ? 1 : GEN_EPOCHS ))
RUNS=()
for seed in $SEEDS; do
  common=(--model resnet-denoiser --batch-size 32 --seed "$seed" --precision "$PRECISION"
          --augment "$AUGMENT" -q)
  run galprep train-batch "$OUT/pairs/sim.h5" "${common[@]}" --epochs "$EPOCHS" \
      -o "$OUT/runs/alpha0_s$seed"
  run galprep train-batch "$OUT/pairs/sim.h5" --mix "$OUT/pairs/gen.h5" --alpha 0.5 \
      "${common[@]}" --epochs $((EPOCHS / 2)) -o "$OUT/runs/alpha0.5_s$seed"
  run galprep train-batch "$OUT/pairs/gen.h5" "${common[@]}" --epochs "$GEN_EPOCHS" \
      -o "$OUT/runs/alpha1_s$seed"
  RUNS+=("$OUT/runs/alpha0_s$seed" "$OUT/runs/alpha0.5_s$seed" "$OUT/runs/alpha1_s$seed")
done
LIMIT_ARGS=()
[ -n "${LIMIT:-}" ] && LIMIT_ARGS=(--limit "$LIMIT")
run galprep denoise "${RUNS[@]}" "$OUT/pairs/test.h5" --robustness "$OUT/robustness.json" \
    ${LIMIT_ARGS[@]+"${LIMIT_ARGS[@]}"} --overwrite
