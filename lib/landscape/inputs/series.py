"""A training run's checkpoint series as a path matrix (Li et al. 2018, Sec. 7).

The path matrix has one row per checkpoint: its difference from the final model over the
entries of a `dir_type` direction ('weights': named_parameters; 'states': the state_dict, with
integer buffers such as num_batches_tracked always zero), with every 1-D entry zeroed under
ignore='biasbn'. As in the reference code the final model is one of the rows (an all-zero
row), so the path ends at the origin of the plane; a --model_file outside the series is
appended as the last row for the same reason.

Memory, with n checkpoints and P entries in a direction:
    path matrix               n * P * 4 bytes (float32 rows, held whole for the PCA)
    subtracting one row       3 * P * 8 bytes (float64 final model, checkpoint, difference) + P mask bytes
    PCA (see space/pca.py)    2 * P * 8 bytes of components + 64 MiB of column blocks
plus one copy of the model; so about 4 * n * P + 42 * P bytes + 64 MiB. E.g. 301 checkpoints of
ResNet-56 (P = 855,770): 1.03 GB + 36 MB + 64 MB.
"""
import os

import torch

from ..errors import CheckpointError
from ..space.directions import DIR_TYPES, IGNORES, check_choice, is_movable, named_entries
from .checkpoint import load_weights

MIN_CHECKPOINTS = 3  # two PCA directions need three points (the centred rows span n - 1 dimensions)


SHOWN_MISSING = 5


def checkpoint_series(model_folder, prefix, suffix, start_epoch, max_epoch, save_epoch):
    """Checkpoint paths of epochs start_epoch, start_epoch + save_epoch, ... and max_epoch itself.

    The reference asks for max_epoch - start_epoch to be a multiple of save_epoch; our trainer
    also saves the last epoch when it is not, so max_epoch is always included here.
    """
    if save_epoch < 1:
        raise CheckpointError(f"--save_epoch must be at least 1, got {save_epoch}")
    if start_epoch > max_epoch:
        raise CheckpointError(f"--start_epoch {start_epoch} is after --max_epoch {max_epoch}")
    epochs = list(range(start_epoch, max_epoch + 1, save_epoch))
    if epochs[-1] != max_epoch:
        epochs.append(max_epoch)
    return [os.path.join(model_folder, f"{prefix}{e}{suffix}") for e in epochs]


def with_final(series, final_path):
    """The series plus the final model as its last row, unless it is already one of them."""
    known = {os.path.realpath(path) for path in series}
    return series if os.path.realpath(final_path) in known else series + [final_path]


def check_series(series):
    """Refuse a series with missing files (named) or too few checkpoints for two PCA directions."""
    missing = [path for path in series if not os.path.isfile(path)]
    if missing:
        shown = ", ".join(missing[:SHOWN_MISSING]) + (f", ... ({len(missing) - SHOWN_MISSING} more)"
                                                        if len(missing) > SHOWN_MISSING else "")
        raise CheckpointError(
            f"{len(missing)} of {len(series)} checkpoints of the series are missing: {shown}. Check "
            "--model_folder, --prefix, --suffix, --start_epoch, --max_epoch and --save_epoch")
    if len(series) < MIN_CHECKPOINTS:
        raise CheckpointError(
            f"PCA of a trajectory needs at least {MIN_CHECKPOINTS} checkpoints (the final model included); "
            f"the series has {len(series)}: {', '.join(series)}. "
            "Lower --save_epoch or --start_epoch, or save checkpoints more often")


def _flat64(entries):
    return torch.cat([t.detach().reshape(-1).to(torch.float64) for t in entries])


def kept_positions(entries, ignore):
    """Boolean mask over the flat direction: float entries, minus 1-D ones under ignore='biasbn'."""
    check_choice(ignore, IGNORES, "--ignore")
    return torch.cat([torch.full((t.numel(),), is_movable(t) and not (ignore == "biasbn" and t.dim() <= 1))
                      for t in entries])


def difference_matrix(model, paths, final_path, dir_type, ignore):
    """(matrix, names, shapes): row i = checkpoint i minus the final model, float32 (len(paths), P).

    Each checkpoint is loaded into `model` (which it must fit: load_weights names the file and
    the keys or shapes that differ); `model` ends up holding the last checkpoint.
    """
    check_choice(dir_type, DIR_TYPES, "--dir_type")
    load_weights(model, final_path)
    names, entries = zip(*named_entries(model, dir_type))
    final = _flat64(entries)
    kept = kept_positions(entries, ignore)
    matrix = torch.empty(len(paths), final.numel(), dtype=torch.float32)
    for row, path in enumerate(paths):
        load_weights(model, path)
        diff = _flat64(t for _, t in named_entries(model, dir_type)) - final
        matrix[row] = torch.where(kept, diff, torch.zeros((), dtype=torch.float64))
    return matrix, list(names), [tuple(t.shape) for t in entries]
