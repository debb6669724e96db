"""Checkpoints in every layout the reference code leaves behind load to the same function; bad
files and mismatched architectures fail with errors that name what is wrong."""

import copy
import hashlib
from collections import OrderedDict

import numpy as np
import pytest
import torch

from landscape.errors import CheckpointError, ModelError
from landscape.inputs.checkpoint import file_sha256, load_weights, read_state_dict, save_checkpoint
from landscape.inputs.models import build_model, get_model

BN_COUNTER = "num_batches_tracked"


def randomized_resnet20(seed, num_classes=10):
    """resnet20 whose every parameter and BN statistic is random, so loading must restore them all."""
    generator = torch.Generator().manual_seed(seed)
    model = get_model("resnet20", num_classes=num_classes)
    with torch.no_grad():
        for key, tensor in model.state_dict().items():
            if key.endswith(BN_COUNTER):
                tensor.fill_(seed + 7)
            elif key.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            else:
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.3)
    return model.eval()


@pytest.fixture(scope="module")
def source():
    return randomized_resnet20(seed=1)


@pytest.fixture(scope="module")
def images():
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))


def outputs(model, images):
    with torch.no_grad():
        return model.eval()(images)


def reference_layouts(state_dict):
    """What the reference trainer (and its variants) may have written, by name."""
    without_counters = OrderedDict((k, v) for k, v in state_dict.items() if not k.endswith(BN_COUNTER))
    data_parallel = OrderedDict(("module." + k, v) for k, v in state_dict.items())
    return {
        "bare": state_dict,
        "reference": {"state_dict": state_dict, "acc": 93.1, "epoch": 300},
        "data_parallel": {"state_dict": data_parallel, "acc": 93.1, "epoch": 300},
        "pytorch_0.4": {"state_dict": without_counters, "acc": 93.1, "epoch": 300},
        "numpy_acc": {"state_dict": state_dict, "acc": np.float64(93.1), "epoch": np.int64(300)},
    }


@pytest.mark.parametrize("layout", ["bare", "reference", "data_parallel", "pytorch_0.4", "numpy_acc"])
@pytest.mark.parametrize("legacy_format", [False, True])
def test_reference_layouts_load_to_identical_outputs(tmp_path, source, images, layout, legacy_format):
    path = tmp_path / "model_300.t7"
    torch.save(reference_layouts(source.state_dict())[layout], path,
               _use_new_zipfile_serialization=not legacy_format)
    target = randomized_resnet20(seed=2)
    assert not torch.allclose(outputs(target, images), outputs(source, images))
    assert load_weights(target, path) is target
    assert torch.equal(outputs(target, images), outputs(source, images))
    for key, value in source.state_dict().items():
        if not key.endswith(BN_COUNTER):
            assert torch.equal(target.state_dict()[key], value), key


def test_missing_counters_keep_the_models_own(tmp_path, source):
    path = tmp_path / "old.t7"
    torch.save(reference_layouts(source.state_dict())["pytorch_0.4"], path)
    target = load_weights(randomized_resnet20(seed=2), path)
    assert int(target.bn1.num_batches_tracked) == 2 + 7


def test_in_memory_state_dict_with_prefix_loads(source, images):
    prefixed = OrderedDict(("module." + k, v.clone()) for k, v in source.state_dict().items())
    target = load_weights(randomized_resnet20(seed=2), prefixed)
    assert torch.equal(outputs(target, images), outputs(source, images))


def test_read_state_dict_keeps_order_and_values(tmp_path, source):
    path = tmp_path / "model_10.t7"
    torch.save({"state_dict": source.state_dict(), "acc": 50.0, "epoch": 10}, path)
    loaded = read_state_dict(path)
    assert isinstance(loaded, OrderedDict)
    assert list(loaded) == list(source.state_dict())
    assert all(torch.equal(loaded[k], v) for k, v in source.state_dict().items())


@pytest.mark.parametrize("target_name, num_classes, expected_fragments", [
    ("resnet20_noshort", 10, ["unexpected keys", "layer2.0.shortcut.0.weight"]),
    ("resnet56", 10, ["missing keys", "layer1.3.conv1.weight", "more)"]),
    ("resnet20", 100, ["shape mismatches", "linear.weight", "[10, 64]", "[100, 64]"]),
])
def test_wrong_architecture_names_the_offending_keys(tmp_path, source, target_name, num_classes,
                                                     expected_fragments):
    path = tmp_path / "model_300.t7"
    torch.save({"state_dict": source.state_dict(), "acc": 93.1, "epoch": 300}, path)
    target = get_model(target_name, num_classes=num_classes)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(CheckpointError) as info:
        load_weights(target, path)
    message = str(info.value)
    assert str(path) in message
    for fragment in expected_fragments:
        assert fragment in message
    unchanged = all(torch.equal(target.state_dict()[k], v) for k, v in before.items())
    assert unchanged, "a failed load changed the model"


def test_missing_file_is_named(tmp_path):
    path = tmp_path / "nowhere" / "model_1.t7"
    for call in (lambda: read_state_dict(path), lambda: load_weights(get_model("resnet20"), path)):
        with pytest.raises(CheckpointError, match="not found") as info:
            call()
        assert str(path) in str(info.value)


@pytest.mark.parametrize("content", [b"", b"this is not a checkpoint", b"PK\x03\x04broken zip"])
def test_unreadable_file_is_named(tmp_path, content):
    path = tmp_path / "junk.t7"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="not a readable PyTorch file") as info:
        read_state_dict(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("stored, fragment", [
    ([torch.ones(1)], "holds a list"),
    ({"model": {"w": torch.ones(1)}, "optimizer": {}}, "'model' (dict)"),
    ({"state_dict": {"w": torch.ones(1), "acc": 3.0}}, "'acc' (float)"),
    ({}, "empty"),
])
def test_non_state_dict_contents_rejected(tmp_path, stored, fragment):
    path = tmp_path / "odd.t7"
    torch.save(stored, path)
    with pytest.raises(CheckpointError) as info:
        read_state_dict(path)
    assert str(path) in str(info.value) and fragment in str(info.value)


def test_pickled_objects_need_trust(tmp_path, source, images):
    path = tmp_path / "whole_model.t7"
    torch.save(source, path)
    with pytest.raises(CheckpointError, match="Re-save just its state_dict") as info:
        read_state_dict(path)
    assert "CifarResNet" in str(info.value) and "trusted" not in str(info.value)  # no Python-only option
    with pytest.warns(UserWarning, match="trusted=True"):
        target = load_weights(randomized_resnet20(seed=2), path, trusted=True)
    assert torch.equal(outputs(target, images), outputs(source, images))


def test_save_checkpoint_writes_reference_layout(tmp_path, source, images):
    path = tmp_path / "model_5.t7"
    save_checkpoint(path, torch.nn.DataParallel(copy.deepcopy(source)), epoch=5, acc=torch.tensor(88.5))
    stored = torch.load(path, weights_only=True)
    assert set(stored) == {"state_dict", "acc", "epoch"}
    assert stored["epoch"] == 5 and isinstance(stored["epoch"], int)
    assert stored["acc"] == 88.5 and isinstance(stored["acc"], float)
    assert list(stored["state_dict"]) == list(source.state_dict())
    assert not list(tmp_path.glob("*.partial-*"))
    target = load_weights(randomized_resnet20(seed=2), path)
    assert torch.equal(outputs(target, images), outputs(source, images))


def test_save_checkpoint_reports_unwritable_path(tmp_path, source):
    with pytest.raises(CheckpointError, match="cannot write"):
        save_checkpoint(tmp_path / "no_such_dir" / "model_1.t7", source, epoch=1, acc=10.0)


def test_file_sha256_matches_known_digests(tmp_path):
    small = tmp_path / "abc"
    small.write_bytes(b"abc")
    assert file_sha256(small) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    big = tmp_path / "big"
    data = np.random.default_rng(0).bytes(3 * 2**20 + 17)  # spans several read chunks
    big.write_bytes(data)
    assert file_sha256(big, chunk_bytes=2**20) == hashlib.sha256(data).hexdigest()
    with pytest.raises(CheckpointError, match="missing"):
        file_sha256(tmp_path / "missing")


@pytest.mark.parametrize("spec, kwargs, fragment", [
    ("no_such_package_xyz.models:build", {}, "cannot import module 'no_such_package_xyz.models'"),
    ("landscape.inputs.models:no_such_factory", {}, "has no attribute 'no_such_factory'"),
    ("collections:OrderedDict", {}, "returned an object of type OrderedDict, not a torch.nn.Module"),
    ("torch.nn:Linear", {"bogus": 1}, "failed when called"),
    ("landscape.inputs.models:MODEL_NAMES", {}, "not callable"),
    (":build", {}, "package.module:factory"),
])
def test_custom_factory_errors_name_the_spec(spec, kwargs, fragment):
    with pytest.raises(ModelError) as info:
        build_model(spec, kwargs=kwargs)
    assert repr(spec) in str(info.value) and fragment in str(info.value)
