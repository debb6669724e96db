"""Curve files: the ends, the bends and the training state of a curve between two networks (fit_curve),
in HDF5, written whole or not at all (a kill mid-write leaves the previous epoch's file).

    attrs        format 'landscape curve', kind, epoch, settings (JSON), names (JSON: the state entries
                 of the ends, parameters first), param_names (JSON: the entries the bends cover)
    end_a/i      entry names[i] of model_a (t = 0); end_b/i of model_b (t = 1)
    bend_k/i     entry param_names[i] of bend k (k = 1..bends)
    momentum_k/i SGD's momentum buffer of that entry, where it has one
    rng/curve, rng/torch, rng/cuda   random states after the last finished epoch (uint8), where saved
    history      the mean training loss of each finished epoch

bfloat16 entries are stored as float32 (exact); a reader casts them back to its model's dtypes.
"""
import json

import h5py
import numpy as np
import torch

from ..errors import CheckpointError
from .atomic import write_hdf5

FORMAT = "landscape curve"


def write_curve_file(path, record):
    """record: {kind, epoch, settings, end_a, end_b, bends, momentum, rng, history}; the ends are {name:
    tensor} (parameters first), the bends and momentum lists of {name: tensor}, rng a {name: uint8
    tensor} or None."""
    write_hdf5(str(path), lambda f: _fill(f, record), CheckpointError, "the curve file ")


def _fill(f, record):
    names, param_names = list(record["end_a"]), list(record["bends"][0])
    f.attrs.update(format=FORMAT, kind=record["kind"], epoch=int(record["epoch"]),
                   settings=json.dumps(record["settings"]), names=json.dumps(names),
                   param_names=json.dumps(param_names))
    for group, entries, order in (("end_a", record["end_a"], names), ("end_b", record["end_b"], names),
                                  *((f"bend_{k + 1}", bend, param_names) for k, bend in enumerate(record["bends"])),
                                  *((f"momentum_{k + 1}", m, param_names) for k, m in enumerate(record["momentum"]))):
        g = f.create_group(group)
        for i, name in enumerate(order):
            if name in entries:
                g.create_dataset(str(i), data=_array(entries[name]))
    rng = f.create_group("rng")
    for name, state in (record.get("rng") or {}).items():
        rng.create_dataset(name, data=state.numpy())
    f.create_dataset("history", data=np.asarray(record["history"], dtype=np.float64))


def _array(t):
    t = t.detach().cpu()
    return (t.float() if t.dtype == torch.bfloat16 else t).numpy()


def read_curve_file(path):
    """The record write_curve_file wrote (tensors on the CPU), or a CheckpointError in one line."""
    try:
        f = h5py.File(path, "r")
    except (OSError, FileNotFoundError) as e:
        raise CheckpointError(f"cannot read curve file {path}: {e}") from None
    with f:
        if f.attrs.get("format") != FORMAT:
            raise CheckpointError(f"{path} is not a curve file (fit_curve writes them)")
        names, param_names = json.loads(f.attrs["names"]), json.loads(f.attrs["param_names"])
        bends = sorted((k for k in f if k.startswith("bend_")), key=lambda k: int(k.split("_")[1]))
        momentum = [_entries(f.get(f"momentum_{k + 1}"), param_names) for k in range(len(bends))]
        return dict(kind=str(f.attrs["kind"]), epoch=int(f.attrs["epoch"]), settings=json.loads(f.attrs["settings"]),
                    end_a=_entries(f["end_a"], names), end_b=_entries(f["end_b"], names),
                    bends=[_entries(f[k], param_names) for k in bends], momentum=momentum,
                    rng={name: torch.from_numpy(f["rng"][name][()]) for name in f["rng"]} or None,
                    history=tuple(float(v) for v in f["history"][()]))


def _entries(group, order):
    if group is None:
        return {}
    return {name: torch.from_numpy(np.array(group[str(i)][()])) for i, name in enumerate(order) if str(i) in group}
