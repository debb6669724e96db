"""Launch checks before any work, on real drivers: a launcher that disagrees with MPI, rank lines, precision."""

import pytest

from conftest import mpirun_cmd, python_cmd, run

pytestmark = pytest.mark.slow  # starts driver processes

GRID = ["--x=-1:1:3"]


def outputs(tmp_path):
    return sorted(p.name for p in tmp_path.iterdir())


def test_srun_tasks_that_mpi_does_not_see_are_refused(tmp_path, tiny_args):
    r = run(python_cmd("plot_surface.py", *tiny_args, *GRID), cwd=tmp_path,
            SLURM_JOB_ID="42", SLURM_STEP_NUM_TASKS="3")
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "SLURM_STEP_NUM_TASKS=3" in lines[0] and "world of 1" in lines[0] and "PMI mismatch" in lines[0]
    assert outputs(tmp_path) == []  # refused before the direction file or the lock


def test_mpirun_inside_a_slurm_job_is_not_a_false_alarm(tmp_path, tiny_args):
    # mpirun's own count (2) describes the job; the srun step of its daemons (here 3) does not
    r = run(mpirun_cmd(2, "plot_surface.py", *tiny_args, *GRID, "--device", "auto"), cwd=tmp_path,
            SLURM_JOB_ID="42", SLURM_STEP_NUM_TASKS="3")
    assert r.returncode == 0, r.stdout + r.stderr
    both = r.stdout + r.stderr  # mpirun may forward the ranks' lines in any order, even joined
    for rank in (0, 1):
        assert both.count(f"[rank {rank}/2] host ") == 1, both
        assert f"local rank {rank} of 2, device cpu" in both, both


def test_pmi_size_that_disagrees_is_refused(tmp_path, tiny_args):
    r = run(python_cmd("plot_hessian_eig.py", *tiny_args, *GRID), cwd=tmp_path, PMI_SIZE="2")
    assert r.returncode == 2 and "PMI_SIZE=2" in r.stderr and "world of 1" in r.stderr


@pytest.mark.parametrize("script, precision, message", [
    ("plot_hessian_eig.py", "bf16", "unrecognized arguments: --precision bf16"),  # it always runs in strict fp32
    ("plot_surface.py", "tf32", "NVIDIA GPUs only"),
])
def test_precision_is_refused_where_it_does_not_apply(tmp_path, tiny_args, script, precision, message):
    r = run(python_cmd(script, *tiny_args, *GRID, "--precision", precision, "--device", "cpu"), cwd=tmp_path)
    assert r.returncode == 2 and message in r.stderr, r.stdout + r.stderr
    assert outputs(tmp_path) == []  # refused before the direction file, the results file or the lock
