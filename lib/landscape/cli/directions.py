"""The drivers' direction file: its default name, a new one made through the API from the flags, and
an existing one checked against the flags (those it records) and against --model_file2/3 by value
(a reference-code file records nothing), before anything else is written."""
import hashlib
import json
import os
import sys

from ..api import check_targets, eigen_directions, random_directions, target_directions
from ..api.session import check_reach
from ..errors import DirectionError
from ..files.directions import Directions, check_fits, read_directions, write_directions
from ..job.mpi import rank0_first
from ..space.directions import named_entries
from ..version import __version__
from .eigen_flags import NOT_FOR_EIGEN, eigen_mismatches


def default_dir_file(flags):
    model, d = flags.model, flags.directions
    parts = [model.file or f"{model.name.replace(':', '_')}_init_seed{model.seed}", d.dir_type]
    if d.eig is not None:  # no norm or ignore: eigenvectors are drawn as they are
        parts.append(f"eig_{d.eig.curvature}_top{2 if flags.grid.is_2d else 1}_samples={d.eig.recorded_samples}")
    elif d.model_file2:
        parts.append("to_" + os.path.basename(d.model_file2))
    else:
        parts.append(f"xignore={d.ignores[0]}_xnorm={d.norms[0]}")
    if flags.grid.is_2d and not d.same_dir and d.eig is None:
        parts.append("to_" + os.path.basename(d.model_file3) if d.model_file3
                     else f"yignore={d.ignores[1]}_ynorm={d.norms[1]}")
    if d.same_dir:
        parts.append("same_dir")
    if d.params is not None:  # the patterns' glob characters stay out of the name: a short digest of them
        parts.append("params=" + hashlib.sha256(json.dumps(list(d.params)).encode()).hexdigest()[:8])
    parts.append(f"seed={d.seed}")
    return "_".join(parts) + ".h5"


def make_directions(flags, model, num_classes):
    """New directions through the API: targets from --model_file2/3, else filter-normalized Gaussians
    (x seeded by --seed, y by --seed + 1), with the flags that made them as the file's attributes."""
    d, two_d = flags.directions, flags.grid.is_2d
    random_y = two_d and not d.same_dir and not d.model_file3
    any_random = random_y or not d.model_file2
    if d.params is not None and not any_random:
        raise DirectionError("--params limits random directions, and every direction here is a target (another "
                             "model minus this one: --model_file2/--model_file3); drop --params")
    made = random_directions(model, 2 if random_y else 1, norm=d.norms, ignore=d.ignores, dir_type=d.dir_type,
                             seed=d.seed, params=d.params) if any_random else None

    def target(model_file):  # used as they are: interpolation moves every entry, biases too
        return target_directions(model, flags.model.build(num_classes, model_file), dir_type=d.dir_type).x
    x = target(d.model_file2) if d.model_file2 else made.x
    y = None
    if two_d:
        y = x if d.same_dir else target(d.model_file3) if d.model_file3 else made.y
    attrs = dict(names=[name for name, _ in named_entries(model, d.dir_type)], dir_type=d.dir_type,
                 model=flags.model.name, seed=d.seed,
                 xnorm=d.norms[0], ynorm=d.norms[1], xignore=d.ignores[0], yignore=d.ignores[1], same_dir=d.same_dir,
                 model_file=str(flags.model.file), model_file2=str(d.model_file2), model_file3=str(d.model_file3),
                 landscape_version=__version__)
    if d.params is not None:  # only then: a file made without --params is as before
        attrs["params"] = list(d.params)
    return Directions(x, y, attrs)


def make_eigen_directions(flags, model, data, device, loss):
    """--eig_directions: the top eigenvectors of the Hessian over --params (default: the weights with more than
    one dimension), on `data`'s fixed subset of --eig_samples seeded by --seed, through the API."""
    d = flags.directions
    made = eigen_directions(model, data, loss=loss, k=2 if flags.grid.is_2d else 1, curvature=d.eig.curvature,
                            params="reference" if d.params is None else list(d.params), samples=d.eig.samples,
                            seed=d.seed, device=device)
    made.attrs.update(model=flags.model.name, model_file=str(flags.model.file))
    return made


def _same_target(stored, given):
    """A stored --model_file2/3 path against a given one: the same file, however it is spelled."""
    if stored in (None, "None"):
        return False
    if os.path.exists(stored) and os.path.exists(given):
        return os.path.samefile(stored, given)
    return os.path.realpath(stored) == os.path.realpath(given)


def _spelled(value):
    """A flag's value as typed: --params' patterns space-separated."""
    return " ".join(map(str, value)) if isinstance(value, list) else value


def check_direction_flags(flags, dirs, dir_file):
    """Every direction flag given must match an existing direction file: none is silently dropped.

    Returns the flags the file does not record (a reference-code file), which cannot be checked there."""
    differ, unchecked = eigen_mismatches(flags.directions.eig, dirs.attrs), []
    eigen_file = dirs.attrs.get("directions") == "eig"
    for k, v in flags.directions.typed:
        if eigen_file and k in NOT_FOR_EIGEN:
            differ.append(f"--{k} {_spelled(v)} (the file holds eigen directions, which take no --{k})")
        elif k == "params" and k not in dirs.attrs and "names" in dirs.attrs:  # ours, made without --params
            differ.append(f"--params {_spelled(v)} (the file moves every entry)")
        elif k not in dirs.attrs:
            unchecked.append(k)
        elif k.startswith("model_file"):
            if not _same_target(dirs.attrs[k], v):
                has = "a random direction" if dirs.attrs[k] in (None, "None") else dirs.attrs[k]
                differ.append(f"--{k} {v} (the file has {has})")
        elif dirs.attrs[k] != v:
            differ.append(f"--{k} {_spelled(v)} (the file has {_spelled(dirs.attrs[k])})")
    if differ:
        raise DirectionError(f"{dir_file} exists and was made with other settings: {', '.join(differ)}; "
                             f"drop those flags to reuse it, or give a new --dir_file")
    return unchecked


def check_unrecorded_targets(flags, dirs, model, num_classes, unchecked):
    """--model_file2/3 that the file does not record are checked by value (rank 0 alone: it loads those
    checkpoints): its x (y) direction must be that model minus this one."""
    d = flags.directions
    x_model, y_model = ([flags.model.build(num_classes, path) if f"model_file{n}" in unchecked else None
                         for n, path in ((2, d.model_file2), (3, d.model_file3))])
    try:
        check_targets(dirs, model, x_model, y_model, d.dir_type, labels=("--model_file2", "--model_file3"))
    except DirectionError as e:
        flags_named = " or ".join(f"--{k}" for k in unchecked if k.startswith("model_file"))
        raise DirectionError(f"{dirs.path} does not record how it was made (a reference-code file?), so it was "
                             f"checked against {flags_named}: {e}; give the direction file made from these "
                             f"checkpoints, or a new --dir_file") from None


def unchecked_note(dirs, unchecked):
    """A note naming the flags the file does not record and that nothing checks, or None."""
    rest = [f"--{k}" for k in unchecked if not k.startswith("model_file")]
    return (f"note: {dirs.path} does not record {', '.join(rest)} (a reference-code file?), so those flags cannot "
            f"be checked against it; its directions are used as they are") if rest else None


def directions_for(flags, world, model, train, device, loss):
    """The direction file's directions, made first when it does not exist (eigen directions from the
    training data `train` and `loss` on `device`), and checked against the flags and the model (its shape,
    then its values where it records nothing of --model_file2/3) before anything else is written."""
    dir_file = flags.directions.dir_file or default_dir_file(flags)
    num_classes = train.num_classes

    def ensure_directions():  # only rank 0 looks, so every rank takes part in the same broadcast
        if not os.path.exists(dir_file):
            made = (make_eigen_directions(flags, model, (train.x, train.y), device, loss)
                    if flags.directions.eig is not None else make_directions(flags, model, num_classes))
            check_reach(model, made, flags.grid)  # a grid that overflows the parameters writes no file
            write_directions(dir_file, made)  # a DirectionError naming the file if it cannot be written
    rank0_first(world, ensure_directions)
    dirs = read_directions(dir_file)
    unchecked = check_direction_flags(flags, dirs, dir_file)
    dirs.attrs.setdefault("dir_type", flags.directions.dir_type)  # a reference-code file records none: the flag says
    names, entries = zip(*named_entries(model, flags.directions.dir_type))
    check_fits(dirs, names, [t.shape for t in entries], dir_file)
    if flags.grid.is_2d and not dirs.is_2d:
        raise DirectionError(f"--y asks for a 2D grid but {dir_file} holds only an x direction; "
                             f"use another --dir_file or drop --y")
    rank0_first(world, lambda: check_unrecorded_targets(flags, dirs, model, num_classes, unchecked))
    note = unchecked_note(dirs, unchecked)
    if note and world.rank == 0:
        print(note, file=sys.stderr, flush=True)
    return dirs
