"""How much λmax and the trace of the mean-loss Hessian move with the data sample (issue 25, docs/READING.md).

  PYTHONPATH=lib .venv/bin/python bench/bench_hessian_samples.py --model_file MODEL.t7 [--sizes 500 1000 5000 all]
      [--seeds 3] [--tol 1e-2] [--probes 30] [--out bench/out/hessian_samples.jsonl]

At one point (a trained ResNet-20, the checkpoint itself), for each sample size N and each subset seed s: a
random subset of N training images (seeded by s; 'all' is the whole training set, one subset), then
landscape.hessian_map(..., x=(0, 0, 1), samples=None, seed=PROBE_SEED, trace=probes) on exactly that subset.
The subset is cut here, not by hessian_map's samples=, so that the Lanczos start vector and the Hutchinson
probes are the SAME for every subset: the spread over subsets of one size is then the sample's alone (the
probes' error is common to all of them and shows in trace_err). The probes' own noise is measured apart:
--probe_seeds more runs on the first subset of --probe_size with other probe seeds.

One JSON line per run (appended, so a run that is stopped keeps what it did; runs already in --out are
skipped, so the same command continues it), then the summary table (mean, std, min–max per size).
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

PROBE_SEED = 0


def parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet20")
    p.add_argument("--model_file", required=True)
    p.add_argument("--synthetic_size", type=int, nargs=2, default=(10000, 1000))
    p.add_argument("--sizes", nargs="+", default=["500", "1000", "5000", "all"])
    p.add_argument("--seeds", type=int, default=3, help="subsets per size (seeds 0..seeds-1)")
    p.add_argument("--tol", type=float, default=1e-2)
    p.add_argument("--probes", type=int, default=4)
    p.add_argument("--hvp_batch", type=int, default=250)
    p.add_argument("--probe_size", default="500", help="size whose first subset gets the extra probe seeds")
    p.add_argument("--probe_seeds", type=int, default=3, help="probe seeds there, PROBE_SEED included")
    p.add_argument("--out", default=os.path.join("bench", "out", "hessian_samples.jsonl"))
    p.add_argument("--summary_only", action="store_true")
    p.add_argument("--losses", action="store_true", help="only the per-sample losses of every subset (no Hessian)")
    return p.parse_args()


def load(args):
    from landscape.inputs.checkpoint import load_weights
    from landscape.inputs.data import load_dataset
    from landscape.inputs.models import get_model
    train, _ = load_dataset("synthetic", synthetic_size=tuple(args.synthetic_size))
    model = load_weights(get_model(args.model), args.model_file).eval()
    return model, train.x, train.y


def subset_index(n, size, seed):
    """Which of n samples subset `seed` of `size` holds: a seeded random choice, so for one seed the smaller
    subsets lie inside the larger ones; 'all' is every sample."""
    if size == "all":
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(1000 + seed))[:int(size)]


def subset(x, y, size, seed):
    keep = subset_index(len(y), size, seed)
    return x[keep], y[keep]


def whole_loss(model, x, y):
    with torch.no_grad():
        logits = torch.cat([model(x[i:i + 500]) for i in range(0, len(y), 500)])
    return float(torch.nn.functional.cross_entropy(logits, y)), float((logits.argmax(1) == y).float().mean())


def subset_losses(model, x, y, args):
    """Why the subsets differ: near zero loss, a sample's curvature grows with its loss (the softmax's
    p(1 - p) terms), so the few samples that are not yet fitted carry most of the Hessian. Prints how the
    per-sample losses are spread and each subset's mean loss, to set beside its trace."""
    with torch.no_grad():
        logits = torch.cat([model(x[i:i + 500]) for i in range(0, len(y), 500)])
    losses = torch.nn.functional.cross_entropy(logits, y, reduction="none").double()
    ordered = losses.sort(descending=True).values
    for top in (10, 100, 1000):
        print(f"the {top} largest of {len(y)} per-sample losses carry {float(ordered[:top].sum() / losses.sum()):.1%} "
              f"of the total")
    print(f"all: mean loss {float(losses.mean()):.5f}")
    for size in args.sizes:
        for seed in ([0] if size == "all" else range(args.seeds)):
            keep = subset_index(len(y), size, seed)
            print(f"size {size} subset {seed}: mean loss {float(losses[keep].mean()):.5f}")


def one_run(model, x, y, args, size, seed, probe_seed):
    import landscape
    xs, ys = subset(x, y, size, seed)
    t0, c0 = time.perf_counter(), time.process_time()
    r = landscape.hessian_map(model, (xs, ys), x=(0, 0, 1), samples=None, seed=probe_seed, trace=args.probes,
                              tol=args.tol, hvp_batch=min(args.hvp_batch, len(ys)), progress_secs=1e9)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0

    def value(name):
        return float(np.asarray(r.values[name]).reshape(-1)[0])
    return dict(size=size, n=len(ys), subset_seed=seed, probe_seed=probe_seed, max_eig=value("max_eig"),
                min_eig=value("min_eig"), trace=value("trace"), trace_err=value("trace_err"),
                eig_iters=int(value("eig_iters")), hvps_trace=int(value("hvps_trace")),
                converged=bool(np.asarray(r.values["eig_converged"]).reshape(-1)[0]), wall_s=wall, cpu_s=cpu)


def planned(args):
    """Every (size, subset seed, probe seed), in an order that makes a stopped run useful: the first subset of
    each size, then the other subsets and probe seeds of the sizes below the largest (cheapest first), then
    'all', then the largest size's other subsets (the most expensive spreads)."""
    sizes = [int(size) for size in args.sizes if size != "all"]
    largest = max(sizes)
    runs = [(str(n), 0, PROBE_SEED) for n in sizes]
    rest = [(str(n), s, PROBE_SEED) for n in sizes for s in range(1, args.seeds)]
    rest += [(args.probe_size, 0, PROBE_SEED + k) for k in range(1, args.probe_seeds)]
    rest.sort(key=lambda r: (int(r[0]), r[2], r[1]))
    runs += [r for r in rest if int(r[0]) < largest]
    runs += [("all", 0, PROBE_SEED)] if "all" in args.sizes else []
    return runs + [r for r in rest if int(r[0]) == largest]


def done_runs(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def spread(values):
    """The sample standard deviation, or a dash for a single value."""
    return f"{values.std(ddof=1):.3g}" if len(values) > 1 else "–"


def summary(records):
    """Per size, over its subsets at the common probe seed: mean, std (ddof 1), min–max of λmax and trace."""
    lines = ["| samples | subsets | λmax mean | λmax std | λmax min–max | trace mean | trace std | trace min–max "
             "| trace_err (probes, 1σ) | λmin mean | HVPs (Lanczos + trace) | CPU s per run |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    sizes = sorted({r["size"] for r in records}, key=lambda s: float("inf") if s == "all" else int(s))
    for size in sizes:
        rs = [r for r in records if r["size"] == size and r["probe_seed"] == PROBE_SEED]
        if not rs:
            continue
        lam, tr = np.array([r["max_eig"] for r in rs]), np.array([r["trace"] for r in rs])
        label = f"all ({rs[0]['n']:,})" if size == "all" else f"{int(size):,}"
        lines.append(f"| {label} | {len(rs)} | {lam.mean():.4g} | {spread(lam)} | {lam.min():.4g}–{lam.max():.4g} "
                     f"| {tr.mean():.4g} | {spread(tr)} | {tr.min():.4g}–{tr.max():.4g} "
                     f"| {np.mean([r['trace_err'] for r in rs]):.3g} | {np.mean([r['min_eig'] for r in rs]):.3g} "
                     f"| {np.mean([r['eig_iters'] for r in rs]):.0f} + {np.mean([r['hvps_trace'] for r in rs]):.0f} "
                     f"| {np.mean([r['cpu_s'] for r in rs]):.0f} |")
    probe = [r for r in records if r["subset_seed"] == 0 and r["size"] != "all"]
    by_size = {}
    for r in probe:
        by_size.setdefault(r["size"], []).append(r)
    for size, rs in by_size.items():
        if len({r["probe_seed"] for r in rs}) > 1:
            lam, tr = np.array([r["max_eig"] for r in rs]), np.array([r["trace"] for r in rs])
            lines.append(f"\nProbe seeds only (one subset of {int(size):,}, {len(rs)} probe seeds): λmax "
                         f"{lam.min():.4g}–{lam.max():.4g} (std {lam.std(ddof=1):.3g}), trace {tr.min():.4g}–"
                         f"{tr.max():.4g} (std {tr.std(ddof=1):.3g}).")
    return "\n".join(lines)


def main():
    args = parse()
    torch.manual_seed(0)
    records = done_runs(args.out)
    if args.losses:
        subset_losses(*load(args), args)
        return
    if not args.summary_only:
        model, x, y = load(args)
        loss, acc = whole_loss(model, x, y)
        print(f"model {args.model_file}: training loss {loss:.4f}, accuracy {acc:.4f} on all {len(y)} images, "
              f"torch threads {torch.get_num_threads()}", flush=True)
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        seen = {(r["size"], r["subset_seed"], r["probe_seed"]) for r in records}
        for size, seed, probe_seed in planned(args):
            if (size, seed, probe_seed) in seen:
                continue
            rec = one_run(model, x, y, args, size, seed, probe_seed)
            rec.update(train_loss_all=loss, train_acc_all=acc)
            print(json.dumps(rec), flush=True)
            with open(args.out, "a") as f:
                f.write(json.dumps(rec) + "\n")
            records.append(rec)
    print(summary(records))


if __name__ == "__main__":
    sys.exit(main())
