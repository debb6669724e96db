"""Sharpness against tml-epfl's reference (issue 24): landscape.sharpness next to `sharpness.py` of
github.com/tml-epfl/sharpness-vs-generalization (Andriushchenko et al. 2023) on the same model, data and ρ.

  PYTHONPATH=lib .venv/bin/python bench/bench_sharpness.py [--reference DIR] [--rounds 3] [--tight-steps 100]
  (about 4 minutes on 2 shared cores; 1 torch thread by default, --threads)

The reference is fetched, not copied: give a checkout with --reference DIR, or the bench clones it
(git clone --depth 1) into bench/out/reference/; without either it says so in one line and exits.

Model and data: a tiny CNN (two conv + BatchNorm + ReLU layers, average pooling, a linear head; 5,514
parameters) trained by Adam (40 epochs of batches of 64) on 256 images of landscape's synthetic CIFAR-shaped set, to
train accuracy 1 and a small cross-entropy (near, not at, a minimum). Both tools see the model in eval mode
(the reference's eval_sharpness.py puts it there; BatchNorm's affine parameters are perturbed by both,
its running statistics by neither), every parameter (the reference ignores its layer_name_pattern), and
the mean cross-entropy over each batch.

Argument mapping (ours = reference):
- worst case: rho = rho, norm = norm, adaptive = adaptive, steps = n_iters, restarts = n_restarts = 1,
  step 2ρ (step_size_mult 1), m = the reference's batch size (m = all the data: one batch). The set is the
  same: ‖δ/s‖_p ≤ ρ, s = |w| elementwise (adaptive) or 1. The reference runs with rand_init=False, its
  default: rand_init=True raises TypeError ('tuple' object is not callable: a trailing comma after its
  init_fn), and n_restarts > 1 needs rand_init, so it always starts at δ = 0, once. Ours starts at a random
  point of the set (seed 0). Both report the mean over batches of (best loss seen − loss at w).
- average case: rho = rho (both: Gaussian δ with per-coordinate standard deviation ρ, times |w_i| when
  adaptive; the reference's random_init_lw, not its unused rho/√n random_gaussian_dict), samples = n_iters/2:
  ours draws antithetic pairs ±ξ, so both spend n_iters forward passes. The reference averages plain draws
  per batch; one batch here, so both are means over the same data. Its L∞ average (uniform noise) has no
  counterpart in ours and is not run.
How the optimizers differ (same set, different paths; both values are lower bounds of the same maximum):
- momentum: the reference sets δ_{k+1} = 0.75 z_{k+1} + 0.25 δ_{k−1}; ours Croce & Hein's
  u_{k+1} = P(u_k + 0.75 (z_{k+1} − u_k) + 0.25 (u_k − u_{k−1})).
- adaptive L2: the reference steps δ += η |w| ⊙ g / ‖g‖ and projects onto the ellipsoid in δ by bisection
  on a Lagrange multiplier (to |‖δ/|w|‖ − ρ| ≤ 1e-5); ours steps along the steepest ascent in u = δ/|w|,
  (|w| ⊙ g)/‖|w| ⊙ g‖, and projects radially in u (exact). If some w_i = 0 the reference's weighted norm is
  0/0 = NaN, `NaN > ρ` is false and it skips the projection: δ leaves the set.
- step-size halving: checkpoints ceil(p_j n_iters) in both, but the reference tests after step i + 1 = w_j + 1
  (ours after w_j), and on halving it reloads the best weights for the next gradient while its δ carries on
  from the current point; ours returns u and its history to the best point.
- where they end (adaptive L2): a fixed point of the reference's step + Euclidean projection onto the
  ellipsoid has η |w| ⊙ g/‖g‖ = 2λ δ/w², i.e. δ ∝ |w|³ ⊙ g, while a constrained maximum (KKT) needs
  δ ∝ w² ⊙ g; so it can settle where a higher loss is still reachable on the set. Ours projects in u and
  steps along |w| ⊙ g, whose fixed points are the KKT points (u ∝ |w| ⊙ g, δ ∝ w² ⊙ g).
- the same in both: the step halves when fewer than 75 % of the steps since the last checkpoint set a new
  best (Croce & Hein's condition counts steps that raise the loss over the previous iterate).
- m not dividing the data: the reference averages its batches equally, ours weights them by size (equal here).
- the reference evaluates the loss twice per step (once with the gradient, once after the update); ours
  once (the value comes with the gradient).

Shim (both run on the CPU, also where a GPU exists): the reference calls .cuda() and
torch.rand_like(..., device='cuda') throughout. While it runs, torch.Tensor.cuda and torch.nn.Module.cuda
return their object unchanged and torch.rand_like drops its device argument; all three are restored
afterwards (ours never runs under them). Its progress prints are swallowed. The model's state is checked
unchanged after every run of either.

Timing: wall seconds of one call each, the tools interleaved (the order alternating by round), the fastest
of --rounds. Worst-case values are deterministic (checked equal across rounds). Average-case rows give the
mean ± its standard error over the rounds (seeds 0, 1, ... for both, --samples forward passes per round),
and the difference in units of the two standard errors combined (σ). `N steps`: both worst cases again with
--tight-steps steps (ours with 2 restarts), to tell a slow start from a different end point.
"""
import argparse
import contextlib
import io
import os
import subprocess
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import landscape  # noqa: E402
from landscape.inputs.synthetic import synthetic_cifar  # noqa: E402

URL = "https://github.com/tml-epfl/sharpness-vs-generalization"
CACHE = os.path.join(HERE, "out", "reference", "sharpness-vs-generalization")
IMAGES, M_SMALL = 256, 32
# (measure, norm, adaptive, rho, m): m None is all the data in one batch.
SETTINGS = [("worst", "l2", False, 0.1, None), ("worst", "l2", False, 0.5, None),
            ("worst", "l2", True, 0.05, None), ("worst", "l2", True, 0.2, None),
            ("worst", "linf", False, 0.001, None), ("worst", "linf", False, 0.005, None),
            ("worst", "linf", True, 0.01, None), ("worst", "linf", True, 0.05, None),
            ("worst", "l2", True, 0.2, M_SMALL), ("worst", "linf", True, 0.01, M_SMALL),
            ("average", "l2", False, 0.01, None), ("average", "l2", False, 0.03, None),
            ("average", "l2", True, 0.1, None), ("average", "l2", True, 0.3, None)]


def find_reference(path):
    """The folder holding the reference's sharpness.py: the one given, the cache, or a fresh clone."""
    if path is None:
        path = CACHE
        if not os.path.isfile(os.path.join(path, "sharpness.py")):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            try:
                cloned = subprocess.run(["git", "clone", "-q", "--depth", "1", URL, path], capture_output=True,
                                        env={**os.environ, "GIT_TERMINAL_PROMPT": "0"}, timeout=300).returncode == 0
            except (OSError, subprocess.TimeoutExpired):
                cloned = False
            if not cloned:
                sys.exit(f"bench_sharpness: could not clone {URL} (offline?); clone it yourself and pass "
                         f"--reference DIR")
    if not all(os.path.isfile(os.path.join(path, f)) for f in ("sharpness.py", "utils.py")):
        sys.exit(f"bench_sharpness: {path} holds no sharpness.py and utils.py; pass --reference DIR, a "
                 f"checkout of {URL}")
    return os.path.abspath(path)


def reference_commit(path):
    found = subprocess.run(["git", "-C", path, "rev-parse", "HEAD"], capture_output=True, text=True)
    return found.stdout.strip() if found.returncode == 0 else "unknown (not a git checkout)"


def load_reference(path):
    """The reference's sharpness module (it imports its own `utils`, found on sys.path while it loads)."""
    saved = {name: sys.modules.pop(name) for name in ("utils", "sharpness") if name in sys.modules}
    sys.path.insert(0, path)
    try:
        import sharpness as reference
    finally:
        sys.path.remove(path)
        for name in ("utils", "sharpness"):  # the module keeps its own `utils`; the names go back as they were
            sys.modules.pop(name, None)
        sys.modules.update(saved)
    return reference


@contextlib.contextmanager
def reference_on_cpu():
    """The shim: .cuda() keeps a tensor or module where it is; rand_like ignores device= (see the docstring).
    The reference's prints are swallowed."""
    saved = torch.Tensor.cuda, nn.Module.cuda, torch.rand_like
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    nn.Module.cuda = lambda self, *args, **kwargs: self
    torch.rand_like = lambda t, *args, device=None, **kwargs: saved[2](t, *args, **kwargs)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        torch.Tensor.cuda, nn.Module.cuda, torch.rand_like = saved


def tiny_cnn():
    return nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))


def trained_model(epochs=40):
    """(model in eval mode, images, labels, its loss): Adam on minibatches of 64, seeded."""
    images, labels, _, _ = synthetic_cifar(IMAGES, 1, seed=0)
    x = ((torch.from_numpy(images).float() / 255 - 0.5) / 0.25).permute(0, 3, 1, 2).contiguous()
    y = torch.from_numpy(labels)
    torch.manual_seed(0)
    model = tiny_cnn()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(epochs):
        for batch in torch.randperm(IMAGES).split(64):
            optimizer.zero_grad()
            F.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        outputs = model(x)
    accuracy = float((outputs.argmax(1) == y).float().mean())
    return model, x, y, float(F.cross_entropy(outputs, y)), accuracy


def run_reference(reference, model, x, y, setting, steps, samples, seed):
    measure, norm, adaptive, rho, m = setting
    size = len(y) if m is None else m
    batches = [(x[i:i + size], None, y[i:i + size], None, None) for i in range(0, len(y), size)]
    torch.manual_seed(seed)
    with reference_on_cpu():
        if measure == "worst":
            value, _, delta_l2 = reference.eval_APGD_sharpness(
                model, batches, F.cross_entropy, None, None, rho=rho, n_iters=steps, n_restarts=1,
                rand_init=False, adaptive=adaptive, norm=norm, version="default")
        else:
            value, _, delta_l2 = reference.eval_average_sharpness(
                model, batches, F.cross_entropy, n_iters=samples, rho=rho, adaptive=adaptive, return_output=False,
                norm=norm)
    return value, (delta_l2 if measure == "worst" else None)


def run_ours(model, x, y, setting, steps, samples, seed, restarts=1):
    measure, norm, adaptive, rho, m = setting
    found = landscape.sharpness(model, (x, y), rho=rho, measure=measure, norm=norm, adaptive=adaptive, m=m,
                                steps=steps, restarts=restarts, samples=samples // 2, seed=seed)
    return found.value, (found.delta_l2 if measure == "worst" else None)


def timed(run, model, state):
    start = time.perf_counter()
    value, delta_l2 = run()
    seconds = time.perf_counter() - start
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, state[k])]
    assert not changed and not model.training, f"a run left the model changed: {changed}"
    return value, delta_l2, seconds


def compare(reference, model, x, y, setting, args):
    """{'ref': [(value, ‖δ‖₂ or None, s) per round], 'ours': [...], 'tight': {'ref': value, 'ours': value} or {}}."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    worst = setting[0] == "worst"
    runs = {"ref": [], "ours": []}
    for r in range(args.rounds):
        seed = 0 if worst else r
        tools = {"ref": lambda: run_reference(reference, model, x, y, setting, args.steps, args.samples, seed),
                 "ours": lambda: run_ours(model, x, y, setting, args.steps, args.samples, seed)}
        for name in (("ref", "ours") if r % 2 == 0 else ("ours", "ref")):
            runs[name].append(timed(tools[name], model, state))
    if worst:
        for name, values in runs.items():
            assert len({v for v, _, _ in values}) == 1, f"{name}'s worst case changed between rounds: {values}"
    tight = {}
    if worst and args.tight_steps:
        tight = {"ref": run_reference(reference, model, x, y, setting, args.tight_steps, args.samples, 0)[0],
                 "ours": run_ours(model, x, y, setting, args.tight_steps, args.samples, 0, restarts=2)[0]}
    return {**runs, "tight": tight}


def mean_error(values):
    """(mean, standard error of the mean) over the rounds."""
    t = torch.tensor(values, dtype=torch.float64)
    return float(t.mean()), (float(t.std()) / len(values) ** 0.5 if len(values) > 1 else float("nan"))


def row(setting, result):
    measure, norm, adaptive, rho, m = setting
    (ref, ref_error), (ours, ours_error) = (mean_error([v for v, _, _ in result[k]]) for k in ("ref", "ours"))
    ref_s, ours_s = (min(s for _, _, s in result[k]) for k in ("ref", "ours"))
    label = f"{measure} {norm}{' adaptive' if adaptive else ''}"
    m_text = f"{IMAGES} (all)" if m is None else str(m)
    difference = f"{(ours - ref) / abs(ref):+.2%}"
    if measure == "worst":
        values = f"{ref:.5g} | {ours:.5g}"
        tight = " / ".join(f"{result['tight'][k]:.5g}" for k in ("ref", "ours")) if result["tight"] else "-"
        norms = f"{result['ref'][0][1]:.4g} / {result['ours'][0][1]:.4g}"
    else:
        values = f"{ref:.4g} ± {ref_error:.2g} | {ours:.4g} ± {ours_error:.2g}"
        difference += f" ({(ours - ref) / (ref_error ** 2 + ours_error ** 2) ** 0.5:+.1f} σ)"
        tight, norms = "-", "-"
    return (f"| {label} | {rho:g} | {m_text} | {values} | {difference} | {tight} | {norms} | "
            f"{ref_s:.2f} | {ours_s:.2f} | {ours_s / ref_s:.2f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reference", help=f"a checkout of {URL} (else cloned into bench/out/reference/)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20, help="Auto-PGD steps (the reference script's default)")
    parser.add_argument("--samples", type=int, default=400, help="average case: forward passes per tool and round")
    parser.add_argument("--tight-steps", type=int, default=100, help="steps of the tight run (0: skip it)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    path = find_reference(args.reference)
    reference = load_reference(path)
    model, x, y, loss, accuracy = trained_model()
    print(f"reference {path} at {reference_commit(path)}; torch {torch.__version__}, {args.threads} thread(s), CPU")
    print(f"tiny CNN, {sum(p.numel() for p in model.parameters()):,} parameters, {IMAGES} synthetic images: "
          f"train loss {loss:.4f}, accuracy {accuracy:.3f}; steps {args.steps}, samples {args.samples}, "
          f"rounds {args.rounds}\n")
    print(f"| measure | ρ | m | reference | ours | ours − ref (rel.) | {args.tight_steps} steps: ref / ours "
          "(2 restarts) | ‖δ‖₂ ref / ours | ref s | ours s | ours/ref time |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for setting in SETTINGS:
        print(row(setting, compare(reference, model, x, y, setting, args)), flush=True)


if __name__ == "__main__":
    main()
