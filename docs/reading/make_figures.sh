#!/usr/bin/env bash
# Every figure of docs/READING.md, from nothing: trains the nets on the built-in synthetic set (no download),
# maps them with the project's commands, and shrinks the 300-dpi PNGs the renderer writes to 100 dpi.
# About an hour of one CPU core in all (the Hessian maps are most of it); finished results files are reused.
#   bash docs/reading/make_figures.sh [WORK]          (WORK defaults to reading_out/)
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
W=${1:-reading_out}
FIG=docs/reading
export PYTHONPATH=$PWD/lib OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
SYN=(--dataset synthetic --synthetic_size 10000 1000)
DATA=("${SYN[@]}" --threads 1)   # one thread: the CPU time per image is lowest on a shared machine
EVAL=(--data_split 40)   # the first 250 of the 10,000 training images, the same at every point
mkdir -p "$W"

train() {  # name, folder, batch size
  [ -f "$W/$2/model_3.t7" ] || $PY -m landscape.train --model "$1" "${SYN[@]}" --epochs 3 --batch_size "$3" \
      --lr 0.05 --lr_decay 0.1 --lr_milestones 2 --save_epoch 1 --save "$W/$2"
}
train resnet20 resnet20 64
train resnet20_noshort resnet20_noshort 64

shrink() {  # the renderer saves at 300 dpi; READING.md's figures are 100 dpi, in a 256-colour palette
  $PY -c "import sys; from PIL import Image; im = Image.open(sys.argv[1]).convert('RGB'); \
im.resize((im.width // 3, im.height // 3), Image.LANCZOS).quantize(256).save(sys.argv[2], optimize=True)" "$1" "$2"
}

# 1. filter normalization against a raw and a layer-normalized direction; BN in train mode
$PY docs/reading/api_figures.py "$W" "$FIG" norms
$PY docs/reading/api_figures.py "$W" "$FIG" bn

# 2. skip connections: two 21x21 filter-normalized surfaces along directions of the same seed
for m in resnet20 resnet20_noshort; do
  [ -f "$W/${m}_surface.h5" ] || $PY plot_surface.py --model $m --model_file "$W/$m/model_3.t7" "${DATA[@]}" \
      "${EVAL[@]}" --x=-1:1:21 --y=-1:1:21 --dir_file "$W/${m}_dirs.h5" --surf_file "$W/${m}_surface.h5" \
      --batch_size 250 --plot
  # the same levels, colours and log scale for both (the default levels follow each file's own basin)
  $PY -m landscape.render "$W/${m}_surface.h5" --vmin 0.02 --vmax 20 --log
  shrink "$W/${m}_surface_train_loss_2dcontour_log.png" "$FIG/${m}_surface.png"
done
# the same ResNet-20 surface with the default levels on a linear colour scale (what --plot wrote first)
shrink "$W/resnet20_surface_train_loss_2dcontourf.png" "$FIG/resnet20_surface_linear.png"

# 3. Hessian maps: λmin, λmax and |λmin/λmax| on a 5x5 grid (a surface on that grid first, for the contours)
for m in resnet20 resnet20_noshort; do
  S="$W/${m}_hessian.h5"
  [ -f "$S" ] || $PY plot_surface.py --model $m --model_file "$W/$m/model_3.t7" "${DATA[@]}" "${EVAL[@]}" \
      --x=-1:1:5 --y=-1:1:5 --dir_file "$W/${m}_dirs.h5" --surf_file "$S" --batch_size 250
  $PY plot_hessian_eig.py --model $m --model_file "$W/$m/model_3.t7" "${DATA[@]}" --x=-1:1:5 --y=-1:1:5 \
      --dir_file "$W/${m}_dirs.h5" --surf_file "$S" --hessian_samples 128 --tol 1e-2 --plot
  shrink "${S%.h5}_eig_ratio.png" "$FIG/${m}_eig_ratio.png"
done
# 1D, three points (-1, 0, 1), with the trace and the spectral density
S="$W/resnet20_line.h5"
$PY plot_hessian_eig.py --model resnet20 --model_file "$W/resnet20/model_3.t7" "${DATA[@]}" --x=-1:1:3 \
    --dir_file "$W/resnet20_line_dir.h5" --surf_file "$S" --hessian_samples 128 --tol 1e-2 \
    --trace 8 --density 2/30 --plot
shrink "${S%.h5}_density.png" "$FIG/resnet20_line_density.png"

# 5. a too coarse grid: 5x5 over the same range and directions, drawn with the same levels as the 21x21
S="$W/resnet20_coarse.h5"
[ -f "$S" ] || $PY plot_surface.py --model resnet20 --model_file "$W/resnet20/model_3.t7" "${DATA[@]}" "${EVAL[@]}" \
    --x=-1:1:5 --y=-1:1:5 --dir_file "$W/resnet20_dirs.h5" --surf_file "$S" --batch_size 250
$PY -m landscape.render "$S" --vmin 0.02 --vmax 20 --log
shrink "$W/resnet20_coarse_train_loss_2dcontour_log.png" "$FIG/resnet20_coarse.png"
