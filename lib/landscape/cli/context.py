"""What every grid driver sets up before its job: device, data, model, directions and run settings.

Every rank builds the same context; only rank 0 writes the direction file, and the drivers call
input_settings (which hashes the inputs) on rank 0 only.
"""
import hashlib
import os
from dataclasses import dataclass

import torch

from .. import __version__
from ..checkpoint import file_sha256, load_weights
from ..data import load_dataset, randomize_labels, select_split
from ..dirfile import Directions, check_fits, directions_digest, read_directions, write_directions
from ..directions import named_entries, normalize_direction, random_direction, target_direction
from ..errors import DataError, DirectionError, LandscapeError, ModelError
from ..evaluate import device_layout
from ..flatparams import PointSetter
from ..grid import make_grid
from ..models import build_model
from ..mpi import cpu_threads_per_rank, pick_device
from ..runner import provenance_record, rank0_first
from .args import DIRECTION_DEFAULTS, direction_flag, json_flag


@dataclass
class Context:
    device: torch.device
    grid: object
    model: torch.nn.Module
    names: list
    dirs: Directions
    setter: PointSetter
    train: object
    test: object
    dir_file: str
    surf_file: str
    eval_batch: int = None  # set by the surface driver once chosen; recorded in the provenance


def load_data(args, world):
    factory_kwargs = json_flag(args.dataset_kwargs, "--dataset_kwargs", DataError) if ":" in args.dataset else None
    kwargs = dict(raw=args.raw_data, synthetic_size=tuple(args.synthetic_size), seed=0, factory_kwargs=factory_kwargs)
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


def default_surf_file(args, dir_file):
    grid = f"x={args.x}" + (f"_y={args.y}" if args.y is not None else "")
    return os.path.splitext(dir_file)[0] + "_surf_" + grid.replace(":", ",") + ".h5"


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


def check_direction_flags(args, dirs, dir_file):
    """Direction flags given explicitly, and --dir_type (always set), must match an existing direction file."""
    given = {key: getattr(args, key) for key in (*DIRECTION_DEFAULTS, "dir_type")}
    differ = [f"--{k} {v} (the file has {dirs.attrs[k]})" for k, v in given.items()
              if v is not None and k in dirs.attrs and dirs.attrs[k] != v]
    if differ:
        raise DirectionError(f"{dir_file} exists and was made with other settings: {', '.join(differ)}; "
                             f"drop those flags to reuse it, or give a new --dir_file")


def build_context(args, world):
    device = pick_device(world, "cuda" if args.cuda else args.device, args.precision)  # binds the GPU first
    torch.set_num_threads(args.threads or cpu_threads_per_rank())
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    grid = make_grid(args.x, args.y)
    train, test = load_data(args, world)
    model = load_model(args, train.num_classes, args.model_file)
    dir_file = args.dir_file or default_dir_file(args)
    def ensure_directions():  # only rank 0 looks, so every rank takes part in the same broadcast
        if not os.path.exists(dir_file):
            write_directions(dir_file, make_directions(args, model, train.num_classes, grid.is_2d))
    rank0_first(world, ensure_directions)
    dirs = read_directions(dir_file)
    check_direction_flags(args, dirs, dir_file)
    names, entries = zip(*named_entries(model, args.dir_type))
    check_fits(dirs, names, [t.shape for t in entries], dir_file)
    if grid.is_2d and not dirs.is_2d:
        raise DirectionError(f"--y asks for a 2D grid but {dir_file} holds only an x direction; "
                             f"use another --dir_file or drop --y")
    model.to(device)
    entries = [t for _, t in named_entries(model, args.dir_type)]
    setter = PointSetter(model, list(names), entries, dirs.x, dirs.y if grid.is_2d else None)
    surf_file = args.surf_file or default_surf_file(args, dir_file)
    return Context(device, grid, model, list(names), dirs, setter, on_device(train, device),
                   on_device(test, device), dir_file, surf_file)


def on_device(data, device):
    """Data is normalized once at load and then lives on the rank's device for the whole job."""
    if data is None:
        return None
    return type(data)(device_layout(data.x.to(device)), data.y.to(device), data.num_classes)


def data_digest(data):
    h = hashlib.sha256()
    for t in (data.x, data.y):
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def input_settings(args, ctx):
    """The settings a resume must share (compared key by key) — inputs are identified by hashes."""
    return dict(
        model=args.model, model_kwargs=json_flag(args.model_kwargs, "--model_kwargs", ModelError),
        checkpoint_sha256=file_sha256(args.model_file) if args.model_file else f"init(seed={args.seed})",
        directions_sha256=directions_digest(ctx.dirs), dir_type=args.dir_type,
        x=args.x, y=args.y, dataset=args.dataset,
        dataset_kwargs=json_flag(args.dataset_kwargs, "--dataset_kwargs", DataError),
        train_data_sha256=data_digest(ctx.train),
        raw_data=args.raw_data, data_split=args.data_split, split_idx=args.split_idx,
        random_labels=args.random_labels, loss_name=args.loss_name, loss=args.loss, precision=args.precision)


def provenance(world, ctx):
    return provenance_record(world, ctx.device, ctx.eval_batch, ctx.dir_file)
