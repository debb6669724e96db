"""The Git Re-Basin effect on this machine: the loss barrier between two MLPs trained from different seeds,
before and after landscape.align, for growing widths (the barrier left after alignment should shrink as
the width grows). Not a test: it trains small models for a few seconds each.

    OMP_NUM_THREADS=2 PYTHONPATH=lib python bench/bench_align.py [--widths 8 32 128 512] [--pairs 2]

Task: a Gaussian mixture, 10 classes of 3 clusters each in 16 dimensions. Model: 16 -> w -> w -> 10 with
ReLUs. Barrier: the largest loss on the straight line between the two weight vectors (11 points) minus
the line between the end losses, on the training set.
"""
import argparse
import copy
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

import landscape

DIM, CLASSES, CLUSTERS = 16, 10, 3


def mixture(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(CLASSES * CLUSTERS, DIM, generator=torch.Generator().manual_seed(1234)) * 1.6
    which = torch.randint(0, CLASSES * CLUSTERS, (n,), generator=g)
    return centers[which] + torch.randn(n, DIM, generator=g), which % CLASSES


def mlp(width):
    return nn.Sequential(nn.Linear(DIM, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                         nn.Linear(width, CLASSES))


def train(width, seed, x, y, epochs=8, batch=128):
    torch.manual_seed(seed)
    model = mlp(width)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(epochs):
        order = torch.randperm(len(x))
        for start in range(0, len(x), batch):
            rows = order[start:start + batch]
            opt.zero_grad()
            F.cross_entropy(model(x[rows]), y[rows]).backward()
            opt.step()
    return model


@torch.no_grad()
def line_losses(one, other, x, y, points=11):
    middle = copy.deepcopy(one)
    a, b = one.state_dict(), other.state_dict()
    losses = []
    for t in torch.linspace(0, 1, points):
        middle.load_state_dict({k: (1 - t) * a[k] + t * b[k] for k in a})
        losses.append(float(F.cross_entropy(middle(x), y)))
    return losses


def barrier(losses):
    n = len(losses) - 1
    return max(loss - ((n - i) * losses[0] + i * losses[-1]) / n for i, loss in enumerate(losses))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--widths", type=int, nargs="+", default=[8, 32, 128, 512])
    parser.add_argument("--pairs", type=int, default=2)
    args = parser.parse_args()
    x, y = mixture(4096)
    print("| width | end losses | midpoint before | midpoint after (weights) | after (activations) | "
          "barrier before | after (weights) | after (activations) | align s (weights) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for width in args.widths:
        for pair in range(args.pairs):
            one, other = train(width, 2 * pair, x, y), train(width, 2 * pair + 1, x, y)
            start = time.perf_counter()
            by_weights = landscape.align(one, other).model
            seconds = time.perf_counter() - start
            by_activations = landscape.align(one, other, method="activations", data=(x[:1024], y[:1024])).model
            before, weights, acts = (line_losses(one, m, x, y) for m in (other, by_weights, by_activations))
            print(f"| {width} | {before[0]:.3f}, {before[-1]:.3f} | {before[5]:.3f} | {weights[5]:.3f} | "
                  f"{acts[5]:.3f} | {barrier(before):.3f} | {barrier(weights):.3f} | {barrier(acts):.3f} | "
                  f"{seconds:.2f} |", flush=True)


if __name__ == "__main__":
    main()
