"""scripts/gpu_check.sh --dry-run: every step of the prepared device check runs, shrunk, on the CPU."""
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, env

pytestmark = pytest.mark.slow  # runs the whole check: drivers, mpirun, the trainer, the benchmark


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check")
    r = subprocess.run([os.path.join(ROOT, "scripts", "gpu_check.sh"), "--dry-run"], capture_output=True, text=True,
                       timeout=900, env=env(OUT=str(out), PYTHON=sys.executable,
                                            # the drivers' thread count (their --threads 0): one for the 1-rank
                                            # and the 2-rank surface alike, so they sum every point alike
                                            SLURM_CPUS_PER_TASK="1"))
    return r, out


def test_every_step_passes_and_its_files_are_in_out(dry_run):
    r, out = dry_run
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert sorted(os.listdir(out)) == ["bench_surface_gpu.md", "bench_surface_gpu.png", "gpu_check.log",
                                       "gpu_check.md", "results.json"]
    summary = (out / "gpu_check.md").read_text()
    for step in ("bench_surface", "surface_1rank", "surface_2ranks", "compare_surfaces", "hessian",
                 "compare_hessian", "train", "precision"):
        assert f"- {step}: ok" in summary


def test_the_measured_numbers_are_right_where_a_truth_is_known(dry_run):
    results = json.loads((dry_run[1] / "results.json").read_text())
    hessian = results["hessian"]
    assert hessian["err_max"] < 1e-5 and hessian["err_min"] < 1e-5  # against the dense float64 Hessian
    assert hessian["hvp"]["fp32"] < 1e-5
    surface = results["mpi_surface"]
    assert surface["all_done"] and surface["max_rel_diff_1_vs_2_ranks"] == 0.0  # same arithmetic per point
    assert "[rank 0/2]" in surface["ranks_log"] and "[rank 1/2]" in surface["ranks_log"]
    assert results["train"]["epochs"] == 2 and len(results["train"]["train_loss"]) == 3
    trained = results["precision"]["trained"]
    assert trained["loss"]["fp32"] < 1e-5 and 0 < trained["loss"]["bf16"] < 5e-2
    assert trained["hvp"]["fp32"] < 1e-5
