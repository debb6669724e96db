"""Data loading: the CIFAR pickle layout, normalization, tensor files, factories, splits, label noise."""
import os
import pickle
import warnings

import numpy as np
import pytest
import torch
import torchvision
import torchvision.transforms as transforms

from landscape.errors import DataError
from landscape.inputs import cifar
from landscape.inputs.cifar import read_cifar, write_cifar
from landscape.inputs.data import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    TensorData,
    images_to_tensor,
    load_dataset,
    randomize_labels,
    select_split,
)
from landscape.inputs.synthetic import synthetic_cifar
from landscape.inputs.tensor_files import call_data_factory, read_tensor_file


def small_set(n_train=23, n_test=7, num_classes=10, seed=1):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, size=(n_train, 32, 32, 3), dtype=np.uint8),
            rng.integers(0, num_classes, size=n_train).astype(np.int64),
            rng.integers(0, 256, size=(n_test, 32, 32, 3), dtype=np.uint8),
            rng.integers(0, num_classes, size=n_test).astype(np.int64))


def read_quietly(root, name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return read_cifar(root, name)


@pytest.mark.parametrize("name,num_classes", [("cifar10", 10), ("cifar100", 100)])
def test_write_then_read_cifar_is_bit_exact(tmp_path, name, num_classes):
    arrays = small_set(num_classes=num_classes)
    write_cifar(tmp_path, name, *arrays)
    for written, read in zip(arrays, read_quietly(tmp_path, name)):
        assert read.dtype == written.dtype
        np.testing.assert_array_equal(read, written)


def test_reads_pickles_with_byte_string_keys(tmp_path):
    # Python-3 writers of the layout often use b'data' / b'labels' keys, like the raw pickles read with encoding='bytes'.
    folder = write_cifar(tmp_path, "cifar10", *small_set(n_train=5, n_test=2))
    images = np.arange(2 * 3072, dtype=np.int64).astype(np.uint8).reshape(2, 3072)
    with open(os.path.join(folder, "test_batch"), "wb") as f:
        pickle.dump({b"data": images, b"labels": [4, 9]}, f, protocol=2)
    _, _, test_images, test_labels = read_quietly(tmp_path, "cifar10")
    assert test_labels.tolist() == [4, 9]
    assert test_images[1, 0, 1, 2] == images[1, 2 * 1024 + 1]  # blue plane, row 0, column 1


def test_cifar_layout_file_names(tmp_path):
    write_cifar(tmp_path, "cifar10", *small_set())
    write_cifar(tmp_path, "cifar100", *small_set(num_classes=100))
    assert sorted(os.listdir(tmp_path / "cifar-10-batches-py")) == [
        "batches.meta", "data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"]
    assert sorted(os.listdir(tmp_path / "cifar-100-python")) == ["meta", "test", "train"]


class UncheckedCIFAR10(torchvision.datasets.CIFAR10):
    # torchvision only accepts the official MD5s; md5=None keeps its existence check and its reader.
    train_list = [[name, None] for name, _ in torchvision.datasets.CIFAR10.train_list]
    test_list = [[name, None] for name, _ in torchvision.datasets.CIFAR10.test_list]
    meta = {**torchvision.datasets.CIFAR10.meta, "md5": None}


class UncheckedCIFAR100(torchvision.datasets.CIFAR100):
    train_list = [[name, None] for name, _ in torchvision.datasets.CIFAR100.train_list]
    test_list = [[name, None] for name, _ in torchvision.datasets.CIFAR100.test_list]
    meta = {**torchvision.datasets.CIFAR100.meta, "md5": None}


@pytest.mark.parametrize("name,reader,num_classes",
                         [("cifar10", UncheckedCIFAR10, 10), ("cifar100", UncheckedCIFAR100, 100)])
def test_written_files_load_in_torchvision(tmp_path, name, reader, num_classes):
    train_images, train_labels, test_images, test_labels = small_set(num_classes=num_classes)
    write_cifar(tmp_path, name, train_images, train_labels, test_images, test_labels)
    train = reader(str(tmp_path), train=True)
    test = reader(str(tmp_path), train=False)
    np.testing.assert_array_equal(train.data, train_images)
    assert train.targets == train_labels.tolist()
    np.testing.assert_array_equal(test.data, test_images)
    assert test.targets == test_labels.tolist()
    assert len(train.classes) == num_classes


def test_md5_mismatch_gives_exactly_one_warning(tmp_path):
    write_cifar(tmp_path, "cifar10", *small_set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        read_cifar(tmp_path, "cifar10")
    assert len(caught) == 1
    assert "differ from the official release" in str(caught[0].message)


def test_official_md5_gives_no_warning(tmp_path, monkeypatch):
    folder = write_cifar(tmp_path, "cifar10", *small_set())
    sums = {name: cifar.file_md5(os.path.join(folder, name)) for name in cifar.OFFICIAL_MD5["cifar10"]}
    monkeypatch.setitem(cifar.OFFICIAL_MD5, "cifar10", sums)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_cifar(tmp_path, "cifar10")


def test_md5_of_known_bytes(tmp_path):
    path = tmp_path / "abc"
    path.write_bytes(b"abc")
    assert cifar.file_md5(path) == "900150983cd24fb0d6963f7d28e17f72"  # RFC 1321 test vector


def test_missing_folder_names_path_and_alternatives(tmp_path):
    with pytest.raises(DataError) as error:
        read_cifar(tmp_path, "cifar10")
    message = str(error.value)
    assert str(tmp_path / "cifar-10-batches-py") in message
    assert "--download" in message and "--dataset synthetic" in message


def test_missing_file_is_named(tmp_path):
    folder = write_cifar(tmp_path, "cifar100", *small_set(num_classes=100))
    os.remove(os.path.join(folder, "test"))
    with pytest.raises(DataError, match=os.path.join(folder, "test")):
        read_cifar(tmp_path, "cifar100")


def test_cifar_needs_datapath_and_known_name(tmp_path):
    with pytest.raises(DataError, match="--datapath"):
        load_dataset("cifar10")
    with pytest.raises(DataError, match="cifar10"):
        read_cifar(tmp_path, "cifar11")


def test_normalization_of_one_pixel_by_hand():
    images = np.zeros((1, 2, 2, 3), dtype=np.uint8)
    images[0, 1, 0] = (200, 10, 255)
    data = images_to_tensor(images, [0], CIFAR10_MEAN, CIFAR10_STD, num_classes=10)
    # (v/255 - m/255) / (s/255) = (v - m) / s with the reference's 0..255 constants
    expected = [(200 - 125.3) / 63.0, (10 - 123.0) / 62.1, (255 - 113.9) / 66.7]
    assert data.x.shape == (1, 3, 2, 2)
    np.testing.assert_allclose(data.x[0, :, 1, 0].numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(data.x[0, 0, 0, 0].item(), -125.3 / 63.0, rtol=1e-6)


def test_normalization_matches_torchvision_bit_for_bit():
    images = small_set(n_train=4)[0]
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize(CIFAR10_MEAN, CIFAR10_STD)])
    expected = torch.stack([transform(image) for image in images])
    data = images_to_tensor(images, [0, 1, 2, 3], CIFAR10_MEAN, CIFAR10_STD, num_classes=10)
    assert data.x.is_contiguous()
    assert torch.equal(data.x, expected)


def test_raw_only_scales_to_unit_interval():
    images = small_set(n_train=3)[0]
    data = images_to_tensor(images, [1, 2, 3], CIFAR10_MEAN, CIFAR10_STD, num_classes=10, raw=True)
    np.testing.assert_allclose(data.x.numpy(), images.transpose(0, 3, 1, 2) / 255.0, rtol=1e-6)


def test_load_cifar100_uses_its_constants(tmp_path):
    arrays = small_set(num_classes=100)
    write_cifar(tmp_path, "cifar100", *arrays)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train, test = load_dataset("cifar100", tmp_path)
    assert (train.num_classes, len(train), len(test)) == (100, 23, 7)
    value = arrays[2][4, 5, 6, 1]
    np.testing.assert_allclose(test.x[4, 1, 5, 6].item(), (value / 255 - 0.4865) / 0.2564, rtol=1e-5)
    assert torch.equal(test.y, torch.from_numpy(arrays[3]))


def test_load_cifar10_wrong_num_classes(tmp_path):
    with pytest.raises(DataError, match="10 classes"):
        load_dataset("cifar10", tmp_path, num_classes=100)


@pytest.mark.parametrize("suffix", [".pt", ".npz"])
def test_tensor_file_round_trip(tmp_path, suffix):
    x = torch.randn(6, 3, 4, 4)
    y = torch.tensor([0, 1, 2, 3, 4, 2])
    path = str(tmp_path / f"set{suffix}")
    if suffix == ".pt":
        torch.save({"x": x, "y": y}, path)
    else:
        np.savez(path, x=x.numpy(), y=y.numpy())
    read_x, read_y = read_tensor_file(path)
    assert torch.equal(torch.as_tensor(read_x), x) and torch.equal(torch.as_tensor(read_y), y)
    train, test = load_dataset(path)
    assert test is None
    assert torch.equal(train.x, x) and torch.equal(train.y, y)
    assert train.num_classes == 5  # largest label + 1
    assert load_dataset(path, num_classes=7)[0].num_classes == 7


def test_uint8_file_is_normalized_like_cifar10(tmp_path):
    images, labels = small_set(n_train=5)[:2]
    path = str(tmp_path / "images.npz")
    np.savez(path, x=images, y=labels)
    train, _ = load_dataset(path, num_classes=10)
    assert torch.equal(train.x, images_to_tensor(images, labels, CIFAR10_MEAN, CIFAR10_STD, 10).x)
    raw, _ = load_dataset(path, num_classes=10, raw=True)
    np.testing.assert_allclose(raw.x.numpy(), images.transpose(0, 3, 1, 2) / 255.0, rtol=1e-6)
    np.savez(path, x=images.astype(np.float32) / 255, y=labels)
    with pytest.raises(DataError, match="raw"):
        load_dataset(path, raw=True)


@pytest.mark.parametrize("suffix", [".pt", ".npz"])
def test_file_without_y(tmp_path, suffix):
    path = str(tmp_path / f"bad{suffix}")
    if suffix == ".pt":
        torch.save({"x": torch.zeros(2, 3, 4, 4), "labels": torch.zeros(2)}, path)
    else:
        np.savez(path, x=np.zeros((2, 3, 4, 4)), labels=np.zeros(2))
    with pytest.raises(DataError) as error:
        read_tensor_file(path)
    assert path in str(error.value) and "'y'" in str(error.value) and "labels" in str(error.value)


def test_tensor_file_bad_extension_and_missing(tmp_path):
    with pytest.raises(DataError, match="unknown data file type"):
        read_tensor_file(str(tmp_path / "set.csv"))
    with pytest.raises(DataError, match="not found"):
        read_tensor_file(str(tmp_path / "absent.pt"))


def test_label_out_of_range_names_value_and_range(tmp_path):
    with pytest.raises(DataError, match=r"label 12 is outside \[0, 10\)"):
        TensorData(torch.zeros(3, 3, 2, 2), torch.tensor([1, 12, 3]), num_classes=10)
    with pytest.raises(DataError, match=r"label -1 is outside \[0, 10\)"):
        TensorData(torch.zeros(2, 3, 2, 2), torch.tensor([-1, 0]), num_classes=10)
    train_images, train_labels, test_images, test_labels = small_set()
    train_labels[3] = 10
    with pytest.raises(DataError, match=r"label 10 is outside \[0, 10\)"):
        write_cifar(tmp_path, "cifar10", train_images, train_labels, test_images, test_labels)
    path = str(tmp_path / "labels.npz")
    np.savez(path, x=np.zeros((2, 1, 2, 2), np.float32), y=np.array([0, 12]))
    with pytest.raises(DataError, match=r"labels.npz: label 12 is outside \[0, 10\)"):
        load_dataset(path, num_classes=10)


def test_tensor_data_checks_lengths_and_types():
    with pytest.raises(DataError, match="3 inputs but 2 labels"):
        TensorData(torch.zeros(3, 1, 2, 2), torch.tensor([0, 1]), num_classes=2)
    with pytest.raises(DataError, match="float32"):
        TensorData(torch.zeros(2, 1, 2, 2, dtype=torch.float64), torch.tensor([0, 1]), num_classes=2)
    with pytest.raises(DataError, match="int64 or float32"):
        TensorData(torch.zeros(2, 1, 2, 2), torch.tensor([0.0, 1.0], dtype=torch.float64), num_classes=2)
    tokens = TensorData(torch.zeros(2, 5, dtype=torch.int64), torch.ones(2, 5, dtype=torch.int64), num_classes=2)
    assert tokens.y.shape == (2, 5)
    assert TensorData(torch.zeros(2, 3), torch.zeros(2, 1)).num_classes is None  # regression targets


FACTORY_MODULE = '''
import torch
from torch.utils.data import TensorDataset

X = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)

def as_tensors(scale=1.0):
    return (X * scale, torch.tensor([0, 3])), (X[:1], torch.tensor([1]))

def as_datasets():
    return TensorDataset(X, torch.tensor([2, 0])), None

def not_a_pair():
    return X
'''


@pytest.fixture
def factory_module(tmp_path, monkeypatch):
    (tmp_path / "landscape_test_factory.py").write_text(FACTORY_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "landscape_test_factory"


def test_factory_returning_tensors(factory_module):
    (train_x, train_y), (test_x, test_y) = call_data_factory(f"{factory_module}:as_tensors", {"scale": 2.0})
    expected = torch.arange(24, dtype=torch.float32).reshape(2, 3, 2, 2)
    assert torch.equal(train_x, 2 * expected) and torch.equal(test_y, torch.tensor([1]))
    train, test = load_dataset(f"{factory_module}:as_tensors")
    assert torch.equal(train.x, expected) and torch.equal(test.x, expected[:1])
    assert train.num_classes == test.num_classes == 4


def test_factory_returning_datasets(factory_module):
    train, test = load_dataset(f"{factory_module}:as_datasets")
    assert test is None
    assert torch.equal(train.x, torch.arange(24, dtype=torch.float32).reshape(2, 3, 2, 2))
    assert torch.equal(train.y, torch.tensor([2, 0])) and train.num_classes == 3


def test_bad_factory_specs(factory_module):
    with pytest.raises(DataError, match="no_such_module_xyz:make"):
        load_dataset("no_such_module_xyz:make")
    with pytest.raises(DataError, match="missing_function"):
        load_dataset(f"{factory_module}:missing_function")
    with pytest.raises(DataError, match=r"\(train, test\)"):
        load_dataset(f"{factory_module}:not_a_pair")
    with pytest.raises(DataError, match="package.module:function"):
        call_data_factory(":make", {})


def test_unknown_spec_lists_choices():
    with pytest.raises(DataError) as error:
        load_dataset("imagenet")
    assert all(choice in str(error.value) for choice in ("cifar10", "cifar100", "synthetic", ".npz"))
    with pytest.raises(DataError, match="--download"):
        load_dataset("synthetic", download=True)


def test_select_split_partitions_exactly():
    data = TensorData(torch.randn(10, 1, 2, 2), torch.arange(10) % 3, num_classes=3)
    parts = [select_split(data, 3, i) for i in range(3)]
    assert [len(part) for part in parts] == [3, 3, 4]
    assert torch.equal(torch.cat([part.x for part in parts]), data.x)
    assert torch.equal(torch.cat([part.y for part in parts]), data.y)
    assert torch.equal(select_split(data, 1, 0).x, data.x)
    for bad_index in (3, -1):
        with pytest.raises(DataError, match="out of range"):
            select_split(data, 3, bad_index)
    with pytest.raises(DataError, match="empty"):
        select_split(data, 11, 0)


def test_randomize_labels_fraction_and_seed():
    n, num_classes = 20000, 10
    data = TensorData(torch.zeros(n, 1, 1, 1), torch.arange(n) % num_classes, num_classes)
    noisy = randomize_labels(data, fraction=0.3, seed=5)
    changed = (noisy.y != data.y).float().mean().item()
    assert abs(changed - 0.3 * (1 - 1 / num_classes)) < 0.015
    assert torch.equal(noisy.y, randomize_labels(data, fraction=0.3, seed=5).y)
    assert not torch.equal(noisy.y, randomize_labels(data, fraction=0.3, seed=6).y)
    assert torch.equal(randomize_labels(data, fraction=0.0).y, data.y)
    assert torch.equal(data.y, torch.arange(n) % num_classes)  # input untouched
    counts = torch.bincount(randomize_labels(data, fraction=1.0).y, minlength=num_classes)
    assert counts.min() > 0.9 * n / num_classes and counts.max() < 1.1 * n / num_classes
    with pytest.raises(DataError, match="fraction"):
        randomize_labels(data, fraction=1.5)


def test_synthetic_is_deterministic_and_cifar_shaped():
    first = synthetic_cifar(40, 20, seed=3)
    for a, b in zip(first, synthetic_cifar(40, 20, seed=3)):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], synthetic_cifar(40, 20, seed=4)[0])
    np.testing.assert_array_equal(first[2], synthetic_cifar(60, 20, seed=3)[2])  # test set ignores n_train
    assert first[0].shape == (40, 32, 32, 3) and first[0].dtype == np.uint8
    assert first[1].dtype == np.int64 and np.bincount(first[1]).tolist() == [4] * 10


def test_synthetic_classes_are_learnable():
    # A nearest-class-mean classifier, much weaker than a CNN, already beats chance (10%) by far.
    train_x, train_y, test_x, test_y = synthetic_cifar(1000, 500, num_classes=10, seed=0)
    train_x, test_x = train_x.reshape(1000, -1).astype(np.float32), test_x.reshape(500, -1).astype(np.float32)
    centroids = np.stack([train_x[train_y == k].mean(0) for k in range(10)])
    distances = ((test_x[:, None, :] - centroids[None]) ** 2).sum(-1)
    assert (distances.argmin(1) == test_y).mean() > 0.5


def test_load_synthetic_and_device_move():
    train, test = load_dataset("synthetic", synthetic_size=(30, 10), num_classes=5, seed=1)
    assert (len(train), len(test), train.num_classes) == (30, 10, 5)
    assert train.x.shape == (30, 3, 32, 32) and train.x.dtype == torch.float32
    assert abs(train.x.mean().item()) < 0.5  # normalized, not raw pixels
    moved = train.to("cpu")
    assert torch.equal(moved.x, train.x) and moved.num_classes == 5
