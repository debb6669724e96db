#!/usr/bin/env bash
# One prepared device check: the GPU path end to end, every figure written under $OUT.
#
#   scripts/gpu_check.sh            on a GPU machine (estimated 3-5 minutes on one H100/H200; stops at 7.5)
#   scripts/gpu_check.sh --dry-run  the same steps shrunk, on the CPU (run by the test suite)
#
# Steps: 1 bench/bench_surface.py --gpu; 2 a 2-rank mpirun surface on one GPU against 1 rank;
# 3 a tiny-model Hessian against a dense float64 truth; 4 training (the first epoch timed; a few
# more give a trained point); 5 the fp32/tf32/bf16 loss error and the TF32 HVP error at that
# trained point and at the initial one. A step that fails or lacks what it needs (h5py, mpi4py,
# mpirun) is reported as FAILED/SKIPPED with the reason, and the others still run.
# Python: $PYTHON if set, else the project's .venv when it runs here, else the machine's python3.
# Wheels of missing packages in .whl/ are installed first (an MPI wheel such as mpich brings mpiexec).
# Files in $OUT: gpu_check.md (summary), results.json, gpu_check.log, bench_surface_gpu.md/.png.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
OUT=${OUT:-$ROOT/gpu_check_out}
mkdir -p "$OUT"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
LOG=$OUT/gpu_check.log
: >"$LOG"
rm -f "$OUT/results.json"

if [ -n "${PYTHON:-}" ]; then :
elif "$ROOT/.venv/bin/python" -c "import torch" 2>/dev/null; then PYTHON=$ROOT/.venv/bin/python
else PYTHON=python3
fi
if ls "$ROOT"/.whl/*.whl >/dev/null 2>&1; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$WORK/site" \
    "$ROOT"/.whl/*.whl >>"$LOG" 2>&1 && export PYTHONPATH=$WORK/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$ROOT/lib:$ROOT/tests${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
CHECK=("$PYTHON" "$ROOT/scripts/gpu_check.py" --out "$OUT")

if [ $DRY = 1 ]; then  # shrunk sizes on the CPU; generous limits for a loaded machine
  DEV=cpu SCALE=4 MODEL=tiny:make_model BENCH=(--device cpu --model smallcnn --images 256 --points 1 --ref-points 1)
  SURF=(--model tiny:make_model --dataset tiny:make_data --x=-1:1:3) TRAIN=(--synthetic_size 128 64 --epochs 2)
  PREC=(--synthetic_size 128 64 --samples 128 --hvp_samples 32)
  export OMP_NUM_THREADS=1
else
  DEV=cuda SCALE=1 MODEL=resnet20 BENCH=(--points 20 --ref-points 1)
  SURF=(--model resnet20 --dataset synthetic --synthetic_size 10000 1000 --x=-1:1:11)
  TRAIN=(--synthetic_size 20000 2000 --epochs 8 --lr_milestones 6)
  PREC=(--synthetic_size 20000 2000 --samples 10000 --hvp_samples 1024)
fi

declare -a SUMMARY
DEADLINE=$((SECONDS + 450 * SCALE))  # 7.5 minutes on a GPU, whatever the steps' own limits add up to
say() { echo "[gpu_check] $*" | tee -a "$LOG"; }
step() {  # step NAME SECONDS CMD...: run within its limit and the deadline, log, note the outcome
  local name=$1 limit=$(($2 * SCALE)) t0=$SECONDS rc
  shift 2
  [ $((DEADLINE - SECONDS)) -lt $limit ] && limit=$((DEADLINE - SECONDS))
  if [ $limit -lt 5 ]; then skip "$name" "out of time"; return 1; fi
  say "step $name (limit ${limit}s): $*"
  timeout "$limit" "$@" >>"$LOG" 2>&1
  rc=$?
  if [ $rc = 0 ]; then SUMMARY+=("$name: ok ($((SECONDS - t0)) s)")
  else SUMMARY+=("$name: FAILED (exit $rc after $((SECONDS - t0)) s; see gpu_check.log)"); fi
  say "step $name: exit $rc after $((SECONDS - t0)) s"
  return $rc
}
skip() { SUMMARY+=("$1: SKIPPED ($2)"); say "step $1 SKIPPED: $2"; }
has() { "$PYTHON" -c "import $1" 2>/dev/null; }

say "python $PYTHON; OUT $OUT; dry run $DRY"
"$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'gpus', torch.cuda.device_count())" \
  2>&1 | tee -a "$LOG"
command -v nvidia-smi >/dev/null && nvidia-smi >>"$LOG" 2>&1

# 1: the surface benchmark
step bench_surface 180 "$PYTHON" "$ROOT/bench/bench_surface.py" --gpu "${BENCH[@]}" \
  --doc "$OUT/bench_surface_gpu.md" --plot "$OUT/bench_surface_gpu.png"

# 2: two ranks on one GPU must write what one rank writes
MPIRUN=$(command -v mpirun || command -v mpiexec || ls "$(dirname "$(command -v "$PYTHON")")"/mpiexec \
  "$WORK"/site/bin/mpiexec 2>/dev/null | head -n 1)
if ! has h5py; then skip mpi_surface "h5py is not installed"
elif [ -z "$MPIRUN" ]; then skip mpi_surface "no mpirun/mpiexec on this machine (carry an MPI wheel in .whl)"
elif ! has "mpi4py.MPI"; then skip mpi_surface "mpi4py is missing or cannot load its MPI library"
else
  COMMON=("${SURF[@]}" --device "$DEV" --dir_file "$WORK/dirs.h5" --progress_secs 5)
  step surface_1rank 60 "$PYTHON" "$ROOT/plot_surface.py" "${COMMON[@]}" --surf_file "$WORK/one.h5" &&
  step surface_2ranks 80 "$MPIRUN" -n 2 "$PYTHON" "$ROOT/plot_surface.py" "${COMMON[@]}" --surf_file "$WORK/two.h5" &&
  step compare_surfaces 30 "${CHECK[@]}" surfaces "$WORK/one.h5" "$WORK/two.h5" \
    --ranks_log "$(grep -h '^\[rank [0-9]/2\]\|ranks on .* share' "$LOG" | tr '\n' ';')"
fi

# 3: a tiny model's Hessian on the device against a dense float64 Hessian
if has h5py; then
  step hessian 50 "$PYTHON" "$ROOT/plot_hessian_eig.py" --model tiny:make_model --dataset tiny:make_data \
    --x=0:0:1 --device "$DEV" --tol 1e-6 --max_iter 300 --surf_file "$WORK/hess.h5" --dir_file "$WORK/hdirs.h5" &&
  step compare_hessian 60 "${CHECK[@]}" hessian --surf "$WORK/hess.h5" --device "$DEV"
else skip hessian "h5py is not installed"; fi

# 4: training, the first epoch timed; 5: precision errors at the trained point
if step train 80 "$PYTHON" -m landscape.train --model "$MODEL" --dataset synthetic "${TRAIN[@]}" --batch_size 128 \
     --lr 0.05 --save_epoch 100 --device "$DEV" --save "$WORK/train"; then
  step train_log 20 "${CHECK[@]}" train --log "$WORK/train/log.out"
  LAST=$(ls "$WORK"/train/model_*.t7 | sed 's/.*model_\([0-9]*\)\.t7/\1/' | sort -n | tail -n 1)
  step precision 60 "${CHECK[@]}" precision --model "$MODEL" --device "$DEV" "${PREC[@]}" \
    --checkpoint "$WORK/train/model_$LAST.t7" --init_checkpoint "$WORK/train/model_0.t7"
else skip precision "training failed"; fi

step report 30 "${CHECK[@]}" report
{ echo; echo "## steps"; for line in "${SUMMARY[@]}"; do echo "- $line"; done; } >>"$OUT/gpu_check.md"
say "summary:"; printf '  %s\n' "${SUMMARY[@]}" | tee -a "$LOG"
printf '%s\n' "${SUMMARY[@]}" | grep -q "FAILED" && exit 1
exit 0
