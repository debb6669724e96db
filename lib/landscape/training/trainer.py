"""Training pieces: the reference trainer's init, schedule and checkpoint files, and one epoch on
device-resident data. No flags here: the command line is cli/train.py (`python -m landscape.train`).

Files written in a save folder:
    model_{e}.t7      {'state_dict', 'epoch', 'acc'}, acc = test accuracy in %; e = 0 (before
                      training), every save_epoch epochs, and the last epoch
    opt_state_{e}.t7  {'optimizer', 'epoch', 'data_rng', 'torch_rng', 'cuda_rng', 'args'}
The learning rate of epoch e is lr * decay ** (number of milestones below e), a function of the
epoch alone, so resuming needs no scheduler state.
"""
import os
import re

import torch
import torch.nn as nn

from ..errors import CheckpointError
from ..inputs.checkpoint import load_weights, save_checkpoint
from ..inputs.data import NORMALIZATION
from ..space.evaluate import evaluate as evaluate_batches
from ..space.finite import first_nonfinite
from .rng import augment, draw_epoch, restore_rng, rng_state

MODEL_FILE = re.compile(r"model_(\d+)\.t7$")


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


def make_optimizer(model, kind, lr, momentum, weight_decay, nesterov):
    """'sgd' (the reference's, Nesterov by default) or 'adam'."""
    if kind == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay,
                               nesterov=nesterov)
    return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)


def learning_rate(epoch, base_lr, decay, milestones):
    """Step schedule: the reference multiplies lr by `decay` after each milestone epoch ends."""
    return base_lr * decay ** sum(1 for m in milestones if m < epoch)


def black_pixel(dataset, raw, channels):
    """Per-channel value of a black pixel in the inputs' units: the reference pads before normalizing."""
    if dataset in NORMALIZATION and not raw:
        mean, std = NORMALIZATION[dataset]
        return -torch.tensor(mean) / torch.tensor(std)
    return torch.zeros(channels)  # raw pixels, or prepared float inputs whose scaling is unknown


def train_epoch(model, x, y, optimizer, loss_sum, batch_size, generator, pad_fill=None, on_progress=None):
    """One pass over (x, y) in a random order; returns (mean loss, accuracy %) of the training batches.

    pad_fill (C,) turns augmentation on (see rng.augment); None trains on the images as they are.
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


def save_state(save_dir, epoch, model, acc, optimizer, generator, device, flags):
    """model_{epoch}.t7 (the reference's layout), then opt_state_{epoch}.t7 with the optimizer, the random
    states and the run's `flags` (a dict, compared when resuming)."""
    save_checkpoint(os.path.join(save_dir, f"model_{epoch}.t7"), model, epoch, acc)
    state = {"optimizer": optimizer.state_dict(), "epoch": epoch, **rng_state(generator, device), "args": flags}
    # Written last and atomically: a model file without its opt_state is never resumed from.
    tmp = os.path.join(save_dir, f".opt_state_{epoch}.t7.tmp")
    torch.save(state, tmp)
    os.replace(tmp, os.path.join(save_dir, f"opt_state_{epoch}.t7"))


def resume(save_dir, epoch, model, optimizer, generator, device, flags):
    """Load epoch `epoch`'s model, optimizer and random states; returns warnings to show (missing random
    state, flags other than the saved run's)."""
    load_weights(model, os.path.join(save_dir, f"model_{epoch}.t7"))
    path = os.path.join(save_dir, f"opt_state_{epoch}.t7")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        optimizer.load_state_dict(state["optimizer"])
    except Exception as err:  # torch raises many types on bad or foreign files
        raise CheckpointError(f"cannot resume from {path} ({type(err).__name__}: {err}); "
                              "delete it (and its model file) or use another --save folder") from err
    found = first_nonfinite((f"{key} of parameter {index}", t) for index, entry in state["optimizer"]["state"].items()
                            for key, t in entry.items() if torch.is_tensor(t))
    if found is not None:
        raise CheckpointError(f"cannot resume from {path}: the optimizer's {found[0]} holds {found[1]} NaN or "
                              f"infinite value(s); resume from an earlier epoch")
    warnings = [f"{path} {warning}" for warning in restore_rng(state, generator, device)]
    ignored = ("epochs", "save", "device")
    changed = sorted(k for k, v in state.get("args", {}).items() if k not in ignored and flags.get(k) != v)
    if changed:
        warnings.append(f"resuming with flags that differ from the saved run: {', '.join(changed)}")
    return warnings


def evaluate(model, x, y, loss_sum, batch_size):
    """Eval mode, as the surfaces will see the model: BN running statistics, which stay untouched."""
    model.eval()
    return evaluate_batches(model, x, y, loss_sum, batch_size)
