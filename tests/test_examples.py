"""examples/: the transformer's landscape through the API script and through plot_surface.py agree."""
import json
import os

import numpy as np
import pytest

import landscape

from conftest import ROOT, TESTS, python_cmd, run

pytestmark = pytest.mark.slow  # starts processes


def test_transformer_example_api_and_command_line_agree(tmp_path):
    out = tmp_path / "out"
    r = run(python_cmd("examples/transformer_landscape.py", str(out)), cwd=ROOT, TRAIN_STEPS="40", POINTS="3",
            PYTHONPATH=f"{ROOT}/lib:{ROOT}", OMP_NUM_THREADS="1")  # the API keeps torch's threads: one
    assert r.returncode == 0, r.stderr + r.stdout
    assert (out / "transformer_train_loss.png").exists()
    api = landscape.load(str(out / "transformer_api.h5"))
    # The API timed its batch size (auto: the fastest of 64..512 here, so it varies from run to run); the
    # command line takes the same one and one thread too, so both sum every point alike: equal values.
    batch = str(json.loads(api.attrs["surface_settings"])["eval_batch"])
    spec = "examples.transformer"
    r = run(python_cmd("plot_surface.py", "--model", f"{spec}:make_model", "--dataset", f"{spec}:make_data",
                       "--loss", f"{spec}:next_token_loss", "--model_file", str(out / "transformer.t7"),
                       "--dir_file", str(out / "transformer_dirs.h5"), "--surf_file", str(tmp_path / "cli.h5"),
                       "--x=-1:1:3", "--y=-1:1:3", "--test", "--batch_size", batch, "--threads", "1"),
            cwd=ROOT, PYTHONPATH=f"{ROOT}/lib:{ROOT}")
    assert r.returncode == 0, r.stderr + r.stdout
    cli = landscape.load(str(tmp_path / "cli.h5"))
    assert cli.train_acc is None  # (B, T, vocab) outputs: accuracy does not apply
    for name in ("train_loss", "test_loss"):
        np.testing.assert_array_equal(getattr(api, name), getattr(cli, name), err_msg=name)
    # it trained: below a uniform guess over the Zen of Python's 45 characters (ln 45 = 3.81; the untrained
    # model's 4.01); 40 AdamW steps, the same on any CPU, suffice
    assert api.train_loss[1, 1] < np.log(45), api.train_loss


def test_a_bad_loss_flag_is_one_line_and_exit_2(tmp_path, tiny_args):
    for spec, words in (("examples.transformer:nope", "has no attribute"), ("nomodule:f", "cannot import")):
        r = run(python_cmd("plot_surface.py", *tiny_args, "--loss", spec, "--x=0:0:1", "--dir_file",
                           str(tmp_path / "d.h5")), cwd=ROOT, PYTHONPATH=f"{ROOT}/lib:{ROOT}:{TESTS}")
        assert r.returncode == 2 and words in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert not os.listdir(tmp_path)  # neither a direction file nor a results file


def test_gpt2_example_api_and_command_line_agree(tmp_path):
    """The HuggingFace example: the API's surface (keyword inputs, causal_lm) equals plot_surface.py's (token
    ids passed positionally, no mask) within float32 rounding (the all-ones mask may pick another SDPA
    path); its Hessian maps over every parameter and over attention alone ran; it trained."""
    pytest.importorskip("transformers")
    out = tmp_path / "out"
    r = run(python_cmd("examples/gpt2_landscape.py", str(out)), cwd=ROOT, TRAIN_STEPS="40", POINTS="3",
            HESSIAN_POINTS="2", HESSIAN_SAMPLES="8", PYTHONPATH=f"{ROOT}/lib:{ROOT}", OMP_NUM_THREADS="1")
    assert r.returncode == 0, r.stderr + r.stdout
    assert (out / "gpt2_train_loss.png").exists() and (out / "gpt2_hessian.png").exists()
    api = landscape.load(str(out / "gpt2_surface.h5"))
    batch = str(json.loads(api.attrs["surface_settings"])["eval_batch"])
    spec = "examples.gpt2"
    r = run(python_cmd("plot_surface.py", "--model", f"{spec}:make_model", "--dataset", f"{spec}:make_data",
                       "--loss_name", "causal_lm", "--model_file", str(out / "gpt2.t7"),
                       "--dir_file", str(out / "gpt2_dirs.h5"), "--surf_file", str(tmp_path / "cli.h5"),
                       "--x=-1:1:3", "--y=-1:1:3", "--test", "--batch_size", batch, "--threads", "1"),
            cwd=ROOT, PYTHONPATH=f"{ROOT}/lib:{ROOT}")
    assert r.returncode == 0, r.stderr + r.stdout
    cli = landscape.load(str(tmp_path / "cli.h5"))
    for name in ("train_loss", "test_loss", "train_acc"):
        np.testing.assert_allclose(getattr(cli, name), getattr(api, name), rtol=1e-5, err_msg=name)
    for name in ("gpt2_hessian.h5", "gpt2_hessian_attention.h5"):
        assert landscape.load(str(out / name)).complete
    # it trained: below a uniform guess over the Zen of Python's 45 characters (ln 45 = 3.81)
    assert api.train_loss[1, 1] < np.log(45), api.train_loss
