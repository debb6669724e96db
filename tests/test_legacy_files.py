"""Files written before the packages (tests/data/legacy, made by the previous version's drivers with
`--x=-1.0:1.0:3 --y=-1:1:2`: a surface, then Hessian values with --trace 2 in the same file) resume
as finished, untouched, and today's drivers write the same settings, key for key and value for value
(the grid, typed then as strings, is now recorded as [min, max, num])."""
import hashlib
import json
import os
import shutil

import h5py
import pytest

from landscape.cli import hessian, surface
from landscape.files.resume import in_current_form

LEGACY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "legacy")
COMMON = ["--model", "tiny:make_model", "--dataset", "tiny:make_data", "--model_file", "m.t7", "--dir_file",
          "dirs.h5", "--x=-1.0:1.0:3", "--y=-1:1:2", "--threads", "1", "--progress_secs", "100"]
SURFACE = [*COMMON, "--batch_size", "64"]
HESSIAN = [*COMMON, "--tol", "1e-2", "--max_iter", "8", "--hessian_batch", "48", "--trace", "2"]


@pytest.fixture
def legacy(tmp_path, monkeypatch):
    for name in ("m.t7", "dirs.h5", "surf.h5"):
        shutil.copy(os.path.join(LEGACY, name), tmp_path / name)
    monkeypatch.chdir(tmp_path)  # the direction file records its checkpoint as m.t7
    return tmp_path


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def settings(path, kind):
    with h5py.File(path, "r") as f:
        return json.loads(f.attrs[f"{kind}_settings"])


@pytest.mark.parametrize("driver, flags, kind", [(surface, SURFACE, "surface"), (hessian, HESSIAN, "hessian")])
def test_a_legacy_file_resumes_as_finished_and_untouched(legacy, capsys, driver, flags, kind):
    before = sha(legacy / "surf.h5"), sha(legacy / "dirs.h5")
    assert driver.main([*flags, "--surf_file", "surf.h5"]) == 0
    assert "6/6 points already done" in capsys.readouterr().out
    assert (sha(legacy / "surf.h5"), sha(legacy / "dirs.h5")) == before


@pytest.mark.parametrize("driver, flags, kind", [(surface, SURFACE, "surface"), (hessian, HESSIAN, "hessian")])
def test_todays_settings_are_the_legacy_ones_key_for_key(legacy, driver, flags, kind):
    assert driver.main([*flags, "--surf_file", "new.h5"]) == 0
    old, new = settings(legacy / "surf.h5", kind), settings(legacy / "new.h5", kind)
    added = {"curvature"} if kind == "hessian" else set()  # "hessian" since curvature="ggn"/"ef" exist
    assert sorted(old) == sorted(set(new) - added) and all(new[key] == "hessian" for key in added)
    assert (old["x"], old["y"]) == ("-1.0:1.0:3", "-1:1:2") and (new["x"], new["y"]) == ([-1.0, 1.0, 3], [-1.0, 1.0, 2])
    assert in_current_form(old, new) == new  # the same checkpoint, directions, data and choices


def test_todays_direction_file_has_the_legacy_attributes_and_values(legacy):
    assert surface.main([*SURFACE, "--dir_file", "new_dirs.h5", "--surf_file", "new.h5"]) == 0
    with h5py.File(legacy / "dirs.h5", "r") as old, h5py.File(legacy / "new_dirs.h5", "r") as new:
        assert {k: str(v) for k, v in old.attrs.items()} == {k: str(v) for k, v in new.attrs.items()}
        for group in ("xdirection", "ydirection"):
            assert all((old[group][i][()] == new[group][i][()]).all() for i in old[group])
