"""User-supplied data: (x, y) tensor files and 'module:function' factories.

Both return raw (x, y) pairs; data.arrays_to_tensor_data decides how to normalize them.
"""
import importlib
import os
import pickle
import sys

import numpy as np
import torch

from ..errors import DataError

TENSOR_FILE_TYPES = (".pt", ".npz")


def read_tensor_file(path):
    """(x, y) from a .pt file (torch.save of {'x': tensor, 'y': tensor}) or an .npz with arrays x and y."""
    extension = os.path.splitext(path)[1].lower()
    if extension not in TENSOR_FILE_TYPES:
        raise DataError(f"{path}: unknown data file type {extension!r}; use one of {list(TENSOR_FILE_TYPES)}")
    if not os.path.isfile(path):
        raise DataError(f"data file not found: {path}")
    contents = _read_pt(path) if extension == ".pt" else _read_npz(path)
    missing = [key for key in ("x", "y") if key not in contents]
    if missing:
        raise DataError(f"{path} lacks key(s) {missing}; keys found: {sorted(contents)}. "
                        f"Save a dict with 'x' (inputs) and 'y' (integer labels)")
    return contents["x"], contents["y"]


def _read_pt(path):
    try:
        # weights_only: a data file must not be able to run code when loaded.
        contents = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise DataError(f"{path} is not a torch.save file of plain tensors ({type(e).__name__}: {first_line}); "
                        f"save {{'x': torch.Tensor, 'y': torch.Tensor}}") from e
    if not isinstance(contents, dict):
        raise DataError(f"{path} holds a {type(contents).__name__}; save a dict with keys 'x' and 'y'")
    return contents


def _read_npz(path):
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (ValueError, OSError) as e:
        raise DataError(f"{path} is not a readable .npz of plain arrays ({e})") from e


def call_data_factory(spec, kwargs=None):
    """Import 'package.module:function', call function(**kwargs) -> (train, test) as (x, y) pairs.

    The factory returns (train, test); each is an (x, y) pair of tensors/arrays or a map-style
    Dataset of (x, y) items, which are stacked. test may be None. The current directory is
    importable, as it is for `python script.py`.
    """
    factory = _import_factory(spec)
    result = factory(**(kwargs or {}))
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise DataError(f"data factory {spec} returned a {type(result).__name__}; it must return (train, test)")
    train, test = result
    if train is None:
        raise DataError(f"data factory {spec} returned no training data")
    return _as_pair(train, spec, "train"), None if test is None else _as_pair(test, spec, "test")


def _import_factory(spec):
    module_name, _, function_name = spec.partition(":")
    if not module_name or not function_name:
        raise DataError(f"data factory {spec!r} must look like 'package.module:function'")
    cwd = os.getcwd()
    added_cwd = cwd not in sys.path
    if added_cwd:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise DataError(f"cannot import data factory {spec}: {e}. Put {module_name} on PYTHONPATH "
                        f"or in the current directory") from e
    finally:
        if added_cwd:
            sys.path.remove(cwd)
    factory = getattr(module, function_name, None)
    if not callable(factory):
        raise DataError(f"data factory {spec}: module {module_name} has no function {function_name!r}")
    return factory


def _is_array(value):
    return isinstance(value, (torch.Tensor, np.ndarray))


def _as_pair(data, spec, split):
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(map(_is_array, data)):
        return data
    if hasattr(data, "__len__") and hasattr(data, "__getitem__"):
        return _stack_dataset(data, spec, split)
    raise DataError(f"data factory {spec}: {split} data is a {type(data).__name__}; "
                    f"return an (x, y) pair of tensors/arrays or a Dataset of (x, y) items")


def _stack_dataset(dataset, spec, split):
    if len(dataset) == 0:
        raise DataError(f"data factory {spec}: the {split} Dataset is empty")
    inputs, labels = [], []
    for index in range(len(dataset)):
        item = dataset[index]
        if not isinstance(item, (tuple, list)) or len(item) != 2 or not _is_array(item[0]):
            raise DataError(f"data factory {spec}: {split} item {index} is not an (x, y) pair with a tensor x "
                            f"(got {type(item).__name__}); add transforms.ToTensor() for image data sets")
        inputs.append(torch.as_tensor(item[0]))
        labels.append(torch.as_tensor(item[1]))
    return torch.stack(inputs), torch.stack(labels)
