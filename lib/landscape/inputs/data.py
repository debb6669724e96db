"""Data sets as whole tensors: evaluation keeps all of a data set on the device, normalized once.

load_dataset is the entry point. Its spec is one of
  cifar10, cifar100     the official python-pickle layout under datapath (cifar.py)
  synthetic             generated CIFAR-shaped classes, needs no files (synthetic.py)
  FILE.pt, FILE.npz     one (x, y) set, used as the training set (tensor_files.py)
  package.module:func   func(**factory_kwargs) returns (train, test) (tensor_files.py)

Rule for x from files and factories: uint8 x is taken as (N, H, W, 3) images and normalized
like CIFAR-10 (raw=True: only scaled to [0, 1]); floating x is taken as already prepared
inputs, e.g. normalized (N, C, H, W), and other integer x as tokens, both used as they are
(raw=True is refused, it would not apply). Targets may have any shape: integer ones (class
indices, tokens) give num_classes = largest + 1, floating ones (regression) none.
"""
import os
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import DataError
from ..space.losses import IGNORE_INDEX
from .cifar import LAYOUTS, download_cifar, read_cifar
from .synthetic import synthetic_cifar
from .tensor_files import TENSOR_FILE_TYPES, call_data_factory, read_tensor_file

# The reference trainer's constants (pixels scaled to [0, 1] first); checkpoints were trained with them.
CIFAR10_MEAN = tuple(value / 255 for value in (125.3, 123.0, 113.9))
CIFAR10_STD = tuple(value / 255 for value in (63.0, 62.1, 66.7))
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)
# Synthetic data and uint8 files stand in for CIFAR-10, so they share its normalization.
NORMALIZATION = {
    "cifar10": (CIFAR10_MEAN, CIFAR10_STD),
    "cifar100": (CIFAR100_MEAN, CIFAR100_STD),
    "synthetic": (CIFAR10_MEAN, CIFAR10_STD),
    "file": (CIFAR10_MEAN, CIFAR10_STD),
}
DATASET_CHOICES = ("cifar10", "cifar100", "synthetic", "PATH.pt", "PATH.npz", "package.module:function")
DEFAULT_SYNTHETIC_SIZE = (5000, 1000)
SYNTHETIC_CLASSES = 10


@dataclass(eq=False)
class TensorData:
    """A whole data set: x (N, ...) float32 (images (N, C, H, W), features) or int64 (tokens); y (N, ...)
    int64 (class indices, tokens) or float32 (regression targets). num_classes: the class count of
    integer targets (labels are checked against it), None where it has no meaning."""

    x: torch.Tensor
    y: torch.Tensor
    num_classes: int = None

    def __post_init__(self):
        if not isinstance(self.x, torch.Tensor) or self.x.dtype not in (torch.float32, torch.int64) or self.x.ndim < 1:
            raise DataError(f"inputs must be a float32 or int64 tensor (N, ...), got {_describe(self.x)}")
        if not isinstance(self.y, torch.Tensor) or self.y.dtype not in (torch.int64, torch.float32) or self.y.ndim < 1:
            raise DataError(f"targets must be an int64 or float32 tensor (N, ...), got {_describe(self.y)}")
        if self.num_classes is not None and (isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int)
                                             or self.num_classes < 1):
            raise DataError(f"num_classes must be a positive integer, got {self.num_classes!r}")
        if len(self.x) != len(self.y):
            raise DataError(f"{len(self.x)} inputs but {len(self.y)} labels")
        if len(self.y) == 0:
            raise DataError("the data set has no samples")
        if self.num_classes is None or self.y.is_floating_point():
            return
        known = self.y[self.y != IGNORE_INDEX]  # labels that predict nothing (padding of token targets)
        bad = known[(known < 0) | (known >= self.num_classes)]
        if bad.numel():
            raise DataError(f"label {bad[0].item()} is outside [0, {self.num_classes}) "
                            f"({bad.numel()} such labels); pass the right number of classes")

    def __len__(self):
        return len(self.y)

    def __repr__(self):
        return f"TensorData(x={tuple(self.x.shape)} on {self.x.device}, num_classes={self.num_classes})"

    def to(self, device):
        return TensorData(self.x.to(device), self.y.to(device), self.num_classes)


def _describe(value):
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return f"{type(value).__name__} {value.dtype} of shape {tuple(value.shape)}"
    return type(value).__name__


def _labels_tensor(labels):
    labels = torch.as_tensor(labels)
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise DataError(f"labels must be integers, got {_describe(labels)}")
    return labels.to(torch.int64)


def _targets_tensor(targets):
    """Integer targets (class indices, tokens) as int64; floating ones (regression) as float32."""
    targets = torch.as_tensor(targets)
    if targets.is_floating_point():
        targets = targets.to(torch.float32)
        check_finite(targets, "the targets")
        return targets
    return _labels_tensor(targets)


def images_to_tensor(images, labels, mean, std, num_classes, raw=False):
    """uint8 (N, H, W, C) images -> TensorData with x = (pixels / 255 - mean) / std in (N, C, H, W).

    raw=True only scales to [0, 1] (the reference's --raw_data). The float32 arithmetic is the
    same as torchvision's ToTensor + Normalize, so results match the reference bit for bit.
    """
    images = torch.as_tensor(images)
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise DataError(f"images must be uint8 (N, H, W, C), got {_describe(images)}")
    if not raw and not images.shape[3] == len(mean) == len(std):
        raise DataError(f"images must be (N, H, W, C) with C = {len(mean)} channels to match the "
                        f"normalization ({len(std)} stds), got shape {tuple(images.shape)}")
    x = images.permute(0, 3, 1, 2).to(torch.float32, memory_format=torch.contiguous_format).div_(255)
    if not raw:
        x.sub_(torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1))
        x.div_(torch.tensor(std, dtype=torch.float32).view(-1, 1, 1))
    return TensorData(x, _labels_tensor(labels), num_classes)


def arrays_to_tensor_data(x, y, num_classes, raw=False):
    """Apply the module's rule for x (see the module docstring) to one (x, y) pair."""
    x = torch.as_tensor(x)
    if x.dtype == torch.uint8:
        return images_to_tensor(x, y, *NORMALIZATION["file"], num_classes, raw)
    if x.is_complex() or x.dtype == torch.bool:
        raise DataError(f"inputs are {_describe(x)}; give uint8 (N, H, W, 3) images, floating inputs that "
                        f"are already normalized, or integer tokens")
    if raw:
        raise DataError("raw data applies to uint8 images only; other inputs are used as they are")
    x = x.to(torch.float32 if x.is_floating_point() else torch.int64)
    if x.is_floating_point():
        check_finite(x)
    return TensorData(x, _targets_tensor(y), num_classes)


def check_finite(x, what="the inputs"):
    """NaN or inf inputs (also from float64 values too large for float32) would make every point NaN: refuse them."""
    bad = ~torch.isfinite(x)
    count = int(bad.sum())
    if count:
        first = np.unravel_index(int(torch.nonzero(bad.reshape(-1))[0]), tuple(x.shape))
        raise DataError(f"{what} hold {count} non-finite value(s) (NaN or inf after conversion to float32); "
                        f"the first is sample {first[0]}, element {tuple(int(i) for i in first[1:])}")


def load_dataset(spec, datapath=None, *, raw=False, download=False, synthetic_size=DEFAULT_SYNTHETIC_SIZE,
                 num_classes=None, seed=0, factory_kwargs=None):
    """spec (see the module docstring) -> (train: TensorData, test: TensorData or None), on the CPU.

    datapath is used by cifar10/cifar100 only, download too; synthetic_size and seed by
    synthetic only. num_classes defaults to the data set's own (files and factories: largest
    label + 1).
    """
    if download and spec not in LAYOUTS:
        raise DataError(f"--download applies to cifar10 and cifar100 only, not to {spec!r}")
    if spec in LAYOUTS:
        return _load_cifar(spec, datapath, raw, download, num_classes)
    if spec == "synthetic":
        return _load_synthetic(synthetic_size, num_classes, seed, raw)
    if spec.lower().endswith(TENSOR_FILE_TYPES):
        return _from_pairs(spec, [read_tensor_file(spec)], num_classes, raw)[0], None
    if ":" in spec:
        train, test = call_data_factory(spec, factory_kwargs)
        if test is None:
            return _from_pairs(spec, [train], num_classes, raw)[0], None
        return tuple(_from_pairs(spec, [train, test], num_classes, raw))
    raise DataError(f"unknown data set {spec!r}; choose one of {', '.join(DATASET_CHOICES)}")


def data_files(spec, datapath=None):
    """The files load_dataset(spec, datapath) reads (a factory's own files are its business)."""
    if spec in LAYOUTS:
        if datapath is None:
            return []
        layout = LAYOUTS[spec]
        return [os.path.join(datapath, layout.folder, name) for name in layout.train_files + layout.test_files]
    if spec.lower().endswith(TENSOR_FILE_TYPES):
        return [spec]
    return []


def _load_cifar(name, datapath, raw, download, num_classes):
    layout = LAYOUTS[name]
    if datapath is None:
        raise DataError(f"{name} needs --datapath, the folder that contains {layout.folder}/")
    if num_classes is not None and num_classes != layout.num_classes:
        raise DataError(f"{name} has {layout.num_classes} classes, not {num_classes}")
    if download:
        download_cifar(datapath, name)
    train_images, train_labels, test_images, test_labels = read_cifar(datapath, name)
    mean, std = NORMALIZATION[name]
    return (images_to_tensor(train_images, train_labels, mean, std, layout.num_classes, raw),
            images_to_tensor(test_images, test_labels, mean, std, layout.num_classes, raw))


def _load_synthetic(synthetic_size, num_classes, seed, raw):
    if len(synthetic_size) != 2:
        raise DataError(f"synthetic size must be (n_train, n_test), got {synthetic_size!r}")
    classes = SYNTHETIC_CLASSES if num_classes is None else num_classes
    train_images, train_labels, test_images, test_labels = synthetic_cifar(*synthetic_size, classes, seed)
    mean, std = NORMALIZATION["synthetic"]
    return (images_to_tensor(train_images, train_labels, mean, std, classes, raw),
            images_to_tensor(test_images, test_labels, mean, std, classes, raw))


def _from_pairs(source, pairs, num_classes, raw):
    """Convert (x, y) pairs that share one label space; num_classes defaults to their largest label + 1."""
    try:
        targets = [_targets_tensor(y) for _, y in pairs]
        if any(y.numel() == 0 for y in targets):
            raise DataError("the data set has no samples")
        if num_classes is None and not any(y.is_floating_point() for y in targets):
            num_classes = 1 + max(int(y.max()) for y in targets)  # IGNORE_INDEX is below any class
        return [arrays_to_tensor_data(x, y, num_classes, raw) for (x, _), y in zip(pairs, targets)]
    except DataError as e:
        raise DataError(f"{source}: {e}") from e


def select_split(data, k, i):
    """The i-th (from 0) of k contiguous parts (reference --data_split k --split_idx i).

    Part i is samples [i*N//k, (i+1)*N//k): the parts cover the set exactly once and their sizes
    differ by at most one.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise DataError(f"the number of data splits must be a positive integer, got {k!r}")
    if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < k:
        raise DataError(f"split index {i!r} is out of range: with {k} splits it must be in [0, {k})")
    n = len(data)
    start, end = i * n // k, (i + 1) * n // k
    if start == end:
        raise DataError(f"split {i} of {k} of a data set of {n} samples is empty; use at most {n} splits")
    return TensorData(data.x[start:end], data.y[start:end], data.num_classes)


def randomize_labels(data, fraction=1.0, seed=0):
    """Give round(fraction * N) randomly chosen samples a uniformly random label (seeded).

    A new label can equal the old one, so about fraction * (1 - 1/num_classes) of the labels
    change, as in random-label and label-noise experiments.
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 <= fraction <= 1.0:
        raise DataError(f"the fraction of random labels must be in [0, 1], got {fraction!r}")
    generator = torch.Generator().manual_seed(seed)
    count = round(fraction * len(data))
    chosen = torch.randperm(len(data), generator=generator)[:count]
    new_labels = torch.randint(0, data.num_classes, (count,), generator=generator)
    labels = data.y.clone()
    labels[chosen.to(labels.device)] = new_labels.to(labels.device)
    return TensorData(data.x, labels, data.num_classes)
