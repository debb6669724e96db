"""Hessian extremes per grid point: one Lanczos run vs the reference's two ARPACK runs.

  PYTHONPATH=lib .venv/bin/python bench/bench_hessian.py

Every method uses the same model, images, grid points and mean-loss HVP operator
(landscape.hessian.mean_loss_hvp), so HVP counts compare the eigensolvers alone:
- ours: lanczos_extremes, one run with full reorthogonalization, both extremes, tol 1e-3;
- reference: scipy eigsh(k=1) for lambda_max, then eigsh(k=1) on H - 0.51*lambda_max*I for
  lambda_min, as tomgoldstein/loss-landscape hess_vec_prod.py does, at its tol 1e-2 and at 1e-3.
The reference code's own counter also includes one HVP per LinearOperator that scipy spends
probing the dtype; here the dtype is given, so that probe is not counted against it.
Also times one HVP by forward-over-reverse (torch.func) and by double backward.
"""
import argparse
import os
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy.sparse.linalg import LinearOperator, eigsh

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from landscape.hessian import HVP_METHODS, hessian_param_names, lanczos_extremes, mean_loss_hvp  # noqa: E402

CPU_MODEL = "lscpu | sed -n 's/^Model name: *//p'"
COMMAND = "PYTHONPATH=lib .venv/bin/python bench/bench_hessian.py"


class SmallCNN(nn.Sequential):
    """Fallback model when landscape.models is unavailable: conv-BN-ReLU twice and a linear head."""

    def __init__(self, num_classes=10):
        super().__init__(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, num_classes))


def make_model(name, seed=0):
    torch.manual_seed(seed)
    if name == "smallcnn":
        return SmallCNN(), "SmallCNN (defined in this bench)"
    try:
        from landscape.models import get_model
    except ImportError as err:
        print(f"landscape.models unavailable ({err}); using the bench's SmallCNN")
        return SmallCNN(), "SmallCNN (fallback: landscape.models did not import)"
    return get_model(name), f"{name} (landscape.models.get_model)"


def synthetic_batches(num_images, batch, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(num_images, 3, 32, 32, generator=gen)
    y = torch.randint(0, 10, (num_images,), generator=gen)
    return [(x[i:i + batch], y[i:i + batch]) for i in range(0, num_images, batch)]


def settle_bn(model, batches, passes=3):
    """Running statistics from these images, so eval-mode BN sees realistic scales."""
    model.train()
    with torch.no_grad():
        for _ in range(passes):
            for x, _ in batches:
                model(x)
    model.eval()


def filter_normalized_direction(model, seed):
    """Random direction scaled filter-wise to the weights; 1-D entries zero (biasbn ignored)."""
    gen = torch.Generator().manual_seed(seed)
    direction = {}
    for name, p in model.named_parameters():
        d = torch.randn(p.shape, generator=gen) if p.ndim > 1 else torch.zeros_like(p)
        if p.ndim > 1:
            d *= (p.detach().flatten(1).norm(dim=1) / (d.flatten(1).norm(dim=1) + 1e-10)).view(-1, *[1] * (p.ndim - 1))
        direction[name] = d
    return direction


def move_to(model, origin, direction, alpha):
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(origin[name] + alpha * direction[name])


def reference_extremes(op, tol, seed):
    """The reference's two eigsh solves (which='LM', k=1), shift 0.51*lambda_max, swap rule."""
    n = op.dim
    v0 = np.random.default_rng(seed).standard_normal(n)
    matvec = lambda v: op(torch.from_numpy(np.ravel(v))).numpy()  # noqa: E731
    max_eig = eigsh(LinearOperator((n, n), matvec=matvec, dtype=np.float64), k=1, tol=tol, v0=v0)[0][0]
    shift = 0.51 * max_eig
    shifted = LinearOperator((n, n), matvec=lambda v: matvec(v) - shift * np.ravel(v), dtype=np.float64)
    min_eig = eigsh(shifted, k=1, tol=tol, v0=v0)[0][0] + shift
    if max_eig <= 0 and min_eig > 0:
        max_eig, min_eig = min_eig, max_eig
    return min_eig, max_eig


def solve(op, method, tol, seed):
    """(lam_min, lam_max, hvps, seconds, note) for one point."""
    calls, start = op.calls, time.perf_counter()
    if method == "lanczos":
        r = lanczos_extremes(op, op.dim, tol=tol, max_iter=300, seed=seed)
        lam_min, lam_max, note = r.lam_min, r.lam_max, f"{r.iters} it, {'converged' if r.converged else 'NOT converged'}"
    else:
        lam_min, lam_max = reference_extremes(op, tol, seed)
        note = "2 eigsh"
    return lam_min, lam_max, op.calls - calls, time.perf_counter() - start, note


def time_hvp_methods(model, batches, repeats=3):
    """Median seconds per HVP for each method, interleaved so machine load hits both alike."""
    names = hessian_param_names(model)
    ops = {m: mean_loss_hvp(model, names, F.cross_entropy, batches, method=m) for m in HVP_METHODS}
    v = torch.randn(ops["fwd_rev"].dim, generator=torch.Generator().manual_seed(0))
    results = {m: op(v) for m, op in ops.items()}  # warm-up, and the two must agree
    gap = (results["fwd_rev"] - results["double_backward"]).norm() / results["double_backward"].norm()
    times = {m: [] for m in ops}
    for _ in range(repeats):
        for m, op in ops.items():
            start = time.perf_counter()
            op(v)
            times[m].append(time.perf_counter() - start)
    return {m: float(np.median(t)) for m, t in times.items()}, float(gap)


def shell(cmd):
    return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()


def point_table(rows):
    lines = ["| point α | method | λmin | λmax | HVPs | s/point | HVPs vs ours | notes |",
             "|---|---|---|---|---|---|---|---|"]
    for alpha, method, (lam_min, lam_max, hvps, secs, note), ours_hvps in rows:
        lines.append(f"| {alpha:g} | {method} | {lam_min:.5g} | {lam_max:.5g} | {hvps} | {secs:.1f} | "
                     f"{hvps / ours_hvps:.2f}x | {note} |")
    return lines


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="resnet20", help="zoo name, or smallcnn")
    p.add_argument("--images", type=int, default=256)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--alphas", type=float, nargs="+", default=[0.0, 0.5, 1.0], help="points theta0 + alpha*d")
    p.add_argument("--doc", default="docs/bench_hessian.md")
    args = p.parse_args()

    model, model_desc = make_model(args.model)
    batches = synthetic_batches(args.images, args.batch)
    settle_bn(model, batches)
    names = hessian_param_names(model)
    origin = {n: q.detach().clone() for n, q in model.named_parameters()}
    direction = filter_normalized_direction(model, seed=1)

    hvp_times, hvp_gap = time_hvp_methods(model, batches)
    small = SmallCNN()
    settle_bn(small, batches)
    small_times, small_gap = time_hvp_methods(small, batches)
    print("HVP seconds:", model_desc, hvp_times, "SmallCNN", small_times, flush=True)

    op = mean_loss_hvp(model, names, F.cross_entropy, batches)
    methods = [("ours: Lanczos tol 1e-3", "lanczos", 1e-3), ("reference eigsh×2 tol 1e-2", "reference", 1e-2),
               ("reference eigsh×2 tol 1e-3", "reference", 1e-3)]
    rows = []
    for alpha in args.alphas:
        move_to(model, origin, direction, alpha)
        ours = None
        for label, method, tol in methods:
            result = solve(op, method, tol, seed=0)
            ours = ours or result
            rows.append((alpha, label, result, ours[2]))
            print(f"alpha={alpha:g} {label}: {result}", flush=True)
    move_to(model, origin, direction, 0.0)

    totals = {label: sum(r[2][2] for r in rows if r[1] == label) for label, _, _ in methods}
    ours_total = totals[methods[0][0]]
    lines = [
        "# Hessian extremes: one Lanczos run vs the reference's two eigsh runs", "",
        f"- Machine: {shell(CPU_MODEL)}, {os.cpu_count()} cores, "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads.",
        f"- Date: {shell('date')}.", f"- Command: `{COMMAND}`.",
        f"- Model: {model_desc}, Hessian over the {len(names)} parameters with ndim > 1 "
        f"(dim {op.dim}); {args.images} synthetic 3x32x32 images, random labels, batches of {args.batch}; "
        "BN in eval mode with running statistics from these images.",
        "- Points: θ0 + α·d, θ0 the initialisation, d a filter-normalised random direction (biasbn ignored).",
        "- Operator: the mean-loss HVP for every method, so HVP counts compare the solvers alone. "
        "The reference eigsh calls use which='LM' (its default), k=1, the same v0, a given dtype.", "",
        *point_table(rows), "",
        "Total HVPs over all points: " + ", ".join(f"{k}: {v} ({v / ours_total:.2f}x ours)" for k, v in totals.items()),
        "",
        "## One HVP: forward-over-reverse vs double backward (median of 3, seconds)", "",
        "| model | fwd_rev (torch.func jvp of grad) | double_backward | relative difference of the products |",
        "|---|---|---|---|",
        f"| {model_desc} | {hvp_times['fwd_rev']:.3f} | {hvp_times['double_backward']:.3f} | {hvp_gap:.1e} |",
        f"| SmallCNN (bench) | {small_times['fwd_rev']:.4f} | {small_times['double_backward']:.4f} | {small_gap:.1e} |",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    with open(args.doc, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
