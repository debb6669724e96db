#!/usr/bin/env bash
# The demo: train a small ResNet-20 for under a minute, then map its 2D filter-normalized loss
# surface with 2 MPI ranks into one parallel HDF5 file, and render the plots and the interactive
# page. No download. The grid is fine (25x25) and each point is evaluated on a fixed 100 images,
# so the surface is smooth and the whole demo stays under 2 minutes on 2 cores.
# The sizes can be shrunk through the environment (the test suite runs a tiny version).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-demo_out}
EPOCHS=${EPOCHS:-3}
POINTS=${POINTS:-25}                     # grid of POINTS x POINTS
SIZE=(${SIZE:-1000 200})                 # synthetic train and test images
export PYTHONPATH=$PWD/lib OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

if [ -d data/cifar10/cifar-10-batches-py ]; then
  DATA=(--dataset cifar10 --datapath data/cifar10)       # the real thing, when present
  EVAL=(--data_split 500)                                # the same 100 training images at every point
else
  DATA=(--dataset synthetic --synthetic_size "${SIZE[@]}")  # built-in CIFAR-shaped data
  EVAL=(--data_split 10)                                 # the same 100 of them at every point
fi
mkdir -p "$OUT"
echo "== 1/2 training resnet20 for $EPOCHS epochs (checkpoints in $OUT/train)"
$PY -m landscape.train --model resnet20 "${DATA[@]}" --epochs "$EPOCHS" --save_epoch 1 --batch_size 32 \
    --lr 0.02 --save "$OUT/train"
echo "== 2/2 ${POINTS}x${POINTS} filter-normalized loss surface with mpirun -n 2"
mpirun -n 2 --oversubscribe $PY plot_surface.py --model resnet20 --model_file "$OUT/train/model_$EPOCHS.t7" \
    "${DATA[@]}" "${EVAL[@]}" --x="-1:1:$POINTS" --y="-1:1:$POINTS" --xnorm filter --ynorm filter \
    --xignore biasbn --yignore biasbn --dir_file "$OUT/directions.h5" --surf_file "$OUT/surface.h5" \
    --progress_secs 5 --plot
echo "== done: results in $OUT/surface.h5, plots in $OUT/surface_*.png and .pdf"
echo "== interactive page (open it in a browser, no network needed): $OUT/surface.html"
