"""The flags that python -m landscape.connect's commands (line, curve, matrix) share, and what they make
of them: the model and its checkpoints, the data, how every point is evaluated, the results file."""
from dataclasses import dataclass

import torch

from ..api.path_eval import BN_CHOICES
from ..errors import DataError, LossError, ModelError
from ..imports import import_callable, spec_files
from ..inputs.data import data_files
from ..job.mpi import cpu_threads_per_rank
from ..space.precision import PRECISIONS
from .args import add_data_args, add_loss_device_args, json_flag, non_negative_finite, non_negative_int, positive_int
from .context import DataFlags, ModelFlags, load_data

FIGURES = ("png", "pdf")  # the formats of the figures along t


def add_model_args(p, checkpoints):
    """The models group: --model, --model_kwargs, then the command's checkpoint flags ([(flag, add_argument
    keywords)]), the data flags and --seed."""
    g = p.add_argument_group("models")
    g.add_argument("--model", default="resnet56", help="zoo name (see README) or 'package.module:factory'")
    g.add_argument("--model_kwargs", default="{}", help="JSON keyword arguments for a custom factory")
    for flag, keywords in checkpoints:
        g.add_argument(flag, **keywords)
    add_data_args(p)
    g.add_argument("--seed", type=int, default=0, help="seed of --random_labels")


def add_pair_args(p, path):
    """add_model_args with the two ends of a path (`path`: 'line', 'curve'): --model_file and --model_file2."""
    add_model_args(p, [("--model_file", dict(required=True, help=f"checkpoint of model_a, the {path}'s t = 0")),
                       ("--model_file2", dict(required=True, help=f"checkpoint of model_b, the {path}'s t = 1"))])


def add_point_args(g, n, n_help):
    """How every point is evaluated, into the argument group g: --n (default n), BatchNorm, batches,
    precision, --test, the loss, the device and threads (landscape.interpolate's arguments)."""
    g.add_argument("--n", type=int, default=n, help=n_help)
    g.add_argument("--bn", choices=BN_CHOICES, default="recompute",
                   help="BatchNorm statistics at each point: re-estimated from training batches, or interpolated")
    g.add_argument("--bn_batches", type=positive_int, default=None,
                   help="--bn recompute: the first N training batches (default: all of them)")
    g.add_argument("--batch_size", type=positive_int, default=256,
                   help="batch size of evaluation and of the BatchNorm estimate")
    g.add_argument("--precision", default="fp32", choices=PRECISIONS, help="of the evaluation")
    g.add_argument("--test", action="store_true", help="also evaluate the test set (test_loss, test_acc)")
    add_loss_device_args(g)
    g.add_argument("--threads", type=non_negative_int, default=0,
                   help="CPU threads per rank (0: cores / ranks per node)")


def add_results_args(p, out_help):
    """The results file group: --out, --overwrite, --progress_secs."""
    g = p.add_argument_group("results file")
    g.add_argument("--out", help=out_help)
    g.add_argument("--overwrite", action="store_true", help="delete an existing --out and start over")
    g.add_argument("--progress_secs", type=non_negative_finite, default=10.0, help="seconds between progress lines")


def input_files(args, checkpoints):
    """(flag, path) of everything a command reads, which none of its outputs may be: the checkpoints
    ([(flag, path)]), the data set's files and the files of --model, --dataset and --loss specs."""
    specs = (("--model", args.model), ("--dataset", args.dataset), ("--loss", args.loss))
    return [*checkpoints, *(("--dataset", path) for path in data_files(args.dataset, args.datapath)),
            *spec_files(specs)]


def pair_files(args):
    """The checkpoints of add_pair_args, as input_files takes them."""
    return [("--model_file", args.model_file), ("--model_file2", args.model_file2)]


@dataclass(frozen=True)
class Inputs:
    """What a connect command evaluates on: the model flags (checkpoint: --model_file, if the command has
    it), the training set, the test set (None without --test) and the loss (a name or the user's function)."""
    model: ModelFlags
    train: object
    test: object
    loss: object

    @property
    def data(self):
        return self.train.x, self.train.y

    @property
    def test_data(self):
        return None if self.test is None else (self.test.x, self.test.y)

    def build(self, checkpoint=None):
        """The model with `checkpoint`'s weights (default: --model_file's)."""
        return self.model.build(self.train.num_classes, checkpoint)


def read_inputs(args, world):
    """The threads set (--threads), and the Inputs of the flags: the loss imported, the data loaded."""
    torch.set_num_threads(args.threads or cpu_threads_per_rank())
    loss = args.loss_name if args.loss is None else import_callable(args.loss, LossError, "--loss")
    data = DataFlags(args.dataset, args.datapath, json_flag(args.dataset_kwargs, "--dataset_kwargs", DataError),
                     args.raw_data, args.download, tuple(args.synthetic_size), args.synthetic_seed,
                     args.num_classes, (args.data_split, args.split_idx), args.random_labels, args.seed)
    train, test = load_data(data, world)
    if args.test and test is None:
        raise DataError(f"--test asks for the test set but --dataset {args.dataset} has none")
    model = ModelFlags(args.model, json_flag(args.model_kwargs, "--model_kwargs", ModelError),
                       getattr(args, "model_file", None))
    return Inputs(model, train, test if args.test else None, loss)
