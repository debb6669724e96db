"""The trainer: checkpoint files in the reference layout, exact resume, augmentation, lr schedule."""

import os

import pytest
import torch

from landscape.cli.train import main
from landscape.inputs.checkpoint import load_weights, read_state_dict
from landscape.inputs.models import get_model
from landscape.job.mpi import World
from landscape.space.precision import read_tf32_flags, set_tf32_flags, tf32_flags_for
from landscape.training.rng import (
    CROP_PADDING,
    augment,
    cuda_rng_for,
    data_generator,
    draw_epoch,
    restore_rng,
    rng_state,
)
from landscape.training.trainer import learning_rate

TINY = ["--model", "resnet20", "--dataset", "synthetic", "--synthetic_size", "64", "32", "--batch_size", "32",
        "--save_epoch", "1", "--lr", "0.05", "--device", "cpu", "--seed", "3"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An uninterrupted 2-epoch run, and the same run stopped after epoch 1 and then resumed."""
    # A module fixture is set up before the autouse one_torch_thread and the trainer keeps torch's thread
    # count, so without this these runs take the count a driver called in-process by an earlier test left
    # (cores/ranks), while the resume in test_resumed_run_equals_uninterrupted_run runs with one thread.
    torch.set_num_threads(1)
    whole = tmp_path_factory.mktemp("whole")
    split = tmp_path_factory.mktemp("split")
    assert main(TINY + ["--epochs", "2", "--save", str(whole)]) == 0
    assert main(TINY + ["--epochs", "1", "--save", str(split)]) == 0
    assert not (split / "model_2.t7").exists()
    return whole, split


def test_checkpoints_in_reference_layout(runs):
    whole, _ = runs
    for epoch in (0, 1, 2):
        record = torch.load(whole / f"model_{epoch}.t7", weights_only=True)
        assert set(record) == {"state_dict", "epoch", "acc"}
        assert record["epoch"] == epoch and 0.0 <= record["acc"] <= 100.0
        load_weights(get_model("resnet20"), str(whole / f"model_{epoch}.t7"))
        opt_state = torch.load(whole / f"opt_state_{epoch}.t7", weights_only=True)
        assert opt_state["epoch"] == epoch and "optimizer" in opt_state
    first = read_state_dict(str(whole / "model_0.t7"))
    last = read_state_dict(str(whole / "model_2.t7"))
    assert not torch.equal(first["conv1.weight"], last["conv1.weight"])  # it did train
    assert len((whole / "log.out").read_text().splitlines()) == 3


def test_resumed_run_equals_uninterrupted_run(runs, capsys):
    whole, split = runs
    assert main(TINY + ["--epochs", "2", "--save", str(split)]) == 0
    assert f"resumed from {os.path.join(str(split), 'model_1.t7')} (epoch 1)" in capsys.readouterr().out
    # Same seed, same CPU thread count, RNG and momentum restored: every float op repeats exactly.
    for epoch in (1, 2):
        expected = read_state_dict(str(whole / f"model_{epoch}.t7"))
        resumed = read_state_dict(str(split / f"model_{epoch}.t7"))
        assert expected.keys() == resumed.keys()
        for key in expected:
            assert torch.equal(expected[key], resumed[key]), (epoch, key)
    expected_opt = torch.load(whole / "opt_state_2.t7", weights_only=True)["optimizer"]["state"]
    resumed_opt = torch.load(split / "opt_state_2.t7", weights_only=True)["optimizer"]["state"]
    assert all(torch.equal(expected_opt[i]["momentum_buffer"], resumed_opt[i]["momentum_buffer"])
               for i in expected_opt)


def test_rerun_after_the_last_epoch_does_nothing(runs, capsys):
    whole, _ = runs
    before = (whole / "model_2.t7").stat().st_mtime_ns
    assert main(TINY + ["--epochs", "2", "--save", str(whole)]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert (whole / "model_2.t7").stat().st_mtime_ns == before


def test_augment_is_a_padded_crop_or_its_mirror():
    draws = draw_epoch(6, data_generator(0, torch.device("cpu")), augmenting=True)
    x = torch.randn(6, 3, 8, 8)
    fill = torch.tensor([-1.0, -2.0, -3.0])
    out = augment(x, draws.shifts, draws.flip, fill)
    padded = fill.view(1, 3, 1, 1).repeat(6, 1, 16, 16)
    padded[:, :, 4:12, 4:12] = x
    for image, result in zip(padded, out):
        candidates = [crop.flip(-1) if flip else crop
                      for r in range(9) for c in range(9) for flip in (False, True)
                      for crop in [image[:, r:r + 8, c:c + 8]]]
        assert any(torch.equal(result, candidate) for candidate in candidates)


def test_learning_rate_steps_after_each_milestone():
    milestones = [150, 225, 275]
    assert learning_rate(150, 0.1, 0.1, milestones) == pytest.approx(0.1)
    assert learning_rate(151, 0.1, 0.1, milestones) == pytest.approx(0.01)
    assert learning_rate(300, 0.1, 0.1, milestones) == pytest.approx(1e-4)


@pytest.mark.parametrize("flags", [["--optimizer", "rmsprop"], ["--momentum", "0"], ["--save_epoch", "0"]])
def test_bad_flags_are_refused(flags, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(TINY + flags + ["--save", str(tmp_path)])
    assert exit_info.value.code == 2
    assert not any(tmp_path.iterdir())


def test_an_epochs_draws_come_at_once_from_the_generator():
    generator = data_generator(5, torch.device("cpu"))
    before = generator.get_state()
    draws = draw_epoch(100, generator, augmenting=True)
    assert sorted(draws.order.tolist()) == list(range(100))
    assert draws.shifts.shape == (100, 2) and 0 <= draws.shifts.min() and draws.shifts.max() <= 2 * CROP_PADDING
    assert 20 < int(draws.flip.sum()) < 80
    generator.set_state(before)  # the saved state replays the epoch exactly
    again = draw_epoch(100, generator, augmenting=True)
    assert torch.equal(again.order, draws.order) and torch.equal(again.shifts, draws.shifts)
    assert draw_epoch(10, generator, augmenting=False).shifts is None


def test_resume_takes_only_this_devices_cuda_state():
    one, two = torch.zeros(3, dtype=torch.uint8), torch.ones(3, dtype=torch.uint8)
    assert cuda_rng_for(one, 5) is one  # this trainer saves the training GPU's state alone
    assert cuda_rng_for([one, two], 1) is two  # older files: one state per GPU, of which ours
    assert cuda_rng_for([one, two], 3) is None  # fewer GPUs saved than this device's index
    assert cuda_rng_for(None, 0) is None


def test_rng_state_saved_on_another_device_is_not_forced_on_this_one():
    cpu = torch.device("cpu")
    state = rng_state(data_generator(1, cpu), cpu)
    assert "cuda_rng" not in state and state["data_rng_device"] == "cpu"
    generator = data_generator(2, cpu)
    assert restore_rng(state, generator, cpu) == []
    assert torch.equal(generator.get_state(), state["data_rng"])
    moved = dict(state, data_rng_device="cuda")
    generator = data_generator(2, cpu)
    warnings = restore_rng(moved, generator, cpu)
    assert len(warnings) == 1 and "resumed on cpu" in warnings[0]
    assert torch.equal(generator.get_state(), data_generator(2, cpu).get_state())


def test_the_local_rank_comes_from_the_launcher(monkeypatch):
    monkeypatch.setenv("SLURM_LOCALID", "2")
    assert World(None).local_rank == 2  # the trainer's --device cuda takes cuda:(2 % GPUs)


def test_cuda_without_a_gpu_is_a_one_line_error(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible here")
    assert main(TINY[:-4] + ["--device", "cuda", "--epochs", "1", "--save", str(tmp_path)]) == 2
    assert "error: --device cuda was asked for but no GPU is visible" in capsys.readouterr().err


def test_evaluation_inside_training_leaves_the_tf32_switches(tmp_path):
    saved = read_tf32_flags()
    set_tf32_flags(tf32_flags_for(True))
    try:
        assert main(TINY + ["--epochs", "1", "--save", str(tmp_path)]) == 0
        assert read_tf32_flags() == tf32_flags_for(True)
    finally:
        set_tf32_flags(saved)


def test_trainer_and_grid_drivers_see_the_same_synthetic_set(monkeypatch):
    """--synthetic_seed picks the data set in both; the trainer's --seed (init, order) does not."""
    from landscape.cli import context, surface
    from landscape.cli import train as train_cli
    from landscape.job.mpi import World
    flags = ["--dataset", "synthetic", "--synthetic_size", "20", "10", "--synthetic_seed", "3"]
    grid_args = surface.parser().parse_args(flags + ["--seed", "5"])
    grid_train, _ = context.load_data(context.read_flags(grid_args).data, World(None))
    seen = {}

    class Asked(Exception):
        pass

    def asked_for_data(*args, **kwargs):  # stop the trainer right after it asked for its data
        seen.update(kwargs)
        raise Asked
    monkeypatch.setattr(train_cli, "load_dataset", asked_for_data)
    with pytest.raises(Asked):
        train_cli.run(train_cli.parse_args(flags + ["--seed", "7", "--save", "unused"]), torch.device("cpu"))
    assert seen["seed"] == 3 and seen["synthetic_size"] == (20, 10)
    from landscape.inputs.data import load_dataset
    assert torch.equal(grid_train.x, load_dataset("synthetic", synthetic_size=(20, 10), seed=3)[0].x)
