"""What every grid driver sets up before its job: device, data, model, directions and run settings.

Every rank builds the same context; only rank 0 writes the direction file, and the drivers call
input_settings (which hashes the inputs) on rank 0 only.
"""
import hashlib
import os
import sys
from dataclasses import dataclass

import torch

from .. import __version__
from ..checkpoint import file_sha256, load_weights, update_with_tensors
from ..data import load_dataset, randomize_labels, select_split
from ..dirfile import Directions, check_fits, directions_digest, read_directions, write_directions
from ..directions import named_entries, normalize_direction, random_direction, target_direction
from ..errors import DataError, DirectionError, GridSpecError, LandscapeError, LossError, ModelError
from ..evaluate import device_layout
from ..grid import make_grid, parse_axis
from ..imports import import_callable
from ..models import build_model
from ..mpi import cpu_threads_per_rank, pick_device
from ..runner import rank0_first
from .args import DIRECTION_DEFAULTS, direction_flag, json_flag


@dataclass
class Context:
    device: torch.device
    grid: object
    model: torch.nn.Module
    dirs: Directions  # read from the direction file, whose path is dirs.path
    train: object
    test: object
    surf_file: str


def load_data(args, world):
    factory_kwargs = json_flag(args.dataset_kwargs, "--dataset_kwargs", DataError) if ":" in args.dataset else None
    kwargs = dict(raw=args.raw_data, synthetic_size=tuple(args.synthetic_size), seed=args.synthetic_seed,
                  factory_kwargs=factory_kwargs,
                  num_classes=args.num_classes)
    if args.download:
        rank0_first(world, lambda: load_dataset(args.dataset, args.datapath, download=True, **kwargs) and None)
    train, test = load_dataset(args.dataset, args.datapath, **kwargs)
    train = select_split(train, args.data_split, args.split_idx)
    if args.random_labels:
        train = randomize_labels(train, args.random_labels, seed=args.seed)
    return train, test


def load_model(args, num_classes, model_file):
    torch.manual_seed(args.seed)  # a model without a checkpoint starts from a reproducible init
    kwargs = json_flag(args.model_kwargs, "--model_kwargs", ModelError)
    model = build_model(args.model, kwargs, num_classes=num_classes)
    if model_file:
        load_weights(model, model_file)
    return model.eval()


def check_output_classes(model, data, model_name):
    """For class labels (N,) the model must give one logit per class: cross-entropy would fail mid-grid
    otherwise. Other targets (tokens (N, T), regression) go to the user's --loss, which says what fits."""
    if data.y.dim() != 1 or data.y.is_floating_point() or data.num_classes is None:
        return
    with torch.inference_mode():
        logits = model(data.x[:1])
    if logits.dim() != 2 or logits.shape[1] < data.num_classes:
        raise ModelError(f"model {model_name} outputs shape {tuple(logits.shape)} for one sample, but the labels "
                         f"have {data.num_classes} classes: it needs (1, {data.num_classes}) or more; give the "
                         f"model the right number of outputs, or --num_classes if the data cannot say")


def default_dir_file(args):
    stem = args.model_file or f"{args.model.replace(':', '_')}_init_seed{args.seed}"
    parts = [stem, args.dir_type]
    if args.model_file2:
        parts.append("to_" + os.path.basename(args.model_file2))
    else:
        parts.append(f"xignore={direction_flag(args, 'xignore')}_xnorm={direction_flag(args, 'xnorm')}")
    if args.y is not None and not args.same_dir:
        parts.append("to_" + os.path.basename(args.model_file3) if args.model_file3
                     else f"yignore={direction_flag(args, 'yignore')}_ynorm={direction_flag(args, 'ynorm')}")
    if args.same_dir:
        parts.append("same_dir")
    parts.append(f"seed={args.seed}")
    return "_".join(parts) + ".h5"


def spelled_axis(spec, name):
    """One spelling per axis ('-1.0:1.0:5' and '-1:1:5' are the same grid, so the same default file)."""
    lo, hi, num = parse_axis(spec, name)
    return f"{lo:g},{hi:g},{num}"


def default_surf_file(args, dir_file):
    grid = f"x={spelled_axis(args.x, 'x')}" + (f"_y={spelled_axis(args.y, 'y')}" if args.y is not None else "")
    return os.path.splitext(dir_file)[0] + "_surf_" + grid + ".h5"


def make_directions(args, model, num_classes, two_d):
    """New directions: targets from --model_file2/3, else filter-normalized Gaussians (seeded)."""
    names, entries = zip(*named_entries(model, args.dir_type))

    def one(model_file, seed, norm, ignore):
        if model_file:  # targets are used as they are: interpolation moves every entry, biases too
            other = dict(named_entries(load_model(args, num_classes, model_file), args.dir_type))
            return target_direction(entries, [other[n] for n in names])
        return normalize_direction(random_direction(entries, seed), entries, norm, ignore)
    flags = {key: direction_flag(args, key) for key in DIRECTION_DEFAULTS}
    x = one(args.model_file2, args.seed, flags["xnorm"], flags["xignore"])
    y = None
    if two_d:
        y = x if args.same_dir else one(args.model_file3, args.seed + 1, flags["ynorm"], flags["yignore"])
    attrs = dict(names=list(names), dir_type=args.dir_type, model=args.model, seed=args.seed, **flags,
                 same_dir=args.same_dir, model_file=str(args.model_file), model_file2=str(args.model_file2),
                 model_file3=str(args.model_file3), landscape_version=__version__)
    return Directions(x, y, attrs)


def given_direction_flags(args):
    """The direction-making flags the user typed, and --dir_type (always set): {name: value}."""
    given = {key: getattr(args, key) for key in (*DIRECTION_DEFAULTS, "dir_type", "model_file2", "model_file3")}
    given = {k: v for k, v in given.items() if v is not None}
    typed = getattr(args, "given", frozenset())
    given.update({k: getattr(args, k) for k in ("seed", "same_dir") if k in typed})
    return given


def _same_target(stored, given):
    """A stored --model_file2/3 path against a given one: the same file, however it is spelled."""
    if stored in (None, "None"):
        return False
    if os.path.exists(stored) and os.path.exists(given):
        return os.path.samefile(stored, given)
    return os.path.realpath(stored) == os.path.realpath(given)


def check_direction_flags(args, dirs, dir_file):
    """Every direction flag given must match an existing direction file: none is silently dropped.

    Returns notes for flags the file does not record (a reference-code file), which cannot be checked."""
    differ, unchecked = [], []
    for k, v in given_direction_flags(args).items():
        if k not in dirs.attrs:
            unchecked.append(f"--{k}")
        elif k.startswith("model_file"):
            if not _same_target(dirs.attrs[k], v):
                has = "a random direction" if dirs.attrs[k] in (None, "None") else dirs.attrs[k]
                differ.append(f"--{k} {v} (the file has {has})")
        elif dirs.attrs[k] != v:
            differ.append(f"--{k} {v} (the file has {dirs.attrs[k]})")
    if differ:
        raise DirectionError(f"{dir_file} exists and was made with other settings: {', '.join(differ)}; "
                             f"drop those flags to reuse it, or give a new --dir_file")
    return [f"note: {dir_file} does not record {', '.join(unchecked)} (a reference-code file?), so those flags "
            f"cannot be checked against it; its directions are used as they are"] if unchecked else []


def unplottable_grid(grid):
    """Why --plot would fail on this grid whatever its values, or None."""
    if grid.is_2d and min(grid.shape) < 2:
        return (f"--plot draws contours, which need at least 2 points along x and y; this grid is "
                f"{len(grid.x)} x {len(grid.y)}: widen --x/--y, use a 1D grid (no --y), or drop --plot")
    return None


def build_context(args, world, precision="fp32"):
    """precision: the surface driver's --precision; plot_hessian_eig.py has no such flag (strict fp32)."""
    device = pick_device(world, "cuda" if args.cuda else args.device, precision)  # binds the GPU first
    torch.set_num_threads(args.threads or cpu_threads_per_rank())
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    grid = make_grid(args.x, args.y)  # a grid too large to hold is refused before any linspace
    if args.plot and unplottable_grid(grid):
        raise GridSpecError(unplottable_grid(grid))
    for flag in ("model_file", "model_file2", "model_file3", "dir_file", "surf_file"):
        refuse_directory(getattr(args, flag), flag)
    train, test = load_data(args, world)
    model = load_model(args, train.num_classes, args.model_file)
    check_output_classes(model, train, args.model)
    dir_file = args.dir_file or default_dir_file(args)
    def ensure_directions():  # only rank 0 looks, so every rank takes part in the same broadcast
        if not os.path.exists(dir_file):
            write_new_directions(dir_file, make_directions(args, model, train.num_classes, grid.is_2d))
    rank0_first(world, ensure_directions)
    dirs = read_directions(dir_file)
    for note in check_direction_flags(args, dirs, dir_file):
        if world.rank == 0:
            print(note, file=sys.stderr, flush=True)
    dirs.attrs.setdefault("dir_type", args.dir_type)  # a reference-code file records none: the flag says
    names, entries = zip(*named_entries(model, args.dir_type))
    check_fits(dirs, names, [t.shape for t in entries], dir_file)
    if grid.is_2d and not dirs.is_2d:
        raise DirectionError(f"--y asks for a 2D grid but {dir_file} holds only an x direction; "
                             f"use another --dir_file or drop --y")
    model.to(device)
    surf_file = args.surf_file or default_surf_file(args, dir_file)
    return Context(device, grid, model, dirs, on_device(train, device), on_device(test, device), surf_file)


def refuse_directory(path, flag):
    if path and os.path.isdir(path):
        raise LandscapeError(f"--{flag} {path} is a directory; give a file")


def write_new_directions(dir_file, dirs):
    try:
        write_directions(dir_file, dirs)
    except OSError as e:
        raise DirectionError(f"cannot write the direction file {dir_file} ({e.strerror or e}); choose a writable "
                             f"--dir_file") from None


def on_device(data, device):
    """Data is normalized once at load and then lives on the rank's device for the whole job."""
    if data is None:
        return None
    return type(data)(device_layout(data.x.to(device)), data.y.to(device), data.num_classes)


def data_digest(data):
    return update_with_tensors(hashlib.sha256(), (data.x, data.y)).hexdigest()


def input_settings(args, ctx, precision="fp32"):
    """The settings a resume must share (compared key by key) — inputs are identified by hashes.
    precision as for build_context: a Hessian file always records fp32, as it did when the flag existed."""
    return dict(
        model=args.model, model_kwargs=json_flag(args.model_kwargs, "--model_kwargs", ModelError),
        checkpoint_sha256=file_sha256(args.model_file) if args.model_file else f"init(seed={args.seed})",
        directions_sha256=directions_digest(ctx.dirs), dir_type=args.dir_type,
        x=args.x, y=args.y, dataset=args.dataset, num_classes=ctx.train.num_classes,
        dataset_kwargs=json_flag(args.dataset_kwargs, "--dataset_kwargs", DataError),
        train_data_sha256=data_digest(ctx.train),
        raw_data=args.raw_data, data_split=args.data_split, split_idx=args.split_idx,
        random_labels=args.random_labels, loss_name=args.loss_name, loss=args.loss, precision=precision)



def loss_of(args):
    """--loss (a user's loss(outputs, targets) -> batch mean, imported) or --loss_name, as the API takes it."""
    return args.loss_name if args.loss is None else import_callable(args.loss, LossError, "--loss")
