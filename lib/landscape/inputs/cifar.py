"""CIFAR-10/100 in the official python-pickle layout: read, write, download, checksum.

Arrays here are numpy: images uint8 (N, 32, 32, 3) in HWC order, labels int64 (N,).
Turning them into normalized tensors is data.images_to_tensor's job.
"""
import hashlib
import os
import pickle
import warnings
from dataclasses import dataclass

import numpy as np

from ..errors import DataError

IMAGE_SHAPE = (32, 32, 3)
PIXELS_PER_IMAGE = 32 * 32 * 3


@dataclass(frozen=True)
class CifarLayout:
    title: str
    folder: str
    archive: str
    train_files: tuple
    test_files: tuple
    meta_file: str
    label_key: str
    label_names_key: str
    num_classes: int


LAYOUTS = {
    "cifar10": CifarLayout(
        title="CIFAR-10", folder="cifar-10-batches-py", archive="cifar-10-python.tar.gz",
        train_files=tuple(f"data_batch_{i}" for i in range(1, 6)), test_files=("test_batch",),
        meta_file="batches.meta", label_key="labels", label_names_key="label_names", num_classes=10),
    "cifar100": CifarLayout(
        title="CIFAR-100", folder="cifar-100-python", archive="cifar-100-python.tar.gz",
        train_files=("train",), test_files=("test",),
        meta_file="meta", label_key="fine_labels", label_names_key="fine_label_names", num_classes=100),
}

# MD5 sums of the files in the official archives (the same table torchvision checks).
OFFICIAL_MD5 = {
    "cifar10": {
        "data_batch_1": "c99cafc152244af753f735de768cd75f",
        "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
        "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
        "data_batch_4": "634d18415352ddfa80567beed471001a",
        "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
        "test_batch": "40351d587109b95175f43aff81a1287e",
    },
    "cifar100": {
        "train": "16019d7e3df5f24257cddd939b257f8d",
        "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
    },
}


def cifar_layout(name):
    if name not in LAYOUTS:
        raise DataError(f"unknown CIFAR data set {name!r}; choose one of {sorted(LAYOUTS)}")
    return LAYOUTS[name]


def read_cifar(root, name="cifar10"):
    """Read ROOT/<official folder> -> (train_images, train_labels, test_images, test_labels).

    Any contents in the official layout load (subsets, relabelled or generated data); files
    that differ from the official release give one warning. The meta file is not needed.
    The files are pickles, so only read data you trust (as with torchvision).
    """
    layout = cifar_layout(name)
    folder = os.path.join(root, layout.folder)
    for filename in layout.train_files + layout.test_files:
        path = os.path.join(folder, filename)
        if not os.path.isfile(path):
            raise DataError(_missing_message(path, root, layout))
    _warn_if_not_official(folder, name)
    train_images, train_labels = _read_batches(folder, layout.train_files, layout.label_key)
    test_images, test_labels = _read_batches(folder, layout.test_files, layout.label_key)
    return train_images, train_labels, test_images, test_labels


def _missing_message(path, root, layout):
    folder = os.path.dirname(path)
    missing = f"folder not found: {folder}" if not os.path.isdir(folder) else f"file not found: {path}"
    return (f"{layout.title} {missing}. --datapath must be the folder that contains {layout.folder}/ "
            f"(got {root}); extract the official {layout.archive} there, pass --download where a "
            f"network exists, or use --dataset synthetic")


def file_md5(path):
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _warn_if_not_official(folder, name):
    differing = [filename for filename, md5 in OFFICIAL_MD5[name].items()
                 if file_md5(os.path.join(folder, filename)) != md5]
    if differing:
        warnings.warn(f"{LAYOUTS[name].title} files in {folder} differ from the official release "
                      f"(MD5 mismatch: {', '.join(differing)}); loading them as they are",
                      stacklevel=3)


def _read_batches(folder, filenames, label_key):
    batches = [_read_batch(os.path.join(folder, filename), label_key) for filename in filenames]
    images = np.concatenate([images for images, _ in batches])
    labels = np.concatenate([labels for _, labels in batches])
    return images, labels


def _read_batch(path, label_key):
    with open(path, "rb") as f:
        try:
            # latin1 is how python-2 pickles (the official files) decode their byte strings.
            entry = pickle.load(f, encoding="latin1")
        except Exception as e:
            raise DataError(f"{path} is not a CIFAR python pickle ({type(e).__name__}: {e})") from e
    if not isinstance(entry, dict):
        raise DataError(f"{path} holds a {type(entry).__name__}, expected a dict with 'data' and {label_key!r}")
    entry = {key.decode("latin1") if isinstance(key, bytes) else key: value for key, value in entry.items()}
    missing = [key for key in ("data", label_key) if key not in entry]
    if missing:
        raise DataError(f"{path} lacks key(s) {missing}; keys found: {sorted(entry)}")
    data = np.asarray(entry["data"])
    labels = np.asarray(entry[label_key], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != PIXELS_PER_IMAGE:
        raise DataError(f"{path}: 'data' is {data.dtype} {data.shape}, expected uint8 (N, {PIXELS_PER_IMAGE})")
    if labels.shape != (len(data),):
        raise DataError(f"{path}: {label_key!r} has shape {labels.shape} but there are {len(data)} images")
    # Rows are stored channel-major (R plane, G plane, B plane); callers get HWC like torchvision.
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def write_cifar(root, name, train_images, train_labels, test_images, test_labels):
    """Write uint8 (N, 32, 32, 3) images and labels in the official pickle layout; returns the folder.

    The files load with read_cifar and with torchvision's CIFAR10/CIFAR100 classes (whose MD5
    check fails on anything but the official files). Class names are written as class_<k>.
    """
    layout = cifar_layout(name)
    _check_images(train_images, train_labels, layout, "train")
    _check_images(test_images, test_labels, layout, "test")
    folder = os.path.join(root, layout.folder)
    os.makedirs(folder, exist_ok=True)
    train_parts = zip(np.array_split(np.asarray(train_images), len(layout.train_files)),
                      np.array_split(np.asarray(train_labels), len(layout.train_files)))
    for filename, (images, labels) in zip(layout.train_files, train_parts):
        _write_batch(os.path.join(folder, filename), images, labels, layout.label_key, f"training {filename}")
    _write_batch(os.path.join(folder, layout.test_files[0]), test_images, test_labels,
                 layout.label_key, "testing batch")
    meta = {layout.label_names_key: [f"class_{k}" for k in range(layout.num_classes)]}
    with open(os.path.join(folder, layout.meta_file), "wb") as f:
        pickle.dump(meta, f)
    return folder


def _check_images(images, labels, layout, split):
    images, labels = np.asarray(images), np.asarray(labels)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != IMAGE_SHAPE:
        raise DataError(f"{layout.title} {split} images are {images.dtype} {images.shape}, "
                        f"expected uint8 (N, {', '.join(map(str, IMAGE_SHAPE))})")
    if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{layout.title} {split} labels are {labels.dtype} {labels.shape}, "
                        f"expected {len(images)} integers")
    bad = labels[(labels < 0) | (labels >= layout.num_classes)]
    if len(bad):
        raise DataError(f"{layout.title} {split} label {int(bad[0])} is outside [0, {layout.num_classes})")


def _write_batch(path, images, labels, label_key, batch_label):
    rows = np.ascontiguousarray(np.asarray(images).transpose(0, 3, 1, 2)).reshape(len(images), -1)
    entry = {"batch_label": batch_label, label_key: [int(label) for label in labels], "data": rows}
    with open(path, "wb") as f:
        pickle.dump(entry, f)


def download_cifar(root, name="cifar10"):
    """Fetch and extract the official archive into root through torchvision; returns the folder."""
    import torchvision.datasets

    layout = cifar_layout(name)
    dataset_class = {"cifar10": torchvision.datasets.CIFAR10, "cifar100": torchvision.datasets.CIFAR100}[name]
    try:
        dataset_class(root=root, train=True, download=True)
    except (OSError, RuntimeError) as e:
        raise DataError(f"could not download {layout.title} into {root} ({e}); extract {layout.archive} "
                        f"there by hand, or use --dataset synthetic") from e
    return os.path.join(root, layout.folder)
