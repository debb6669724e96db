"""Reading and writing model checkpoints in the reference code's layout.

The reference trainer saves `{'state_dict': ..., 'acc': float, 'epoch': int}` (some files hold a
bare state_dict); nets trained under DataParallel carry a 'module.' prefix, and PyTorch 0.4 files
lack the BatchNorm `num_batches_tracked` buffers. All three load here.
"""

import hashlib
import operator
import os
import pickle
import warnings
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn

from ..errors import CheckpointError
from ..space.directions import entry_aliases
from ..space.finite import first_nonfinite

DATA_PARALLEL_PREFIX = "module."
BN_STEP_COUNTER = "num_batches_tracked"
SHOWN_PER_KIND = 5  # how many offending keys of each kind an error message lists
WEIGHTS_ONLY_REFUSAL = "Weights only load failed"  # how torch's message starts when weights_only refuses
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"  # the first bytes of every HDF5 file (with no user block)


def _listing(items):
    shown = ", ".join(items[:SHOWN_PER_KIND])
    return shown + (f", ... ({len(items) - SHOWN_PER_KIND} more)" if len(items) > SHOWN_PER_KIND else "")


def _numpy_scalar_globals():
    """Globals needed to unpickle numpy scalars (e.g. an 'acc' computed with numpy); no code runs."""
    multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
    # Files written under numpy 1.x name the function by its old module path.
    allowed = [multiarray.scalar, (multiarray.scalar, "numpy.core.multiarray.scalar"), np.dtype]
    if hasattr(np, "dtypes"):  # numpy >= 1.25 pickles dtypes through their own classes
        allowed += [type(np.dtype(kind)) for kind in ("float64", "float32", "float16", "int64", "int32")]
    return allowed


def _unreadable(path, err):
    return CheckpointError(f"checkpoint {path} is not a readable PyTorch file ({type(err).__name__}: {err})")


def _load_file(path, trusted):
    """torch.load with weights_only=True (no arbitrary code); full unpickling only if `trusted`."""
    try:
        with torch.serialization.safe_globals(_numpy_scalar_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if WEIGHTS_ONLY_REFUSAL not in str(err):
            raise _unreadable(path, err) from err
        lines = [line.strip() for line in str(err).splitlines()]
        detail = next((line for line in lines if line.startswith("WeightsUnpickler error: ")), lines[0])
        reason = detail.removeprefix("WeightsUnpickler error: ").split(". ")[0]
        if not trusted:
            raise CheckpointError(
                f"checkpoint {path} holds Python objects other than tensors and plain containers "
                f"({reason}); they were not unpickled because that can run arbitrary code. "
                "Re-save just its state_dict, e.g. torch.save(checkpoint['state_dict'], 'weights.pt'), "
                "where you trust the file."
            ) from err
    except Exception as err:  # torch raises many types (KeyError, EOFError, RuntimeError) on bad files
        raise _unreadable(path, err) from err
    warnings.warn(f"checkpoint {path}: unpickling arbitrary objects because trusted=True ({reason})")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise _unreadable(path, err) from err


def _as_state_dict(obj, origin):
    """The state_dict inside a loaded object: the object itself, its 'state_dict' entry, or a
    pickled whole model's (only reachable with trusted=True)."""
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise CheckpointError(
            f"checkpoint {origin} holds a {type(obj).__name__}, expected a state_dict "
            "or a dict with a 'state_dict' entry"
        )
    if not obj:
        raise CheckpointError(f"checkpoint {origin} holds an empty dict, expected a state_dict")
    not_tensors = [
        f"{key!r} ({type(value).__name__})"
        for key, value in obj.items()
        if not (isinstance(key, str) and torch.is_tensor(value))
    ]
    if not_tensors:
        raise CheckpointError(
            f"checkpoint {origin} is not a state_dict (names mapped to tensors) nor a dict with a "
            f"'state_dict' entry; {len(not_tensors)} entries are not tensors: {_listing(not_tensors)}"
        )
    return OrderedDict(obj)


def read_state_dict(path, trusted=False):
    """The state_dict stored at `path` (bare or under 'state_dict'), with tensors on the CPU."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise CheckpointError(f"checkpoint {path} is a directory; give the checkpoint file")
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint file not found: {path}")
    with open(path, "rb") as handle:
        if handle.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
            raise CheckpointError(f"checkpoint {path} is an HDF5 file (a direction or results file?), not a PyTorch "
                                  "checkpoint; give the .pt/.t7 file saved by torch.save")
    return _as_state_dict(_load_file(path, trusted), path)


def _strip_data_parallel_prefix(state_dict, model_keys):
    # DataParallel prefixes every key; strip only then, and only if the model itself is not wrapped.
    prefixed = all(key.startswith(DATA_PARALLEL_PREFIX) for key in state_dict)
    model_prefixed = all(key.startswith(DATA_PARALLEL_PREFIX) for key in model_keys)
    if not prefixed or model_prefixed:
        return state_dict
    return OrderedDict((key[len(DATA_PARALLEL_PREFIX):], value) for key, value in state_dict.items())


def _fill_bn_step_counters(state_dict, model_state):
    """Add the model's num_batches_tracked where a PyTorch 0.4 file has the BN layer but not the counter."""
    filled = OrderedDict(state_dict)
    for key, value in model_state.items():
        if not key.endswith(BN_STEP_COUNTER) or key in filled:
            continue
        layer = key[: -len(BN_STEP_COUNTER)]
        if layer + "running_mean" in filled:
            filled[key] = value.detach().clone()
    return filled


def _same_values(a, b):
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    return torch.equal(a, b) or (a.is_floating_point() and bool((a.eq(b) | (a.isnan() & b.isnan())).all()))


def _tie(state_dict, model, origin):
    """The checkpoint with every tied tensor of `model` (one tensor under several state_dict names, e.g.
    GPT-2's lm_head.weight and transformer.wte.weight) given once: a name the file lacks takes its alias's
    values; aliases holding different values are refused (loading both would keep the last silently)."""
    tied = OrderedDict(state_dict)
    for first, later in entry_aliases(model, "states").items():
        present = [name for name in (first, *later) if name in tied]
        if not present:
            continue  # the mismatch report names it missing
        differing = [name for name in present[1:] if tied[name].shape == tied[present[0]].shape
                     and not _same_values(tied[name], tied[present[0]])]
        if differing:
            raise CheckpointError(f"checkpoint {origin}: {present[0]!r} and {differing[0]!r} hold different values, "
                                  f"but model {type(model).__name__} holds them as one tied tensor; was the file "
                                  f"saved from a model without that tie?")
        for name in (first, *later):
            tied.setdefault(name, tied[present[0]])
    return tied


def _mismatch_report(state_dict, model_state):
    missing = [key for key in model_state if key not in state_dict]
    unexpected = [key for key in state_dict if key not in model_state]
    wrong_shape = [
        f"{key} (checkpoint {list(state_dict[key].shape)}, model {list(value.shape)})"
        for key, value in model_state.items()
        if key in state_dict and state_dict[key].shape != value.shape
    ]
    kinds = (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", wrong_shape))
    parts = [f"{len(found)} {kind}: {_listing(found)}" for kind, found in kinds if found]
    return "; ".join(parts)


def load_weights(model, source, trusted=False):
    """Load a checkpoint path or an in-memory state_dict into `model` in place; returns `model`."""
    is_path = isinstance(source, (str, os.PathLike))
    origin = os.fspath(source) if is_path else "(in-memory state_dict)"
    state_dict = read_state_dict(source, trusted) if is_path else _as_state_dict(source, origin)
    model_state = model.state_dict()
    state_dict = _strip_data_parallel_prefix(state_dict, model_state)
    state_dict = _fill_bn_step_counters(state_dict, model_state)
    state_dict = _tie(state_dict, model, origin)
    problems = _mismatch_report(state_dict, model_state)
    if problems:
        raise CheckpointError(
            f"checkpoint {origin} does not fit model {type(model).__name__}: {problems}. "
            "Check that the model name (and num_classes) match the architecture that was trained."
        )
    found = first_nonfinite((key, value.to(model_state[key].dtype) if value.is_floating_point() else value)
                            for key, value in state_dict.items())  # as the model holds them: 1e39 is inf in float32
    if found is not None:
        raise CheckpointError(f"checkpoint {origin}: {found[0]!r} holds {found[1]} NaN or infinite value(s); "
                              f"a model with them gives NaN everywhere (was it saved after training diverged?)")
    model.load_state_dict(state_dict, strict=True)
    return model


def file_sha256(path, chunk_bytes=1 << 20):
    """Hex SHA-256 of a file, read in chunks so large checkpoints are never held in memory."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(chunk_bytes), b""):
                digest.update(chunk)
    except OSError as err:
        raise CheckpointError(f"cannot read {os.fspath(path)} to hash it ({err.strerror or err})") from err
    return digest.hexdigest()


def update_with_tensors(digest, tensors):
    """Feed each tensor's raw bytes (any dtype, any device) to a hashlib digest; returns the digest."""
    for t in tensors:
        digest.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest


def save_checkpoint(path, model, epoch, acc):
    """Write `{'state_dict', 'acc', 'epoch'}` like the reference trainer; CPU tensors, atomic rename."""
    if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
        model = model.module  # the reference saves the unwrapped net's keys
    state_dict = OrderedDict((key, value.detach().cpu()) for key, value in model.state_dict().items())
    record = {"state_dict": state_dict, "acc": float(acc), "epoch": operator.index(epoch)}
    path = os.fspath(path)
    partial_path = f"{path}.partial-{os.getpid()}"
    try:
        with open(partial_path, "wb") as handle:  # our own open, so a bad path is a plain OSError
            torch.save(record, handle)
        os.replace(partial_path, path)
    except OSError as err:
        if os.path.exists(partial_path):
            os.remove(partial_path)
        raise CheckpointError(f"cannot write checkpoint {path} ({err.strerror or err})") from err
