"""Trace and spectral density at a trained ResNet-20 minimum: landscape against PyHessian, same operator.

  PYTHONPATH=lib .venv/bin/python bench/bench_curvature.py  [--images 32] [--seeds 1]

ResNet-20 (landscape.inputs.models) is trained to near-zero loss on `--images` synthetic images
(landscape's synthetic CIFAR set), the operating point of the paper's Hessian figure. Both tools
then work on the Hessian of the mean loss over those images and over every parameter (PyHessian's
choice; landscape's --hessian_params all), in eval mode, fp32 products:
- truth: trace from a long run of landscape's estimator (--truth_steps Krylov steps, 100, and --truth_probes probes, 150;
  its standard error is printed), λmin/λmax from a 150-step Lanczos run;
- landscape: point_curvature with the driver's defaults (--trace 30, --density 3/40, --tol 1e-3);
- PyHessian 0.1: eigenvalues() (power iteration), trace() (Hutchinson, its tol 1e-3 stop) and
  density(iter=100, n_v=1); its products are counted by wrapping its hessian_vector_product.
PyHessian is installed into this venv by pip when missing (a benchmark-only tool, no dependency).
Prints a markdown table and writes it to docs/bench_curvature.md.
"""
import argparse
import importlib
import os
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from landscape.curvature.density import gauss_quadrature  # noqa: E402
from landscape.curvature.hvp import hessian_param_names, mean_loss_hvp  # noqa: E402
from landscape.curvature.lanczos import lanczos_steps, start_vector  # noqa: E402
from landscape.curvature.point import CurvaturePlan, Recorded, point_curvature  # noqa: E402
from landscape.curvature.trace import deflated_hutchinson  # noqa: E402
from landscape.inputs.models import get_model  # noqa: E402
from landscape.inputs.synthetic import synthetic_cifar  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "bench_curvature.md")


def pyhessian_module():
    try:
        import pyhessian  # noqa: F401
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "pyhessian"], check=True)
    return importlib.import_module("pyhessian.hessian")  # the module; pyhessian.hessian the attribute is the class


def trained_resnet20(images, seed=0):
    x, y, _, _ = synthetic_cifar(images, 1, seed=seed)
    x = torch.tensor(x, dtype=torch.float32).permute(0, 3, 1, 2).contiguous() / 255.0  # NCHW: the faster double backward here
    x = (x - x.mean((0, 2, 3), keepdim=True)) / x.std((0, 2, 3), keepdim=True)
    y = torch.tensor(y)
    torch.manual_seed(seed)
    model = get_model("resnet20")
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(400):
        model.train()
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        if step % 50 == 0:
            print(f"  train step {step}: loss {loss.item():.4f}", flush=True)
        if loss.item() < 2e-3:
            break
    model.eval()
    with torch.no_grad():  # BN running statistics of these images, so eval mode is at the minimum too
        model.train()
        for _ in range(20):
            model(x)
        model.eval()
        loss = F.cross_entropy(model(x), y).item()
    return model, x, y, loss


def timed(fn):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def truth(op, dim, steps, probes):
    rec = Recorded(op)
    state = None
    for state in lanczos_steps(rec, start_vector(dim, 12345), steps):
        pass
    k = state.steps
    theta, _ = gauss_quadrature(state.alphas[:k], state.betas[:k - 1])  # an exhausted run has k betas
    est = deflated_hutchinson(op, dim, probes, basis=state.basis[:k], products=rec.products[:k], seed=777)
    return est, float(theta[0]), float(theta[-1])


def ours(op, dim, seeds):
    rows = []
    for seed in seeds:
        plan = CurvaturePlan(1e-3, 100, seed, trace_samples=30, density_probes=3, density_steps=40)
        v, wall, cpu = timed(lambda: point_curvature(op, dim, plan))
        rows.append((v, wall, cpu))
    return rows


def _old_torch_eig(matrix, eigenvectors=False):
    """torch.eig as PyHessian 0.1's density() calls it (removed from torch): T is symmetric, so eigh,
    with eigenvalues as (n, 2) rows of (real, imaginary)."""
    w, v = torch.linalg.eigh(matrix)
    return torch.stack([w, torch.zeros_like(w)], 1), v


def theirs(module, model, x, y, seeds):
    counter = {"n": 0}
    original = module.hessian_vector_product

    def counted(*a, **k):
        counter["n"] += 1
        return original(*a, **k)
    module.hessian_vector_product = counted
    torch.eig = _old_torch_eig
    rows = []
    for seed in seeds:
        torch.manual_seed(seed)
        comp = module.hessian(model, torch.nn.CrossEntropyLoss(), data=(x, y), cuda=False)
        out = {}
        for name, call in (("eig", lambda: comp.eigenvalues()), ("trace", lambda: comp.trace()),
                           ("density", lambda: comp.density())):
            counter["n"] = 0
            result, wall, cpu = timed(call)
            out[name] = (result, counter["n"], wall, cpu)
        rows.append(out)
    return rows


def moments(nodes, weights):
    nodes, weights = np.asarray(nodes, dtype=float).ravel(), np.asarray(weights, dtype=float).ravel()
    weights = weights / weights.sum()
    return float(np.dot(weights, nodes)), float(np.dot(weights, nodes ** 2))


def report(args, loss, dim, t, mine, pyh, hvp_wall):
    tr, lam_min, lam_max = t
    lines = [f"# bench_curvature: ResNet-20 at a trained minimum ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
             "", f"`PYTHONPATH=lib .venv/bin/python bench/bench_curvature.py --images {args.images} --seeds {args.seeds}"
             f" --truth_steps {args.truth_steps} --truth_probes {args.truth_probes}`;"
             f" {len(os.sched_getaffinity(0))} CPUs, load average {os.getloadavg()[0]:.1f}, torch {torch.__version__}.", "",
             f"Train loss {loss:.2e} on {args.images} synthetic images; n = {dim} parameters (all); "
             f"one HVP {hvp_wall:.2f} s wall. Truth: trace {tr.trace:.5g} ± {tr.err:.2g} (1σ), "
             f"λmax {lam_max:.5g}, λmin {lam_min:.4g}; trace/n {tr.trace / dim:.4g}.", "",
             "| tool, seed | quantity | estimate | error vs truth | error bar (1σ) | HVPs | CPU s |",
             "|---|---|---|---|---|---|---|"]
    for i, (v, wall, cpu) in enumerate(mine):
        hv = v["eig_iters"] + v["hvps_trace"] + v["hvps_density"]
        lines.append(f"| landscape, {i} | λmax / λmin | {v['max_eig']:.5g} / {v['min_eig']:.4g} | "
                     f"{abs(v['max_eig'] - lam_max) / lam_max:.1e} / {abs(v['min_eig'] - lam_min) / lam_max:.1e} "
                     f"(of λmax) | – | {v['eig_iters']} | (all three: {cpu:.0f}) |")
        lines.append(f"| landscape, {i} | trace | {v['trace']:.5g} | {abs(v['trace'] - tr.trace) / abs(tr.trace):.2%} | "
                     f"{v['trace_err']:.2g} | +{v['hvps_trace']} | |")
        m1, m2 = moments(v["esd_nodes"], v["esd_weights"])
        lines.append(f"| landscape, {i} | density Σwλ (vs trace/n) | {m1:.4g} | {abs(m1 - tr.trace / dim) / abs(tr.trace / dim):.1%} "
                     f"| – | +{v['hvps_density']} (total {hv}) | |")
    for i, out in enumerate(pyh):
        (eig, _), n_eig, _, c_eig = out["eig"]
        samples, n_tr, _, c_tr = out["trace"]
        (nodes, weights), n_de, _, c_de = out["density"]
        lines.append(f"| PyHessian, {i} | λmax (power iteration) | {eig[0]:.5g} | {abs(eig[0] - lam_max) / lam_max:.1e} "
                     f"| – | {n_eig} | {c_eig:.0f} |")
        est = float(np.mean(samples))
        lines.append(f"| PyHessian, {i} | trace | {est:.5g} | {abs(est - tr.trace) / abs(tr.trace):.2%} | none "
                     f"(sample sd/√m would be {np.std(samples, ddof=1) / len(samples) ** 0.5:.2g}) | {n_tr} | {c_tr:.0f} |")
        m1, _ = moments(nodes, weights)
        lines.append(f"| PyHessian, {i} | density Σwλ (vs trace/n) | {m1:.4g} | {abs(m1 - tr.trace / dim) / abs(tr.trace / dim):.1%} "
                     f"| – | {n_de} | {c_de:.0f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    with open(OUT, "w") as f:
        f.write(text)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--images", type=int, default=32)
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--truth_steps", type=int, default=100, help="Lanczos steps of the reference run")
    p.add_argument("--truth_probes", type=int, default=150, help="trace probes of the reference run")
    args = p.parse_args()
    torch.set_num_threads(len(os.sched_getaffinity(0)))  # os.cpu_count() counts the host, not this job
    module = pyhessian_module()
    model, x, y, loss = trained_resnet20(args.images)
    names = hessian_param_names(model, "all")
    op = mean_loss_hvp(model, names, F.cross_entropy, [(x, y)])
    dim = op.dim
    op(start_vector(dim, 0))  # one-off set-up outside the timing
    _, hvp_wall, _ = timed(lambda: op(start_vector(dim, 1)))
    print(f"trained: loss {loss:.2e}, n = {dim}, one HVP {hvp_wall:.2f} s", flush=True)
    t = truth(op, dim, args.truth_steps, args.truth_probes)
    print(f"truth: trace {t[0].trace:.5g} ± {t[0].err:.2g}, λ in [{t[1]:.4g}, {t[2]:.5g}]", flush=True)
    seeds = list(range(args.seeds))
    mine = ours(op, dim, seeds)
    pyh = theirs(module, model, x, y, seeds)
    report(args, loss, dim, t, mine, pyh, hvp_wall)


if __name__ == "__main__":
    main()
