"""What every grid driver sets up before its API call: device, grid, data, model, directions, results file.

The parsed flags are read once, by read_flags, into records (the grid parsed into one Grid, which the
API takes as it is); everything after takes those records. Every rank builds the same context; only
rank 0 writes a new direction file, and the drivers call input_settings (which hashes) on rank 0 only.
"""
import os
from dataclasses import dataclass

import torch

from ..api import make_grid
from ..errors import DataError, GridSpecError, LandscapeError, LossError, ModelError
from ..files.directions import Directions, directions_digest
from ..files.paths import check_apart, results_outputs
from ..imports import import_callable, spec_files
from ..inputs.checkpoint import file_sha256, load_weights
from ..inputs.data import data_files, load_dataset, randomize_labels, select_split
from ..inputs.first_batch import check_first_batch, check_model, check_outputs, outputs_of
from ..inputs.models import build_model
from ..inputs.user import data_digest, summed_loss
from ..job.mpi import cpu_threads_per_rank, pick_device, rank0_first
from ..space.evaluate import device_layout
from ..space.grid import Grid
from ..space.precision import check_precision_applies
from .args import DIRECTION_DEFAULTS, json_flag
from .directions import default_dir_file, directions_for
from .eigen_flags import EigenFlags, eigen_flags


@dataclass(frozen=True)
class ModelFlags:
    name: str          # zoo name or 'module:factory'
    kwargs: dict
    file: str = None   # checkpoint; None: the seeded initialisation
    seed: int = 0

    def build(self, num_classes, checkpoint=None):
        """The model in eval mode with `checkpoint`'s weights (default: this model's own file)."""
        torch.manual_seed(self.seed)  # a model without a checkpoint starts from a reproducible init
        model = build_model(self.name, self.kwargs, num_classes=num_classes)
        checkpoint = checkpoint or self.file
        if checkpoint:
            load_weights(model, checkpoint)
        return model.eval()


@dataclass(frozen=True)
class DataFlags:
    dataset: str
    datapath: str
    kwargs: dict          # --dataset_kwargs (read only by 'module:factory' data sets)
    raw: bool
    download: bool
    synthetic_size: tuple
    synthetic_seed: int
    num_classes: int
    split: tuple          # (--data_split K, --split_idx i)
    random_labels: float
    label_seed: int       # --seed also draws the random labels


@dataclass(frozen=True)
class DirectionFlags:
    dir_type: str
    dir_file: str          # None: the default name
    norms: tuple           # (x, y), defaults filled in
    ignores: tuple
    same_dir: bool
    seed: int
    model_file2: str
    model_file3: str
    typed: tuple           # ((flag, value), ...) the user gave, checked against an existing file
    params: tuple = None   # plot_surface.py --params: glob patterns of the entries random directions move
    eig: EigenFlags = None  # plot_surface.py --eig_directions: eigenvectors instead of random directions


@dataclass(frozen=True)
class DriverFlags:
    model: ModelFlags
    data: DataFlags
    directions: DirectionFlags
    grid: Grid
    surf_file: str
    device: str
    threads: int
    plot: bool
    loss_name: str
    loss: str              # --loss MODULE:FUNCTION, or None
    test: bool             # plot_surface.py --test: the data set must have a test set


def read_flags(args):
    """The grid drivers' parsed flags as records: the one place a driver's namespace is read for them."""
    return DriverFlags(
        model=ModelFlags(args.model, json_flag(args.model_kwargs, "--model_kwargs", ModelError), args.model_file,
                         args.seed),
        data=DataFlags(args.dataset, args.datapath, json_flag(args.dataset_kwargs, "--dataset_kwargs", DataError),
                       args.raw_data, args.download, tuple(args.synthetic_size), args.synthetic_seed,
                       args.num_classes, (args.data_split, args.split_idx), args.random_labels, args.seed),
        directions=_direction_flags(args), grid=make_grid(args.x, args.y), surf_file=args.surf_file,
        device="cuda" if args.cuda else args.device, threads=args.threads, plot=args.plot,
        loss_name=args.loss_name, loss=args.loss, test=getattr(args, "test", False))


def _direction_flags(args):
    def flag(key):
        return DIRECTION_DEFAULTS[key] if getattr(args, key) is None else getattr(args, key)
    typed = {key: getattr(args, key) for key in (*DIRECTION_DEFAULTS, "dir_type", "model_file2", "model_file3")}
    typed = {k: v for k, v in typed.items() if v is not None}
    typed.update({k: getattr(args, k) for k in ("seed", "same_dir") if k in getattr(args, "given", frozenset())})
    params = getattr(args, "dir_params", None)  # plot_surface.py's --params; plot_hessian_eig.py's is the Hessian's
    if params is not None:
        typed["params"] = list(params)  # as the file records it
    return DirectionFlags(args.dir_type, args.dir_file, (flag("xnorm"), flag("ynorm")),
                          (flag("xignore"), flag("yignore")), args.same_dir, args.seed, args.model_file2,
                          args.model_file3, tuple(typed.items()), None if params is None else tuple(params),
                          eigen_flags(args))


@dataclass
class Context:
    device: torch.device
    grid: Grid
    model: torch.nn.Module
    dirs: Directions  # read from the direction file, whose path is dirs.path
    train: object
    test: object
    surf_file: str


def load_data(spec, world):
    kwargs = dict(raw=spec.raw, synthetic_size=spec.synthetic_size, seed=spec.synthetic_seed,
                  factory_kwargs=spec.kwargs if ":" in spec.dataset else None, num_classes=spec.num_classes)
    if spec.download:
        rank0_first(world, lambda: load_dataset(spec.dataset, spec.datapath, download=True, **kwargs) and None)
    train, test = load_dataset(spec.dataset, spec.datapath, **kwargs)
    train = select_split(train, *spec.split)
    if spec.random_labels:
        train = randomize_labels(train, spec.random_labels, seed=spec.label_seed)
    return train, test


@torch.inference_mode()
def check_output_classes(model, data, model_name, loss):
    """Before any file: the model runs on the data and gives what the loss takes (inputs/first_batch.py), and
    for class labels (N,) one logit per class, or cross-entropy would fail mid-grid. Other targets (tokens
    (N, T), regression) go to the user's --loss, which says itself what does not fit."""
    check_model(model)
    logits = outputs_of(model, data.x[:1], model_name)
    check_outputs(logits, 1, loss, model_name)
    if data.y.dim() == 1 and not data.y.is_floating_point() and data.num_classes is not None \
            and torch.is_tensor(logits) and (logits.dim() != 2 or logits.shape[1] < data.num_classes):
        raise ModelError(f"model {model_name} outputs shape {tuple(logits.shape)} for one sample, but the labels "
                         f"have {data.num_classes} classes: it needs (1, {data.num_classes}) or more; give the "
                         f"model the right number of outputs, or --num_classes if the data cannot say")
    check_first_batch(model, (data.x, data.y), loss, summed_loss(loss), data.x.device, model_name)


def default_surf_file(flags, dir_file):
    return os.path.splitext(dir_file)[0] + "_surf_" + flags.grid.spelled() + ".h5"


def unplottable_grid(grid):
    """Why --plot would fail on this grid whatever its values, or None."""
    if grid.is_2d and min(grid.shape) < 2:
        return (f"--plot draws contours, which need at least 2 points along x and y; this grid is "
                f"{len(grid.x)} x {len(grid.y)}: widen --x/--y, use a 1D grid (no --y), or drop --plot")
    return None


def build_context(flags, world, precision="fp32", reads=(), check_model_choices=None):
    """precision: the surface driver's --precision; plot_hessian_eig.py has no such flag (strict fp32).
    reads: (flag, path) of the driver's other inputs, which no output may be (check_paths).
    check_model_choices(model): the driver's own choices that need the model (the Hessian's parameter
    patterns), refused before the direction file is written."""
    device = pick_device(world, flags.device, precision)  # binds the GPU first
    check_precision_applies(precision, device.type)  # before the direction file is written
    torch.set_num_threads(flags.threads or cpu_threads_per_rank())
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    grid = flags.grid
    if flags.plot and unplottable_grid(grid):
        raise GridSpecError(unplottable_grid(grid))
    for flag, path in (("model_file", flags.model.file), ("model_file2", flags.directions.model_file2),
                       ("model_file3", flags.directions.model_file3), ("dir_file", flags.directions.dir_file),
                       ("surf_file", flags.surf_file)):
        refuse_directory(path, flag)
    rank0_first(world, lambda: check_paths(flags, world.size, reads))
    train, test = load_data(flags.data, world)
    if flags.test and test is None:
        raise DataError(f"--test asks for the test set but --dataset {flags.data.dataset} has none")
    model = flags.model.build(train.num_classes)
    check_output_classes(model, train, flags.model.name, loss_of(flags))
    if check_model_choices is not None:
        check_model_choices(model)
    dirs = directions_for(flags, world, model, train, device, loss_of(flags))
    model.to(device)
    surf_file = flags.surf_file or default_surf_file(flags, dirs.path)
    return Context(device, grid, model, dirs, on_device(train, device), on_device(test, device), surf_file)


def check_paths(flags, ranks, reads=()):
    """Before anything is written: no file this run writes is one it reads, whatever names lead to them
    (files/paths.py). The direction file is an input when it exists and an output when it is made."""
    d = flags.directions
    dir_file = d.dir_file or default_dir_file(flags)
    surf_file = flags.surf_file or default_surf_file(flags, dir_file)
    made = not os.path.exists(dir_file)
    specs = (("--model", flags.model.name), ("--dataset", flags.data.dataset), ("--loss", flags.loss))
    inputs = [("--model_file", flags.model.file), ("--model_file2", d.model_file2), ("--model_file3", d.model_file3),
              *(("--dataset", path) for path in data_files(flags.data.dataset, flags.data.datapath)),
              *spec_files(specs), *reads]
    outputs = results_outputs("--surf_file", surf_file, ranks)
    if made:
        outputs.insert(0, ("--dir_file", dir_file))
    else:
        inputs.append(("--dir_file", dir_file))
    check_apart(inputs, outputs)


def refuse_directory(path, flag):
    if path and os.path.isdir(path):
        raise LandscapeError(f"--{flag} {path} is a directory; give a file")


def on_device(data, device):
    """Data is normalized once at load and then lives on the rank's device for the whole job."""
    if data is None:
        return None
    return type(data)(device_layout(data.x.to(device)), data.y.to(device), data.num_classes)


def input_settings(flags, ctx, precision="fp32"):
    """The settings a resume must share (compared key by key): inputs are identified by hashes.
    precision as for build_context: a Hessian file always records fp32, as it did when the flag existed."""
    model, data = flags.model, flags.data
    return dict(
        model=model.name, model_kwargs=model.kwargs,
        checkpoint_sha256=file_sha256(model.file) if model.file else f"init(seed={model.seed})",
        directions_sha256=directions_digest(ctx.dirs), dir_type=flags.directions.dir_type, **ctx.grid.record(),
        dataset=data.dataset, num_classes=ctx.train.num_classes, dataset_kwargs=data.kwargs,
        train_data_sha256=data_digest((ctx.train.x, ctx.train.y)), raw_data=data.raw, data_split=data.split[0],
        split_idx=data.split[1], random_labels=data.random_labels, loss_name=flags.loss_name, loss=flags.loss,
        precision=precision)


def loss_of(flags):
    return loss_from(flags.loss_name, flags.loss)


def loss_from(loss_name, loss):
    """--loss (a user's loss(outputs, targets) -> batch mean, imported) or --loss_name, as the API takes it."""
    return loss_name if loss is None else import_callable(loss, LossError, "--loss")
