"""python -m landscape.train: train a model and save the checkpoints that trajectory and surface plots need.

    python -m landscape.train --model resnet20 --dataset cifar10 --datapath data --save trained_nets/r20

Flags keep the reference trainer's names (cifar10/main.py): --lr --lr_decay --batch_size --epochs
--save --save_epoch --rand_seed --optimizer --weight_decay --momentum --noaug --label_corrupt_prob.
The files it writes are described in landscape/training/trainer.py; log.out gets one line per epoch.
Rerunning a command resumes from the newest model_{e}.t7 that has its opt_state_{e}.t7.
"""
import argparse
import math
import os
import sys
import time

import torch

from ..errors import CheckpointError, DataError, LandscapeError
from ..inputs.data import DEFAULT_SYNTHETIC_SIZE, load_dataset, randomize_labels
from ..inputs.first_batch import check_first_batch, check_model
from ..inputs.models import build_model
from ..job.mpi import World, pick_device
from ..job.progress import format_seconds
from ..space.losses import loss_function, per_sample
from ..training.rng import data_generator
from ..training.trainer import (
    black_pixel,
    checkpoint_epochs,
    evaluate,
    learning_rate,
    make_optimizer,
    reference_init,
    resume,
    save_state,
    train_epoch,
)
from .exits import EXIT_BAD_INPUT, EXIT_OK, EXIT_RESULTS_KEPT, one_line


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="landscape-train", description=__doc__.split("\n")[0])
    p.add_argument("--model", "-m", default="vgg9", help="zoo name (resnet56, vgg9, ...) or package.module:factory")
    p.add_argument("--loss_name", "-l", default="crossentropy", choices=("crossentropy", "mse"))
    p.add_argument("--dataset", default="synthetic",
                   help="cifar10, cifar100, synthetic, or any spec the loader accepts (FILE.pt, module:function)")
    p.add_argument("--datapath", help="folder that holds (or receives) cifar10/cifar100")
    p.add_argument("--download", action="store_true", help="download the dataset if it is missing")
    p.add_argument("--raw_data", action="store_true", help="do not normalize the images")
    p.add_argument("--synthetic_size", type=int, nargs=2, default=list(DEFAULT_SYNTHETIC_SIZE),
                   metavar=("N_TRAIN", "N_TEST"))
    p.add_argument("--noaug", action="store_true", help="no random crop / horizontal flip")
    p.add_argument("--label_corrupt_prob", type=float, default=0.0, help="fraction of training labels randomized")
    p.add_argument("--optimizer", default="sgd", choices=("sgd", "adam"))
    p.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=True,
                   help="Nesterov momentum for sgd (the reference always used it)")
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight_decay", type=float, default=5e-4)
    p.add_argument("--lr_decay", type=float, default=0.1, help="factor applied to lr after each milestone epoch")
    p.add_argument("--lr_milestones", type=int, nargs="*", default=[150, 225, 275])
    p.add_argument("--batch_size", type=int, default=128)
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--save", default="trained_nets/run", help="folder for checkpoints")
    p.add_argument("--save_epoch", type=int, default=10, help="save every this many epochs")
    p.add_argument("--seed", "--rand_seed", dest="seed", type=int, default=0,
                   help="initialisation, data order, augmentation and --label_corrupt_prob")
    p.add_argument("--synthetic_seed", type=int, default=0,
                   help="which synthetic data set (the grid drivers take the same flag, so both see one set)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    args = p.parse_args(argv)
    for name in ("epochs", "save_epoch", "batch_size"):
        least = 0 if name == "epochs" else 1
        if getattr(args, name) < least:
            p.error(f"--{name} must be >= {least}, got {getattr(args, name)}")
    for name, least, strict in (("lr", 0.0, True), ("lr_decay", 0.0, True), ("momentum", 0.0, False),
                                ("weight_decay", 0.0, False)):
        value = getattr(args, name)
        if not (math.isfinite(value) and (value > least if strict else value >= least)):
            p.error(f"--{name} must be a finite number {'>' if strict else '>='} {least:g}, got {value}")
    if os.path.exists(args.save) and not os.path.isdir(args.save):
        p.error(f"--save {args.save} is a file; give the folder for the checkpoints")
    if not 0.0 <= args.label_corrupt_prob <= 1.0:
        p.error(f"--label_corrupt_prob must be within [0, 1], got {args.label_corrupt_prob}")
    if args.optimizer == "sgd" and args.nesterov and args.momentum <= 0:
        p.error("Nesterov SGD needs --momentum > 0; pass --no-nesterov for plain SGD")
    sgd_only = [f"--{name}" for name in ("momentum", "nesterov") if getattr(args, name) != p.get_default(name)]
    if args.optimizer != "sgd" and sgd_only:  # Adam has neither: the flags would do nothing
        p.error(f"{' and '.join(sgd_only)} apply to --optimizer sgd only")
    return args


def log(save_dir, line):
    print(line, flush=True)
    with open(os.path.join(save_dir, "log.out"), "a") as f:
        f.write(line + "\n")


def check_before_training(model, x, y, loss_name, loss_total, device):
    """The model, its outputs and the loss on a first batch, in eval mode (no BatchNorm statistics move):
    a model that cannot train is one line before any checkpoint is written."""
    check_model(model)
    model.eval()
    check_first_batch(model, (x, y), loss_name, loss_total, device)
    model.train()


def run(args, device):
    torch.manual_seed(args.seed)
    train, test = load_dataset(args.dataset, args.datapath, raw=args.raw_data, download=args.download,
                               synthetic_size=tuple(args.synthetic_size), seed=args.synthetic_seed)
    if args.label_corrupt_prob > 0:
        train = randomize_labels(train, args.label_corrupt_prob, args.seed)
    if test is None:
        print(f"{args.dataset} has no test set: checkpoint 'acc' values are training-set accuracies", flush=True)
        test = train
    x, y = train.x.to(device), train.y.to(device)
    x_test, y_test = test.x.to(device), test.y.to(device)
    model = build_model(args.model, None, train.num_classes)
    reference_init(model)
    model.to(device)
    check_before_training(model, x, y, args.loss_name, per_sample(loss_function(args.loss_name)), device)
    optimizer = make_optimizer(model, args.optimizer, args.lr, args.momentum, args.weight_decay, args.nesterov)
    loss_sum = loss_function(args.loss_name)
    generator = data_generator(args.seed, device)
    if not args.noaug and x.ndim != 4:
        raise DataError(f"augmentation crops and flips images (N, C, H, W), but the inputs are "
                        f"{tuple(x.shape)}; pass --noaug")
    pad_fill = None if args.noaug else black_pixel(args.dataset, args.raw_data, x.shape[1])
    try:
        os.makedirs(args.save, exist_ok=True)
    except OSError as e:
        raise CheckpointError(f"cannot create the --save folder {args.save} ({e.strerror or e})") from None

    saved = checkpoint_epochs(args.save)
    if saved:
        start = saved[-1]
        for warning in resume(args.save, start, model, optimizer, generator, device, vars(args)):
            print(f"warning: {warning}", flush=True)
        print(f"resumed from {os.path.join(args.save, f'model_{start}.t7')} (epoch {start})", flush=True)
    else:
        start = 0
        train_loss, train_acc = evaluate(model, x, y, loss_sum, args.batch_size)
        test_loss, test_acc = evaluate(model, x_test, y_test, loss_sum, args.batch_size)
        log(args.save, f"epoch 0/{args.epochs} train_loss {train_loss:.5f} train_acc {train_acc:.2f} "
                       f"test_loss {test_loss:.5f} test_acc {test_acc:.2f}")
        save_state(args.save, 0, model, test_acc, optimizer, generator, device, vars(args))
    if start >= args.epochs:
        print(f"nothing to do: {args.save} already holds epoch {start} >= --epochs {args.epochs}", flush=True)
        return

    print(f"training {args.model} on {args.dataset} ({len(x)} images) on {device}, "
          f"epochs {start + 1}..{args.epochs}", flush=True)
    t_start = time.monotonic()
    for epoch in range(start + 1, args.epochs + 1):
        lr = learning_rate(epoch, args.lr, args.lr_decay, args.lr_milestones)
        for group in optimizer.param_groups:
            group["lr"] = lr
        t0 = time.monotonic()

        def on_progress(done, loss, acc, epoch=epoch, t0=t0):
            elapsed = time.monotonic() - t0
            print(f"  epoch {epoch} [{done}/{len(x)}] loss {loss:.5f} acc {acc:.2f} time {format_seconds(elapsed)} "
                  f"epoch ETA {format_seconds(elapsed / done * (len(x) - done))}", flush=True)

        train_loss, train_acc = train_epoch(model, x, y, optimizer, loss_sum, args.batch_size, generator,
                                            pad_fill=pad_fill, on_progress=on_progress)
        test_loss, test_acc = evaluate(model, x_test, y_test, loss_sum, args.batch_size)
        now = time.monotonic()
        eta = (now - t_start) / (epoch - start) * (args.epochs - epoch)
        log(args.save, f"epoch {epoch}/{args.epochs} lr {lr:.4g} train_loss {train_loss:.5f} "
                       f"train_acc {train_acc:.2f} test_loss {test_loss:.5f} test_acc {test_acc:.2f} "
                       f"time {format_seconds(now - t0)} ETA {format_seconds(eta)}")
        if epoch % args.save_epoch == 0 or epoch == args.epochs:
            save_state(args.save, epoch, model, test_acc, optimizer, generator, device, vars(args))


def main(argv=None):
    args = parse_args(argv)
    try:
        # the GPU of this process's local rank, refused when present but unusable; bound before the model
        device = pick_device(World(None), args.device)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fastest kernels; GPU runs are then not bit-reproducible
        run(args, device)
    except LandscapeError as err:
        return failed(err, args.save)
    except Exception as err:  # the model, data or loss failed in the training itself, past the checks
        return failed(f"training failed: {type(err).__name__}: {err}", args.save)
    return EXIT_OK


def failed(error, save):
    """One line; exit 3 once checkpoints exist (they are kept and a rerun resumes), else 2."""
    kept = os.path.isdir(save) and checkpoint_epochs(save)
    print(f"error: {one_line(error)}" + (f"; the checkpoints in {save} are kept (exit 3)" if kept else ""),
          file=sys.stderr, flush=True)
    return EXIT_RESULTS_KEPT if kept else EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
