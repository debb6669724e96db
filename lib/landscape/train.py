"""Train a model and save the checkpoints that trajectory and surface plots need.

    python -m landscape.train --model resnet20 --dataset cifar10 --datapath data --save trained_nets/r20

Flags keep the reference trainer's names (cifar10/main.py): --lr --lr_decay --batch_size --epochs
--save --save_epoch --rand_seed --optimizer --weight_decay --momentum --noaug --label_corrupt_prob.
Files written in the --save folder:
    model_{e}.t7      {'state_dict', 'epoch', 'acc'}, acc = test accuracy in %; e = 0 (before
                      training), every --save_epoch epochs, and the last epoch
    opt_state_{e}.t7  {'optimizer', 'epoch', 'data_rng', 'torch_rng', 'cuda_rng', 'args'}
    log.out           one line per epoch
Rerunning a command resumes from the newest model_{e}.t7 that has its opt_state_{e}.t7. The
learning rate of epoch e is lr * lr_decay ** (number of --lr_milestones below e), a function of
the epoch alone, so resuming needs no scheduler state.
"""
import argparse
import os
import re
import sys
import time

import torch
import torch.nn as nn

from .checkpoint import load_weights, save_checkpoint
from .data import DEFAULT_SYNTHETIC_SIZE, NORMALIZATION, load_dataset, randomize_labels
from .errors import CheckpointError, DataError, LandscapeError
from .evaluate import LOSS_NAMES, loss_function
from .evaluate import evaluate as evaluate_batches
from .models import build_model
from .mpi import World, pick_device
from .progress import format_seconds
from .train_rng import augment, data_generator, draw_epoch, restore_rng, rng_state

EXIT_OK, EXIT_BAD_INPUT = 0, 2  # as landscape.job's, without importing h5py for a trainer
MODEL_FILE = re.compile(r"model_(\d+)\.t7$")


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="landscape-train", description=__doc__.split("\n")[0])
    p.add_argument("--model", "-m", default="vgg9", help="zoo name (resnet56, vgg9, ...) or package.module:factory")
    p.add_argument("--loss_name", "-l", default="crossentropy", choices=LOSS_NAMES)
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
    p.add_argument("--seed", "--rand_seed", dest="seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    args = p.parse_args(argv)
    for name in ("epochs", "save_epoch", "batch_size"):
        least = 0 if name == "epochs" else 1
        if getattr(args, name) < least:
            p.error(f"--{name} must be >= {least}, got {getattr(args, name)}")
    if not 0.0 <= args.label_corrupt_prob <= 1.0:
        p.error(f"--label_corrupt_prob must be within [0, 1], got {args.label_corrupt_prob}")
    if args.optimizer == "sgd" and args.nesterov and args.momentum <= 0:
        p.error("Nesterov SGD needs --momentum > 0; pass --no-nesterov for plain SGD")
    return args


def reference_init(model):
    """The reference trainer's initialisation, so curves are comparable with its runs."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in")
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=1e-3)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.BatchNorm2d)) and m.bias is not None:
            nn.init.zeros_(m.bias)


def make_optimizer(model, args):
    if args.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum,
                               weight_decay=args.weight_decay, nesterov=args.nesterov)
    return torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)


def learning_rate(epoch, base_lr, decay, milestones):
    """Step schedule: the reference multiplies lr by `decay` after each milestone epoch ends."""
    return base_lr * decay ** sum(1 for m in milestones if m < epoch)


def black_pixel(args, channels):
    """Per-channel value of a black pixel in the inputs' units: the reference pads before normalizing."""
    if args.dataset in NORMALIZATION and not args.raw_data:
        mean, std = NORMALIZATION[args.dataset]
        return -torch.tensor(mean) / torch.tensor(std)
    return torch.zeros(channels)  # raw pixels, or prepared float inputs whose scaling is unknown


def train_epoch(model, x, y, optimizer, loss_sum, batch_size, generator, pad_fill=None, on_progress=None):
    """One pass over (x, y) in a random order; returns (mean loss, accuracy %) of the training batches.

    pad_fill (C,) turns augmentation on (see train_rng.augment); None trains on the images as they are.
    All randomness (order, crops, flips) is drawn at the start from `generator`, on x's device, so the
    loop never copies from the host. `on_progress(done, loss, acc)` is called about ten times in
    epochs of 100+ batches (each call reads two numbers back).
    """
    model.train()
    draws = draw_epoch(len(x), generator, pad_fill is not None)
    num_batches = -(-len(x) // batch_size)
    report_every = num_batches // 10 if num_batches >= 100 and on_progress else None
    loss_total = torch.zeros((), dtype=torch.float64, device=x.device)
    correct = torch.zeros((), dtype=torch.int64, device=x.device)
    for batch in range(num_batches):
        part = slice(batch * batch_size, (batch + 1) * batch_size)
        index = draws.order[part]
        xb, yb = x[index], y[index]
        if pad_fill is not None:
            xb = augment(xb, draws.shifts[part], draws.flip[part], pad_fill)
        optimizer.zero_grad(set_to_none=True)
        logits = model(xb)
        batch_loss = loss_sum(logits, yb)
        (batch_loss / len(yb)).backward()
        optimizer.step()
        loss_total += batch_loss.detach()
        correct += (logits.detach().argmax(dim=1) == yb).sum()
        if report_every and (batch + 1) % report_every == 0 and batch + 1 < num_batches:
            done = min((batch + 1) * batch_size, len(x))
            done_loss, done_correct = torch.stack([loss_total, correct.double()]).tolist()
            on_progress(done, done_loss / done, 100.0 * done_correct / done)
    total_loss, total_correct = torch.stack([loss_total, correct.double()]).tolist()
    return total_loss / len(x), 100.0 * total_correct / len(x)


def checkpoint_epochs(save_dir):
    """Epochs e with both model_{e}.t7 and opt_state_{e}.t7 in save_dir, ascending."""
    names = set(os.listdir(save_dir)) if os.path.isdir(save_dir) else set()
    epochs = [int(m.group(1)) for m in map(MODEL_FILE.match, names) if m]
    return sorted(e for e in epochs if f"opt_state_{e}.t7" in names)


def save_state(save_dir, epoch, model, acc, optimizer, generator, args, device):
    save_checkpoint(os.path.join(save_dir, f"model_{epoch}.t7"), model, epoch, acc)
    state = {"optimizer": optimizer.state_dict(), "epoch": epoch, **rng_state(generator, device), "args": vars(args)}
    # Written last and atomically: a model file without its opt_state is never resumed from.
    tmp = os.path.join(save_dir, f".opt_state_{epoch}.t7.tmp")
    torch.save(state, tmp)
    os.replace(tmp, os.path.join(save_dir, f"opt_state_{epoch}.t7"))


def resume(save_dir, epoch, model, optimizer, generator, args, device):
    load_weights(model, os.path.join(save_dir, f"model_{epoch}.t7"))
    path = os.path.join(save_dir, f"opt_state_{epoch}.t7")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        optimizer.load_state_dict(state["optimizer"])
    except Exception as err:  # torch raises many types on bad or foreign files
        raise CheckpointError(f"cannot resume from {path} ({type(err).__name__}: {err}); "
                              "delete it (and its model file) or use another --save folder") from err
    for warning in restore_rng(state, generator, device):
        print(f"warning: {path} {warning}", flush=True)
    ignored = ("epochs", "save", "device")
    changed = sorted(k for k, v in state.get("args", {}).items()
                     if k not in ignored and vars(args).get(k) != v)
    if changed:
        print(f"warning: resuming with flags that differ from the saved run: {', '.join(changed)}", flush=True)


def log(save_dir, line):
    print(line, flush=True)
    with open(os.path.join(save_dir, "log.out"), "a") as f:
        f.write(line + "\n")


def evaluate(model, x, y, loss_sum, batch_size):
    """Eval mode, as the surfaces will see the model: BN running statistics, which stay untouched."""
    model.eval()
    return evaluate_batches(model, x, y, loss_sum, batch_size)


def run(args, device):
    torch.manual_seed(args.seed)
    train, test = load_dataset(args.dataset, args.datapath, raw=args.raw_data, download=args.download,
                               synthetic_size=tuple(args.synthetic_size), seed=args.seed)
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
    optimizer = make_optimizer(model, args)
    loss_sum = loss_function(args.loss_name)
    generator = data_generator(args.seed, device)
    if not args.noaug and x.ndim != 4:
        raise DataError(f"augmentation crops and flips images (N, C, H, W), but the inputs are "
                        f"{tuple(x.shape)}; pass --noaug")
    pad_fill = None if args.noaug else black_pixel(args, x.shape[1])
    os.makedirs(args.save, exist_ok=True)

    saved = checkpoint_epochs(args.save)
    if saved:
        start = saved[-1]
        resume(args.save, start, model, optimizer, generator, args, device)
        print(f"resumed from {os.path.join(args.save, f'model_{start}.t7')} (epoch {start})", flush=True)
    else:
        start = 0
        train_loss, train_acc = evaluate(model, x, y, loss_sum, args.batch_size)
        test_loss, test_acc = evaluate(model, x_test, y_test, loss_sum, args.batch_size)
        log(args.save, f"epoch 0/{args.epochs} train_loss {train_loss:.5f} train_acc {train_acc:.2f} "
                       f"test_loss {test_loss:.5f} test_acc {test_acc:.2f}")
        save_state(args.save, 0, model, test_acc, optimizer, generator, args, device)
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
            save_state(args.save, epoch, model, test_acc, optimizer, generator, args, device)


def main(argv=None):
    args = parse_args(argv)
    try:
        # the GPU of this process's local rank, refused when present but unusable; bound before the model
        device = pick_device(World(None), args.device)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fastest kernels; GPU runs are then not bit-reproducible
        run(args, device)
    except LandscapeError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return EXIT_BAD_INPUT
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
