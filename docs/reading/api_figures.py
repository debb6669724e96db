"""The figures of docs/READING.md that compare several 1D curves in one plot, computed with the Python API
(landscape.surface) on the built-in synthetic data; docs/reading/make_figures.sh runs it.

  PYTHONPATH=lib .venv/bin/python docs/reading/api_figures.py WORK FIGURE_DIR norms|bn|sum

- norms: a trained ResNet-20 (A) and a copy of it (B) whose every BN-fed conv filter is multiplied by its own
  random factor between 1/4 and 4, the BN running statistics adjusted to match: A and B compute the same
  function (checked: same loss). Their 1D curves along one Gaussian direction, raw (no normalization; the range
  chosen so A's end points move as far as with the filter-normalized ±1), layer-normalized and filter-normalized.
  Also prints how the raw direction's size, relative to the weights, varies from layer to layer.
- bn: the same ResNet-20 along one filter-normalized direction, in eval mode (what landscape evaluates) and with
  BatchNorm forced into train mode (batch statistics) at two evaluation batch sizes.
- sum: no figure; the loss with a summed instead of a mean loss function, at two evaluation batch sizes.
Each curve's values are cached in WORK/*.h5 (the API's resumable results files).
"""
import copy
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import landscape  # noqa: E402
from landscape.files.directions import Directions  # noqa: E402
from landscape.inputs.checkpoint import load_weights  # noqa: E402
from landscape.inputs.data import load_dataset  # noqa: E402
from landscape.inputs.models import get_model  # noqa: E402
from landscape.space.directions import named_entries, random_direction  # noqa: E402

SIZE = (10000, 1000)   # the synthetic set the nets were trained on (make_figures.sh)
IMAGES = 250           # the first 250 training images at every point (plot_surface.py --data_split 40)
POINTS = 31
SEED = 0
DPI = 100


def data():
    train, _ = load_dataset("synthetic", synthetic_size=SIZE)
    return train.x[:IMAGES], train.y[:IMAGES]


def net(path, name="resnet20"):
    return load_weights(get_model(name), path).eval()


def curve(work, tag, model, dirs, span, batch_size=IMAGES):
    path = os.path.join(work, f"{tag}.h5")
    res = landscape.surface(model, data(), directions=dirs, x=(-span, span, POINTS), path=path, batch_size=batch_size,
                            progress_secs=1e9)
    return res.x, res.train_loss, res.train_acc


def bn_pairs(model):
    """(conv, bn) pairs where the BN directly normalizes that conv's output (registration order, as in the zoo)."""
    mods, pairs = list(model.modules()), []
    for a, b in zip(mods, mods[1:]):
        if isinstance(a, torch.nn.Conv2d) and isinstance(b, torch.nn.BatchNorm2d):
            pairs.append((a, b))
    return pairs


def rescaled_twin(model, seed=1):
    """The same function with other weights: filter j of a BN-fed conv times c_j, c_j log-uniform in [1/4, 4]."""
    twin, gen = copy.deepcopy(model), torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for conv, bn in bn_pairs(twin):
            c = torch.exp((torch.rand(conv.out_channels, generator=gen) * 2 - 1) * math.log(4.0))
            conv.weight.mul_(c.view(-1, 1, 1, 1))
            bn.running_mean.mul_(c)
            bn.running_var.mul_(c * c)
    return twin


def raw_direction(model, seed):
    """A Gaussian direction with no normalization (biases and BN entries zeroed, as --xignore biasbn does)."""
    names, entries = zip(*named_entries(model, "weights"))
    d = [t if e.dim() > 1 else torch.zeros_like(t) for t, e in zip(random_direction(entries, seed), entries)]
    return Directions(d, None, dict(names=list(names), dir_type="weights", seed=seed, xnorm="raw"))


def global_norm(tensors):
    return float(torch.sqrt(sum((t.double() ** 2).sum() for t in tensors)))


def layer_table(model, raw):
    """Per weight tensor: its share of the raw direction's squared norm and ||d_l|| / ||theta_l||."""
    names, entries = zip(*named_entries(model, "weights"))
    total = sum(float((d ** 2).sum()) for d in raw.x)
    rows = [(n, e.numel(), float((d ** 2).sum()) / total, float(d.norm() / e.norm()))
            for n, e, d in zip(names, entries, raw.x) if e.dim() > 1]
    print("weight tensor | entries | share of |d|^2 | |d_l| / |theta_l|")
    for n, size, share, ratio in rows:
        print(f"{n} | {size} | {share:.4f} | {ratio:.1f}")
    ratios = [r[3] for r in rows]
    print(f"ratio |d_l|/|theta_l|: min {min(ratios):.1f}, max {max(ratios):.1f}")


def norms_figure(work, out):
    a = net(os.path.join(work, "resnet20", "model_3.t7"))
    b = rescaled_twin(a)
    x, y = data()
    with torch.no_grad():
        la, lb = (float(torch.nn.functional.cross_entropy(m(x), y)) for m in (a, b))
    print(f"A and B at their own weights: loss {la:.6f} and {lb:.6f}")
    raw_a = raw_direction(a, SEED)
    span = global_norm([e for e in named_entries_weights(a)]) / global_norm(raw_a.x)
    print(f"raw direction: |theta_A| / |d| = {span:.4f} (the raw range is ±{span:.4f})")
    layer_table(a, raw_a)
    panels = [("no normalization (raw Gaussian)", lambda m: raw_direction(m, SEED), span),
              ("layer-normalized (--xnorm layer)",
               lambda m: landscape.random_directions(m, 1, norm="layer", seed=SEED), 1.0),
              ("filter-normalized (--xnorm filter)", lambda m: landscape.random_directions(m, 1, seed=SEED), 1.0)]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), sharey=True, layout="constrained")
    for ax, (title, make, s) in zip(axes, panels):
        for tag, model, style in (("A", a, "b-"), ("B", b, "r--")):
            key = title.split()[0].replace("-", "")
            xs, loss, _ = curve(work, f"norms_{key}_{tag}", model, make(model), s)
            ax.plot(xs, loss, style, lw=1.5, label=f"net {tag}")
            print(f"{title} {tag}: loss at 0 {loss[POINTS // 2]:.4f}, at ends {loss[0]:.3f} {loss[-1]:.3f}")
        ax.set_yscale("log")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step along the direction (α)")
    axes[0].set_ylabel("training loss (250 images)")
    axes[0].legend(title="same function", fontsize=9)
    save(fig, out, "normalization.png")


def named_entries_weights(model):
    return [e for _, e in named_entries(model, "weights") if e.dim() > 1]


class TrainModeBN(torch.nn.Module):
    """The pitfall, on purpose: BatchNorm uses each batch's statistics however the caller sets the mode
    (momentum 0, so the running statistics are not changed by it)."""

    def __init__(self, model):
        super().__init__()
        self.net = model
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.momentum = 0.0

    def forward(self, x):
        for m in self.net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.train()
        return self.net(x)


def bn_figure(work, out):
    a = net(os.path.join(work, "resnet20", "model_3.t7"))
    fig, ax = plt.subplots(figsize=(6, 4.6), layout="constrained")
    runs = [("eval mode (running statistics): what landscape evaluates", a, IMAGES, "b-"),
            ("BN in train mode, batches of 250", TrainModeBN(copy.deepcopy(a)), IMAGES, "r--"),
            ("BN in train mode, batches of 10", TrainModeBN(copy.deepcopy(a)), 10, "g:")]
    for i, (label, model, batch, style) in enumerate(runs):
        dirs = landscape.random_directions(model, 1, seed=SEED)  # the same numbers for the wrapper
        xs, loss, acc = curve(work, f"bn_{i}", model, dirs, 1.0, batch_size=batch)
        ax.plot(xs, loss, style, lw=1.5, label=label)
        print(f"{label}: loss at 0 {loss[POINTS // 2]:.4f} (acc {acc[POINTS // 2]:.3f}), at ends {loss[0]:.3f} "
              f"{loss[-1]:.3f}")
    ax.set_yscale("log")
    ax.set_xlabel("step along one filter-normalized direction (α)")
    ax.set_ylabel("training loss (250 images)")
    ax.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)  # above the curves
    save(fig, out, "bn_train_mode.png")


def summed_loss(outputs, targets):
    """The pitfall, on purpose: a sum where landscape expects the batch's mean."""
    return torch.nn.functional.cross_entropy(outputs, targets, reduction="sum")


def sum_numbers(work, out):
    """No figure: the loss at α = 0 and 0.5 along one filter-normalized direction, mean against sum, two batches."""
    a = net(os.path.join(work, "resnet20", "model_3.t7"))
    dirs = landscape.random_directions(a, 1, seed=SEED)
    for label, loss, batch in (("mean (default)", None, IMAGES), ("sum, batches of 250", summed_loss, 250),
                               ("sum, batches of 50", summed_loss, 50)):
        res = landscape.surface(a, data(), loss=loss, directions=dirs, x=(0.0, 0.5, 2), batch_size=batch,
                                progress_secs=1e9)
        print(f"{label}: loss at α=0 {res.train_loss[0]:.5g}, at α=0.5 {res.train_loss[1]:.5g}, "
              f"ratio {res.train_loss[1] / res.train_loss[0]:.4g}")


def save(fig, out, name):
    os.makedirs(out, exist_ok=True)
    fig.savefig(os.path.join(out, name), dpi=DPI)
    print(f"wrote {os.path.join(out, name)}")


if __name__ == "__main__":
    work, out, which = sys.argv[1:4]
    torch.manual_seed(0)
    {"norms": norms_figure, "bn": bn_figure, "sum": sum_numbers}[which](work, out)
