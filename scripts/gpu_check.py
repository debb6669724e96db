"""The measuring steps of scripts/gpu_check.sh, each adding its numbers to OUT/results.json.

  hessian   --surf F      a Hessian file of the tiny model at its initialisation, against a dense
                          float64 Hessian; and the HVP's error in strict fp32 and in TF32
  surfaces  A B           largest relative difference between two surface files (1 rank vs 2)
  train     --log F       seconds per epoch and the losses, from a trainer's log.out
  precision --checkpoint  loss error of fp32/tf32/bf16 against float64, and the TF32 HVP error,
                          at a trained checkpoint (and at the initial one, for contrast)
  report                  OUT/gpu_check.md from OUT/results.json
"""
import argparse
import json
import os
import platform
import re
import sys
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, "..", "lib"), os.path.join(HERE, "..", "tests")]

from landscape.curvature.hvp import hessian_param_names, mean_loss_hvp  # noqa: E402
from landscape.inputs.checkpoint import load_weights  # noqa: E402
from landscape.inputs.data import load_dataset  # noqa: E402
from landscape.inputs.models import build_model  # noqa: E402
from landscape.space.evaluate import evaluate  # noqa: E402
from landscape.space.losses import crossentropy_sum  # noqa: E402
from landscape.space.precision import strict_fp32, tf32_mode  # noqa: E402


def record(out, step, values):
    path = os.path.join(out, "results.json")
    results = json.load(open(path)) if os.path.exists(path) else {}
    results[step] = values
    with open(path, "w") as f:
        json.dump(results, f, indent=1)
    print(f"[gpu_check] {step}: {json.dumps(values)}", flush=True)


def mean_ce(logits, y):
    return F.cross_entropy(logits.float(), y)


def hvp_errors(model, names, x, y, device, samples, seed=0):
    """Relative error of one HVP in strict fp32 and in TF32 against float64 on the same device, and
    that error as a fraction of the HVP's float64 norm (unit vector: about |lambda| scale)."""
    x, y = x[:samples], y[:samples]
    exact_model = _copy(model, device, torch.float64)
    dim = sum(p.numel() for n, p in exact_model.named_parameters() if n in names)
    v = torch.randn(dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    v /= v.norm()
    exact = mean_loss_hvp(exact_model, names, mean_ce, [(x.to(device, torch.float64), y.to(device))])(v.to(device))
    errors = {}
    model32 = _copy(model, device, torch.float32)
    for label, mode in (("fp32", strict_fp32), ("tf32", lambda: tf32_mode(True))):
        with mode():
            got = mean_loss_hvp(model32, names, mean_ce, [(x.to(device), y.to(device))])(v.float().to(device))
        errors[label] = ((got.double() - exact).norm() / exact.norm()).item()
    errors["hvp_norm"] = exact.norm().item()
    return errors


def _copy(model, device, dtype):
    import copy
    return copy.deepcopy(model).to(device=device, dtype=dtype).eval()


def tiny_setup():
    """The tiny model and data as plot_hessian_eig.py builds them for --model tiny:make_model --seed 0."""
    train, _ = load_dataset("tiny:make_data")
    torch.manual_seed(0)
    return build_model("tiny:make_model", {}, num_classes=train.num_classes).eval(), train


def dense_extremes(model, names, x, y):
    from torch.func import functional_call
    model = _copy(model, "cpu", torch.float64)
    params = dict(model.named_parameters())
    shapes, numels = [params[n].shape for n in names], [params[n].numel() for n in names]
    flat0 = torch.cat([params[n].detach().reshape(-1) for n in names])

    def loss(flat):
        named = {n: c.view(s) for n, c, s in zip(names, flat.split(numels), shapes)}
        return F.cross_entropy(functional_call(model, named, (x.double(),)), y)
    eigs = torch.linalg.eigvalsh(torch.autograd.functional.hessian(loss, flat0))
    return eigs[0].item(), eigs[-1].item()


def cmd_hessian(args):
    import h5py
    model, train = tiny_setup()
    names = hessian_param_names(model, "reference")
    lam_min, lam_max = dense_extremes(model, names, train.x, train.y)
    with h5py.File(args.surf, "r") as f:
        got_max, got_min = float(f["max_eig"][()].ravel()[0]), float(f["min_eig"][()].ravel()[0])
        iters = int(f["eig_iters"][()].ravel()[0])
    scale = max(abs(lam_min), abs(lam_max))
    record(args.out, "hessian", dict(
        device=args.device, dim=sum(p.numel() for n, p in model.named_parameters() if n in names),
        dense_min=lam_min, dense_max=lam_max, driver_min=got_min, driver_max=got_max, lanczos_steps=iters,
        err_max=abs(got_max - lam_max) / scale, err_min=abs(got_min - lam_min) / scale,
        hvp=hvp_errors(model, names, train.x, train.y, torch.device(args.device), len(train.x))))


def cmd_surfaces(args):
    import h5py
    import numpy as np
    with h5py.File(args.files[0], "r") as a, h5py.File(args.files[1], "r") as b:
        loss_a, loss_b = a["train_loss"][()], b["train_loss"][()]
        done = bool(a["surface_done"][()].all() and b["surface_done"][()].all())
    diff = float(np.max(np.abs(loss_a - loss_b) / np.abs(loss_b)))
    record(args.out, "mpi_surface", dict(points=int(loss_a.size), all_done=done, max_rel_diff_1_vs_2_ranks=diff,
                                         ranks_log=args.ranks_log))


def cmd_train(args):
    lines = [line for line in open(args.log) if line.startswith("epoch ")]
    times = [float(m.group(1)) * 60 + float(m.group(2)) for m in
             (re.search(r"time (\d+)m([\d.]+)s", line) for line in lines) if m]
    losses = [float(re.search(r"train_loss ([\d.]+)", line).group(1)) for line in lines]
    accs = [float(re.search(r"test_acc ([\d.]+)", line).group(1)) for line in lines]
    record(args.out, "train", dict(epochs=len(lines) - 1, first_epoch_s=times[0] if times else None,
                                   epoch_s=times, train_loss=losses, test_acc=accs))


def precision_errors_at(model, x, y, device, batch):
    exact = evaluate(_copy(model, device, torch.float64), x.to(device, torch.float64), y.to(device),
                     crossentropy_sum, batch)[0]
    model32, x32 = _copy(model, device, torch.float32), x.to(device)
    errors = {}
    for precision in ("fp32", "tf32", "bf16"):
        if precision == "tf32" and device.type != "cuda":
            continue  # TF32 exists on NVIDIA GPUs only
        loss = evaluate(model32, x32, y.to(device), crossentropy_sum, batch, precision)[0]
        errors[precision] = abs(loss - exact) / abs(exact)
    return dict(loss_float64=exact, **errors)


def cmd_precision(args):
    device = torch.device(args.device)
    train, _ = load_dataset("synthetic", synthetic_size=tuple(args.synthetic_size), seed=0)
    x, y = train.x[:args.samples], train.y[:args.samples]
    results = {}
    for label, path in (("trained", args.checkpoint), ("init", args.init_checkpoint)):
        model = build_model(args.model, None, train.num_classes)
        load_weights(model, path)
        model.eval()
        names = hessian_param_names(model, "reference")
        results[label] = dict(checkpoint=os.path.basename(path), loss=precision_errors_at(model, x, y, device, 256))
        if device.type == "cuda" or label == "trained":
            results[label]["hvp"] = hvp_errors(model, names, x, y, device, args.hvp_samples)
    record(args.out, "precision", dict(device=args.device, model=args.model, samples=len(x), **results))


def cmd_report(args):
    results = json.load(open(os.path.join(args.out, "results.json")))
    device = (torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU (dry run)")
    lines = [f"# gpu_check on {device}", f"- {time.strftime('%Y-%m-%d %H:%M %Z')}, host {platform.node()}, "
             f"torch {torch.__version__} (CUDA {torch.version.cuda}), python {platform.python_version()}", ""]
    for step, values in results.items():
        lines.append(f"## {step}\n```\n{json.dumps(values, indent=1)}\n```")
    with open(os.path.join(args.out, "gpu_check.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=os.environ.get("OUT", "."))
    sub = p.add_subparsers(dest="command", required=True)
    h = sub.add_parser("hessian")
    h.add_argument("--surf", required=True)
    h.add_argument("--device", default="cuda")
    s = sub.add_parser("surfaces")
    s.add_argument("files", nargs=2)
    s.add_argument("--ranks_log", default="")
    t = sub.add_parser("train")
    t.add_argument("--log", required=True)
    q = sub.add_parser("precision")
    q.add_argument("--checkpoint", required=True)
    q.add_argument("--init_checkpoint", required=True)
    q.add_argument("--model", default="resnet20")
    q.add_argument("--device", default="cuda")
    q.add_argument("--synthetic_size", type=int, nargs=2, default=(20000, 2000))
    q.add_argument("--samples", type=int, default=10000)
    q.add_argument("--hvp_samples", type=int, default=1024)
    sub.add_parser("report")
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    commands = dict(hessian=cmd_hessian, surfaces=cmd_surfaces, train=cmd_train, precision=cmd_precision,
                    report=cmd_report)
    commands[args.command](args)


if __name__ == "__main__":
    main()
