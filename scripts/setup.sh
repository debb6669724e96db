#!/usr/bin/env bash
# Create .venv/ with torch, MPI-enabled mpi4py and parallel h5py.
# Idempotent: every step checks before it works, so a second run takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=$VENV/bin/python

need_apt() { ! command -v mpicc >/dev/null || ! pkg-config --exists hdf5-openmpi 2>/dev/null; }
if need_apt; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "[setup] installing Open MPI and parallel HDF5 from Debian"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq openmpi-bin libopenmpi-dev libhdf5-openmpi-dev pkg-config >/dev/null
  else
    echo "[setup] mpicc or hdf5-openmpi missing and apt-get unavailable: load your site's MPI and" \
         "parallel-HDF5 modules (see README, 'Clusters')" >&2
    exit 1
  fi
fi

[ -x "$PY" ] || python3 -m venv "$VENV"
pip() { "$PY" -m pip install -q --disable-pip-version-check "$@"; }
has() { "$PY" -c "$1" >/dev/null 2>&1; }

has "import torch, torchvision, numpy, matplotlib, scipy, pytest" ||
  pip torch==2.14.1 torchvision==0.29.1 numpy matplotlib scipy pytest Cython pkgconfig
has "import mpi4py.MPI" || { echo "[setup] building mpi4py (~3 min)"; pip --no-binary=mpi4py mpi4py; }
has "import h5py, sys; sys.exit(not h5py.get_config().mpi)" || {
  echo "[setup] building parallel h5py (~3 min)"
  HDF5_PKGCONFIG_NAME=${HDF5_PKGCONFIG_NAME:-hdf5-openmpi}
  CC=mpicc HDF5_MPI=ON HDF5_PKGCONFIG_NAME=$HDF5_PKGCONFIG_NAME \
    pip --force-reinstall --no-deps --no-binary=h5py --no-build-isolation h5py
}
"$PY" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e . 2>/dev/null ||
  "$PY" -m pip install -q --disable-pip-version-check --no-deps -e .
"$PY" -c "import h5py, mpi4py, torch; assert h5py.get_config().mpi; print('[setup] ok: torch', torch.__version__, 'h5py', h5py.__version__, '(mpi)', 'mpi4py', mpi4py.__version__)"
# The interactive page (plotly.js ships inside the wheel), and what its tests need: the VTK reader
# for the ParaView files, playwright driving Debian's chromium (no browser download).
has "import plotly" || pip plotly
# HuggingFace transformers: the tests build tiny GPT-2s from configs (nothing is downloaded), and examples/gpt2.py
has "import transformers" || pip transformers
# curvlinops: for the tests only (tests/test_curvature_operators.py compares the GGN and EF products with its
# operators); landscape itself never imports it
has "import curvlinops" || pip curvlinops-for-pytorch
has "import vtkmodules.vtkIOXML, playwright" || pip vtk playwright
if ! command -v chromium >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "[setup] installing chromium for the browser tests"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } ||
    echo "[setup] chromium not installed: the browser tests will be skipped" >&2
fi
