"""`make demo` runs: the same script, shrunk through its environment knobs."""

import os

import h5py
import pytest

from conftest import ROOT, run

pytestmark = pytest.mark.slow  # starts processes (mpirun or python drivers)


def test_demo_script_trains_maps_and_plots(tmp_path):
    out = tmp_path / "demo"
    r = run(["bash", os.path.join(ROOT, "scripts", "demo.sh")], timeout=400, OUT=str(out), EPOCHS="1",
            POINTS="3", SIZE="64 32")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    with h5py.File(out / "surface.h5", "r") as f:
        assert f["surface_done"][()].all() and f["train_loss"].shape == (3, 3)
        assert f.attrs["surface_provenance"] and '"parallel_hdf5": true' in f.attrs["surface_provenance"]
    for kind in ("2dcontour", "2dcontourf", "2dheat", "3dsurface"):
        assert (out / f"surface_train_loss_{kind}.png").stat().st_size > 0
        assert (out / f"surface_train_loss_{kind}.pdf").stat().st_size > 0
    page = out / "surface.html"
    assert f"interactive page (open it in a browser, no network needed): {page}" in r.stdout
    assert 'id="landscape-data"' in page.read_text()
