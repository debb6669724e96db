"""The device, launcher and precision decisions, driven directly with made-up observations."""
import platform

import pytest
import torch

from landscape.errors import DeviceError
from landscape.host import cpu_flags
from landscape.job.devices import (
    CudaState,
    bf16_note,
    choose_device,
    launch_problem,
    launcher_size,
    local_rank_from_env,
    native_bf16,
    sharing_warning,
    tf32_override_warning,
)
from landscape.space.evaluate import evaluate
from landscape.space.losses import loss_function
from landscape.space.precision import (
    check_precision_applies,
    precision_context,
    read_tf32_flags,
    set_tf32_flags,
    strict_fp32,
    tf32_flags_for,
    tf32_mode,
)

# --- the launcher and MPI agree -------------------------------------------------------------------

def test_srun_inside_a_job_announces_its_tasks():
    assert launcher_size({"SLURM_JOB_ID": "7", "SLURM_STEP_NUM_TASKS": "4"}) == ("SLURM_STEP_NUM_TASKS", 4)


def test_a_stray_slurm_variable_outside_a_job_is_ignored():
    assert launcher_size({"SLURM_STEP_NUM_TASKS": "4"}) is None
    assert launch_problem({"SLURM_STEP_NUM_TASKS": "4"}, mpi_size=1) is None


def test_mpirun_inside_an_allocation_wins_over_the_daemons_srun_step():
    # mpirun starts one daemon per node with srun: the ranks inherit that step's task count (2 nodes)
    env = {"SLURM_JOB_ID": "7", "SLURM_STEP_NUM_TASKS": "2", "OMPI_COMM_WORLD_SIZE": "8"}
    assert launcher_size(env) == ("OMPI_COMM_WORLD_SIZE", 8)
    assert launch_problem(env, mpi_size=8) is None


@pytest.mark.parametrize("var", ["PMI_SIZE", "PMIX_SIZE", "MV2_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_SIZE"])
def test_each_launcher_variable_is_compared(var):
    assert launch_problem({var: "3"}, mpi_size=3) is None
    problem = launch_problem({var: "3"}, mpi_size=1)
    assert f"{var}=3" in problem and "world of 1" in problem and "PMI mismatch" in problem


def test_pmi_mismatch_names_both_numbers_and_the_cause():
    problem = launch_problem({"SLURM_JOB_ID": "7", "SLURM_STEP_NUM_TASKS": "4"}, mpi_size=1)
    assert "started 4 tasks" in problem and "world of 1" in problem
    assert "PMI mismatch" in problem and "srun --mpi=pmix" in problem
    assert "\n" not in problem


def test_missing_mpi4py_is_named_as_the_cause():
    problem = launch_problem({"PMI_SIZE": "2"}, mpi_size=1, have_mpi4py=False)
    assert "mpi4py is not installed" in problem


def test_no_launcher_and_one_process_is_fine():
    assert launch_problem({}, mpi_size=1) is None
    assert launch_problem({"OMPI_COMM_WORLD_SIZE": "not a number"}, mpi_size=1) is None


def test_local_rank_from_the_launchers_environment():
    assert local_rank_from_env({"OMPI_COMM_WORLD_LOCAL_RANK": "3", "SLURM_LOCALID": "1"}) == 3
    assert local_rank_from_env({"SLURM_LOCALID": "1"}) == 1
    assert local_rank_from_env({}) == 0


# --- which device -----------------------------------------------------------------------------------

GOOD = CudaState(gpus_on_node=4, hidden=False, torch_cuda="13.0", available=True, count=4)
OLD_DRIVER = CudaState(gpus_on_node=4, hidden=False, torch_cuda="13.0", available=False, count=0,
                       problem="CUDA initialization: The NVIDIA driver on your system is too old")
NO_GPU = CudaState(gpus_on_node=0, hidden=False, torch_cuda="13.0")


def test_each_rank_takes_the_gpu_of_its_local_rank():
    assert [choose_device("auto", GOOD, r) for r in range(6)] == [f"cuda:{i}" for i in (0, 1, 2, 3, 0, 1)]
    assert choose_device("cuda", GOOD, 2) == "cuda:2"


def test_auto_uses_the_cpu_only_where_there_is_no_gpu():
    assert choose_device("auto", NO_GPU, 0) == "cpu"
    assert choose_device("auto", CudaState(4, hidden=True, torch_cuda="13.0"), 0) == "cpu"


@pytest.mark.parametrize("state, why", [
    (OLD_DRIVER, "driver on your system is too old"),
    (CudaState(gpus_on_node=2, hidden=False, torch_cuda=None), "CPU-only build"),
])
def test_present_but_unusable_gpus_are_refused_not_skipped(state, why):
    for requested in ("auto", "cuda"):
        with pytest.raises(DeviceError, match=why) as err:
            choose_device(requested, state, 0)
        assert "--device cpu" in str(err.value)
    assert choose_device("cpu", state, 0) == "cpu"


def test_cuda_without_a_gpu_is_refused():
    with pytest.raises(DeviceError, match="no GPU is visible"):
        choose_device("cuda", NO_GPU, 0)
    with pytest.raises(ValueError, match="--device"):
        choose_device("gpu", GOOD, 0)


def test_more_ranks_than_gpus_warns():
    assert sharing_warning("n1", ["GPU-a", "GPU-b", "GPU-c", "GPU-d"]) is None
    assert sharing_warning("n1", [None, None]) is None  # CPU ranks
    assert "3 ranks on n1 share 2 GPU(s)" in sharing_warning("n1", ["GPU-a", "GPU-b", "GPU-a"])


def test_one_gpu_bound_per_task_is_not_sharing():
    # srun --gpus-per-task=1: each task sees only its own GPU, as cuda:0, but the GPUs differ
    per_task = CudaState(gpus_on_node=4, hidden=False, torch_cuda="13.0", available=True, count=1)
    assert [choose_device("auto", per_task, r) for r in range(4)] == ["cuda:0"] * 4
    assert sharing_warning("n1", ["GPU-a", "GPU-b", "GPU-c", "GPU-d"]) is None


# --- precision -----------------------------------------------------------------------------------

def test_overrides_that_defeat_strict_fp32_are_named():
    assert tf32_override_warning({}, "fp32") is None
    assert tf32_override_warning({"TORCH_ALLOW_TF32_CUBLAS_OVERRIDE": "0"}, "fp32") is None
    assert tf32_override_warning({"NVIDIA_TF32_OVERRIDE": "0"}, "fp32") is None  # forbids TF32: strict holds
    both = tf32_override_warning({"TORCH_ALLOW_TF32_CUBLAS_OVERRIDE": "1", "NVIDIA_TF32_OVERRIDE": "1"}, "fp32")
    assert "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE=1" in both and "NVIDIA_TF32_OVERRIDE=1" in both
    assert "strict fp32" in both


def test_an_override_that_forbids_tf32_is_named_when_tf32_is_asked_for():
    assert "NVIDIA_TF32_OVERRIDE=0" in tf32_override_warning({"NVIDIA_TF32_OVERRIDE": "0"}, "tf32")
    assert tf32_override_warning({"TORCH_ALLOW_TF32_CUBLAS_OVERRIDE": "1"}, "tf32") is None


def test_precision_is_refused_where_it_does_not_apply():
    check_precision_applies("fp32", "cpu")
    check_precision_applies("bf16", "cpu")
    check_precision_applies("tf32", "cuda")
    with pytest.raises(DeviceError, match="NVIDIA GPUs only"):
        check_precision_applies("tf32", "cpu")


@pytest.fixture
def tf32_allowed():
    """TF32 on everywhere, as a user's own code might leave it; the original switches come back after."""
    saved = read_tf32_flags()
    set_tf32_flags(tf32_flags_for(True))
    yield tf32_flags_for(True)
    set_tf32_flags(saved)


def test_strict_fp32_turns_tf32_off_and_restores_the_switches(tf32_allowed):
    with strict_fp32():
        assert read_tf32_flags() == tf32_flags_for(False)
        with tf32_mode(True):
            assert read_tf32_flags() == tf32_flags_for(True)
        assert read_tf32_flags() == tf32_flags_for(False)
    assert read_tf32_flags() == tf32_allowed


def test_strict_fp32_restores_even_after_an_error(tf32_allowed):
    with pytest.raises(ZeroDivisionError), strict_fp32():
        1 / 0
    assert read_tf32_flags() == tf32_allowed


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_evaluation_does_not_flip_the_global_switches(tf32_allowed, precision):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    x, y = torch.randn(8, 3, 2, 2), torch.randint(0, 3, (8,))
    evaluate(model, x, y, loss_function("crossentropy"), 4, precision)
    assert read_tf32_flags() == tf32_allowed
    with precision_context("fp32", x.device):
        assert read_tf32_flags() == tf32_flags_for(False)
    assert read_tf32_flags() == tf32_allowed


# --- binding, with torch.cuda stood in for: the order of the calls is what is tested ----------------

@pytest.fixture
def fake_gpus(monkeypatch):
    """Two usable GPUs as pick_device sees them; returns the list of set_device calls."""
    import landscape.job.mpi as mpi
    bound = []
    monkeypatch.setattr(mpi, "probe_cuda", lambda: CudaState(2, False, "13.0", available=True, count=2))
    monkeypatch.setattr(mpi, "_check_kernels_run", lambda device: None)
    monkeypatch.setattr(mpi, "_gpu_identity", lambda device: f"GPU-{device.index}")
    monkeypatch.setattr(torch.cuda, "set_device", bound.append)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake H200")
    return bound


def test_each_rank_binds_its_gpu_and_says_so(fake_gpus, monkeypatch, capsys):
    from landscape.job.mpi import World, pick_device, ranks_per_gpu
    monkeypatch.setenv("SLURM_LOCALID", "1")
    monkeypatch.setenv("TORCH_ALLOW_TF32_CUBLAS_OVERRIDE", "1")
    world = World(None)
    device = pick_device(world, "auto")
    assert device == torch.device("cuda", 1) and fake_gpus == [device]
    out, err = capsys.readouterr()
    assert out.strip() == f"[rank 0/1] host {platform.node()}, local rank 1, device cuda:1 (Fake H200)"
    assert "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE=1" in err and len(err.strip().splitlines()) == 1
    assert ranks_per_gpu(world, device) == 1


def test_the_gpu_is_bound_before_any_data_or_model_factory_runs(fake_gpus, monkeypatch):
    import landscape.cli.context as context
    from landscape.cli.surface import parser
    from landscape.job.mpi import World

    class Stop(Exception):
        pass

    def load_data(spec, world):
        assert fake_gpus == [torch.device("cuda", 0)]
        raise Stop
    monkeypatch.setattr(context, "load_data", load_data)
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)
    flags = context.read_flags(parser().parse_args(["--model", "tiny:make_model", "--dataset", "tiny:make_data"]))
    with pytest.raises(Stop):
        context.build_context(flags, World(None))


# --- native bf16: the note for fp32 runs -----------------------------------------------------------

def test_native_bf16_is_read_from_the_cpu_flags_and_the_gpus_answer():
    assert native_bf16("cpu", frozenset({"avx2", "amx_tile", "amx_bf16", "avx512_bf16"})) == "amx_bf16, avx512_bf16"
    assert native_bf16("cpu", frozenset({"fp", "asimd", "sve", "bf16"})) == "bf16"  # Arm's BF16 extension
    assert native_bf16("cpu", frozenset({"avx2", "avx512f", "amx_int8", "avx512_fp16"})) is None
    assert native_bf16("cpu", frozenset()) is None  # flags unreadable: no claim
    assert native_bf16("cuda", cuda_bf16=True) and native_bf16("cuda", cuda_bf16=False) is None
    assert native_bf16("mps", frozenset({"bf16"}), True) is None


def test_the_bf16_note_is_one_line_for_fp32_runs_on_native_bf16_only():
    note = bf16_note("fp32", "cpu", "amx_bf16")
    assert note.startswith("note: this CPU has native bf16 (amx_bf16); --precision bf16") and "\n" not in note
    assert note.endswith("fp32 stays the default")
    assert bf16_note("fp32", "cuda", "bf16 tensor cores").startswith("note: this GPU has native bf16")
    assert bf16_note("bf16", "cpu", "amx_bf16") is None and bf16_note("tf32", "cuda", "bf16 tensor cores") is None
    assert bf16_note("fp32", "cpu", None) is None


@pytest.mark.parametrize("text, flags", [
    ("processor\t: 0\nflags\t\t: fpu sse2 avx512_bf16 amx_bf16\n\nprocessor\t: 1\nflags\t\t: fpu\n",
     {"fpu", "sse2", "avx512_bf16", "amx_bf16"}),  # x86: the first processor's line
    ("processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\nCPU implementer\t: 0x41\n", {"fp", "asimd", "bf16", "i8mm"}),
    ("processor\t: 0\nmodel name\t: something\n", set())])
def test_cpu_flags_reads_x86_and_arm_cpuinfo(tmp_path, text, flags):
    (tmp_path / "cpuinfo").write_text(text)
    assert cpu_flags(str(tmp_path / "cpuinfo")) == flags
    assert cpu_flags(str(tmp_path / "absent")) == frozenset()
