"""--precision bf16 against strict fp32: seconds per grid point and loss error, at trained and untrained points.

For each model (resnet20, resnet56: CIFAR-shaped synthetic images; gpt2: examples/gpt2.py on the Zen of Python)
and each state (the initialisation, and a briefly trained checkpoint), every point of a small 2D grid along
two filter-normalized directions is evaluated in both precisions, fp32 and bf16 taking turns (order swapped
every other point), each with the batch the library's auto_batch_size picks for it. A point's work is what
landscape.surface does there: PointSetter.set, then evaluate_batches. Reported: |loss_bf16 - loss_fp32| at the
centre, median and max over the grid, absolute and relative to the fp32 loss; and the fastest point's seconds
(the min over the grid's points, as other jobs only ever add time) of each precision, and their ratio.

    PYTHONPATH=lib:. python bench/bench_bf16.py --workdir /tmp/bf16work [--models resnet20 resnet56 gpt2]

The ResNet checkpoints are made beforehand by `python -m landscape.train` (docs/BENCHMARKS.md gives the
commands); <workdir>/<model>/model_0.t7 is the initialisation, model_<E>.t7 the trained point. GPT-2 trains
here for --gpt2_steps AdamW steps from examples/gpt2.make_model's seeded initialisation.
"""
import argparse
import json
import os
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # sleeping waits: steadier timings on shared cores

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "lib"), ROOT]

import landscape  # noqa: E402
from landscape.inputs.checkpoint import load_weights  # noqa: E402
from landscape.inputs.data import load_dataset  # noqa: E402
from landscape.inputs.models import get_model  # noqa: E402
from landscape.inputs.user import summed_loss  # noqa: E402
from landscape.job.batch import auto_batch_size  # noqa: E402
from landscape.space.directions import named_entries  # noqa: E402
from landscape.space.evaluate import device_layout, evaluate_batches, tensor_batches  # noqa: E402
from landscape.space.flatparams import PointSetter  # noqa: E402
from landscape.space.losses import class_hits  # noqa: E402

PRECISIONS = ("fp32", "bf16")


def resnet_case(name, workdir, images, epoch):
    """(model at each state, (x, y), loss, accuracy counter): the training run's images, the first `images` of them."""
    train, _ = load_dataset("synthetic", synthetic_size=(images, 100))
    states = {}
    for state, file in (("untrained", "model_0.t7"), ("trained", f"model_{epoch}.t7")):
        torch.manual_seed(0)
        states[state] = load_weights(get_model(name), os.path.join(workdir, name, file)).eval()
    return states, (device_layout(train.x), train.y), "crossentropy", class_hits


def gpt2_case(steps):
    from examples.gpt2 import keyword_inputs, make_data, make_model, train
    (train_set, _), states = make_data(), {"untrained": make_model().eval()}
    trained = make_model()
    torch.manual_seed(0)
    last = train(trained, train_set, steps=steps)
    print(f"gpt2: {steps} AdamW steps, last batch loss {last:.3f}", flush=True)
    states["trained"] = trained.eval()
    return states, keyword_inputs(train_set), "causal_lm", None


def grid_points(side):
    axis = np.linspace(-1.0, 1.0, side)
    return [(float(a), float(b)) for b in axis for a in axis]


def measure(model, data, loss, hits, side):
    """{precision: (losses per grid point, accuracies, seconds per point, batch)} for one model state."""
    dirs = landscape.random_directions(model, n=2, seed=0)  # filter-normalized, biases and BN ignored
    names, entries = zip(*named_entries(model, "weights"))
    setter = PointSetter(model, list(names), list(entries), dirs.x, dirs.y)
    loss_total, (x, y) = summed_loss(loss), data
    batches = {p: tensor_batches(x, y, auto_batch_size(model, x, p)) for p in PRECISIONS}
    out = {p: ([], [], [], len(batches[p][0][1])) for p in PRECISIONS}
    points = grid_points(side)
    for k, (a, b) in enumerate([points[len(points) // 2]] + points):  # the centre once more, as a warm-up
        for p in (PRECISIONS if k % 2 else PRECISIONS[::-1]):
            start = time.perf_counter()
            setter.set(a, b)
            value, acc = evaluate_batches(model, batches[p], loss_total, p, hits)
            seconds = time.perf_counter() - start
            if k:
                for column, v in zip(out[p], (value, acc, seconds)):
                    column.append(v)
    setter.set(0.0, 0.0)
    return out


def summary(name, state, out, side):
    (f32, acc32, t32, b32), (b16, acc16, t16, bb16) = out["fp32"], out["bf16"]
    f32, b16 = np.array(f32), np.array(b16)
    err, centre = np.abs(b16 - f32), side * side // 2
    rel = err / np.abs(f32)
    row = dict(model=name, state=state, loss_centre=f32[centre], abs_centre=err[centre], rel_centre=rel[centre],
               abs_median=float(np.median(err)), abs_max=float(err.max()), rel_median=float(np.median(rel)),
               rel_max=float(rel.max()), loss_min=float(f32.min()), loss_max=float(f32.max()),
               s_fp32=min(t32), s_bf16=min(t16), s_fp32_median=float(np.median(t32)),
               s_bf16_median=float(np.median(t16)), batch_fp32=b32, batch_bf16=bb16, points=len(t32))
    if acc32[0] is not None:
        row["acc_max_diff"] = float(np.max(np.abs(np.array(acc16) - np.array(acc32))))
    row["speedup"] = row["s_fp32"] / row["s_bf16"]
    return row


def table(rows):
    lines = ["| model | point | fp32 loss: centre (grid range) | abs. error: centre / median / max | rel. error: "
             "centre / median / max | max Δacc (points) | s/point fp32 / bf16 (min; batch) | bf16 speed-up |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        acc = f"{r['acc_max_diff']:.2f}" if "acc_max_diff" in r else "-"
        lines.append(f"| {r['model']} | {r['state']} | {r['loss_centre']:.4g} "
                     f"({r['loss_min']:.3g}-{r['loss_max']:.3g}) | {r['abs_centre']:.1e} / {r['abs_median']:.1e} / "
                     f"{r['abs_max']:.1e} | {r['rel_centre']:.1e} / "
                     f"{r['rel_median']:.1e} / {r['rel_max']:.1e} | {acc} | {r['s_fp32']:.3f} / {r['s_bf16']:.3f} "
                     f"({r['batch_fp32']}; {r['batch_bf16']}) | **{r['speedup']:.2f}×** |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", default="/tmp/bf16work")
    p.add_argument("--models", nargs="+", default=["resnet20", "resnet56", "gpt2"])
    p.add_argument("--images", nargs=2, type=int, default=[2000, 1000], metavar=("RESNET20", "RESNET56"),
                   help="images each ResNet is evaluated (and was trained) on")
    p.add_argument("--epochs", nargs=2, type=int, default=[4, 10], help="the trained checkpoint's epoch")
    p.add_argument("--gpt2_steps", type=int, default=600)
    p.add_argument("--side", type=int, default=5, help="grid points per axis over [-1, 1] (odd: the centre is one)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.makedirs(args.workdir, exist_ok=True)
    rows = []
    for name in args.models:
        if name == "gpt2":
            states, data, loss, hits = gpt2_case(args.gpt2_steps)
        else:
            k = ("resnet20", "resnet56").index(name)
            states, data, loss, hits = resnet_case(name, args.workdir, args.images[k], args.epochs[k])
        for state, model in states.items():
            rows.append(summary(name, state, measure(model, data, loss, hits, args.side), args.side))
            print(table(rows[-1:]), flush=True)
    print(f"\n{open('/proc/loadavg').read().strip()} (load average after)\n{table(rows)}")
    with open(os.path.join(args.workdir, "bf16.json"), "w") as f:
        json.dump(rows, f, indent=1, default=float)


if __name__ == "__main__":
    main()
