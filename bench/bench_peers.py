"""Curvature against every peer (issue 22): landscape, hessian-eigenthings 1.0.0a5 and PyHessian 0.1 on the
same models, data and operator, at equal accuracy: λmax, λmin, the trace and the spectral density.

  PYTHONPATH=lib .venv/bin/python bench/bench_peers.py [--images 32] [--seeds 3]     (about 10 minutes, 2 cores)

The peers are benchmark-only tools: `pip install hessian-eigenthings==1.0.0a5 pyhessian==0.1` into the venv;
without them this prints what is missing and exits 0. Models (trained here once, cached in bench/out/peers/):
ResNet-20 (landscape.inputs.models) trained by Adam to loss ~2e-3 on `--images` images of the built-in
synthetic set (bench_curvature.trained_resnet20), and a small GPT-2 built from a config (2 layers, width 64,
eager attention so every tool can differentiate it twice) trained on sequences that count up by a step per
sequence. Every tool works on the Hessian of the mean loss over those samples and every parameter, eval mode,
fp32 products, over the same batches (the size landscape's hvp_batch='auto' picks), 2 torch threads.

Each tool runs in its own process (so its peak memory is its own: ru_maxrss, and the rise above the model and
data) for every seed; CPU seconds are time.process_time of that process (both threads), products are counted
at each tool's own HVP function. Truth: a tight Lanczos run (tol 1e-7, miss 1e-6, another start) for λmin/λmax,
and a deflated Hutchinson estimate on its Krylov space with many probes for the trace.

What 'equal accuracy' means for each quantity:
- λmax, λmin within 1e-3·λmax of the truth. landscape: lanczos_extremes at its defaults (it stops by itself).
  eigenthings: lanczos() has no stopping rule, so it is given the fewest steps that reach the target for that
  start vector (an oracle no user has: found from one run's Ritz values at every step; its CPU s are those of
  that many steps). PyHessian: eigenvalues() at its defaults (power iteration: λmax only, no λmin).
- trace: every tool gets as many products as landscape's trace used (its extremes' run plus its probes);
  eigenthings runs Hutch++ (its default method), PyHessian Hutchinson (its trace(), which stops on its own
  rule, so it is given its own count). Their RMS errors over the seeds convert to the products each would need
  for landscape's RMS error (Monte-Carlo error falls as 1/sqrt(products)): the `equal-accuracy products` column.
- density: the same stochastic Lanczos quadrature for all (3 probes x 40 steps, landscape's default; PyHessian
  density(iter=40, n_v=3), eigenthings spectral_density(num_runs=3, lanczos_steps=40)): the same estimator
  at the same size has the same accuracy; landscape's first probe is its extremes' run, continued. The peers'
  density is timed at the first seed only (to keep to ~10 minutes); landscape computes all four in one call
  per seed, as hessian_map does, with the memory budget hessian_map gives it (job.memory.kept_graph_budget).
Writes docs/bench_peers.md.
"""
import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
OUT_DIR = os.path.join(HERE, "out", "peers")
DOC = os.path.join(ROOT, "docs", "bench_peers.md")
PEERS = {"hessian_eigenthings": "hessian-eigenthings==1.0.0a5", "pyhessian": "pyhessian==0.1"}
TOL, TRACE_PROBES, DENSITY, TRUTH_PROBES = 1e-3, 30, (3, 40), 150
GPT = dict(vocab=64, seq=16, width=64, layers=2, heads=4)


# --- models and data (the parent prepares them once) -----------------------------------------------

def gpt2_model():
    import torch.nn as nn
    import transformers

    class LogitsOnly(nn.Module):
        """Next-token logits as one (tokens, vocab) matrix, so each tool's plain cross-entropy is the LM loss."""

        def __init__(self, lm):
            super().__init__()
            self.lm = lm

        def forward(self, ids):
            return self.lm(input_ids=ids).logits[:, :-1].reshape(-1, GPT["vocab"])
    config = transformers.GPT2Config(vocab_size=GPT["vocab"], n_positions=GPT["seq"], n_embd=GPT["width"],
                                     n_layer=GPT["layers"], n_head=GPT["heads"], bos_token_id=0, eos_token_id=0,
                                     attn_implementation="eager")
    return LogitsOnly(transformers.GPT2LMHeadModel(config))


def counting_sequences(count, seed=0):
    """Token rows t, t+s, t+2s, ... (mod vocab), s in 1..4 per row: learnable, so training reaches a minimum."""
    import torch
    g = torch.Generator().manual_seed(seed)
    start = torch.randint(0, GPT["vocab"], (count, 1), generator=g)
    step = torch.randint(1, 5, (count, 1), generator=g)
    return (start + step * torch.arange(GPT["seq"])) % GPT["vocab"]


def trained_gpt2(count):
    import torch
    import torch.nn.functional as F
    torch.manual_seed(0)
    model, ids = gpt2_model(), counting_sequences(count)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(300):
        opt.zero_grad()
        loss = F.cross_entropy(model(ids), ids[:, 1:].reshape(-1))
        loss.backward()
        opt.step()
    return model.eval(), ids, ids[:, 1:].reshape(-1), loss.item()


def prepare(images, sequences):
    """Train both models once (cached) and save model, inputs, targets for the children."""
    import torch
    os.makedirs(OUT_DIR, exist_ok=True)
    paths = {}
    for name in ("resnet20", "gpt2"):
        path = os.path.join(OUT_DIR, f"{name}_{images if name == 'resnet20' else sequences}.pt")
        if not os.path.exists(path):
            if name == "resnet20":
                sys.path.insert(0, HERE)
                from bench_curvature import trained_resnet20
                model, x, y, loss = trained_resnet20(images)
            else:
                model, x, y, loss = trained_gpt2(sequences)
            torch.save(dict(state=model.state_dict(), x=x, y=y, loss=loss), path)
        paths[name] = path
    return paths


def load(name, path):
    import torch
    saved = torch.load(path)
    if name == "resnet20":
        from landscape.inputs.models import get_model
        model = get_model("resnet20")
    else:
        model = gpt2_model()
    model.load_state_dict(saved["state"])
    return model.eval(), saved["x"], saved["y"], saved["loss"]


# --- one tool in one process -----------------------------------------------------------------------

def rss_mib():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS"))


def batches_of(x, y):
    """The batches every tool passes over: the size landscape's auto picks for these samples."""
    import torch

    from landscape.job.batch import choose_hvp_batch
    count = len(x)
    size = choose_hvp_batch(None, x, y, 0, torch.device("cpu"), timer=lambda s: 1.0).size if count <= 256 else None
    if size is None:
        raise SystemExit("bench_peers keeps to sample sets of <= 256 (one batch for every tool)")
    per = len(y) // count
    return [(x[i:i + size], y[i * per:(i + size) * per]) for i in range(0, count, size)]


def child(tool, name, path, seeds, truth_file):
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(2)
    sys.path.insert(0, os.path.join(ROOT, "lib"))
    model, x, y, loss = load(name, path)
    batches = batches_of(x, y)
    truth = json.load(open(truth_file)) if truth_file else None
    base = rss_mib()
    rows = globals()[f"run_{tool}"](model, batches, seeds, truth, F.cross_entropy)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(dict(tool=tool, model=name, rows=rows, peak_mib=peak, base_mib=base, loss=loss)))


def cpu_clock():
    return time.process_time()


def run_truth(model, batches, seeds, truth, loss):
    from landscape.curvature.blocks import KeptGraphs
    from landscape.curvature.hvp import hessian_param_names, mean_loss_hvp
    from landscape.curvature.lanczos import lanczos_extremes
    from landscape.curvature.point import Recorded
    from landscape.curvature.trace import deflated_hutchinson
    op = mean_loss_hvp(model, hessian_param_names(model, "all"), loss, batches)
    kept = KeptGraphs(op, 10 ** 12)  # the truth's own cost is not compared: all graphs kept
    rec = Recorded(kept)
    r = lanczos_extremes(rec, op.dim, tol=1e-7, miss_prob=1e-6, max_iter=150, seed=12345)
    basis = r.krylov.basis[:r.iters]
    est = deflated_hutchinson(kept, op.dim, TRUTH_PROBES, basis=basis, products=rec.products_for(basis), seed=777,
                              block_matvec=kept.block, per_pass=10)
    return dict(lam_min=r.lam_min, lam_max=r.lam_max, steps=r.iters, trace=est.trace, trace_err=est.err, dim=op.dim)


def run_landscape(model, batches, seeds, truth, loss):
    import torch

    import landscape.curvature.point as point
    from landscape.curvature.hvp import hessian_param_names, mean_loss_hvp
    from landscape.curvature.point import CurvaturePlan, point_curvature
    from landscape.job.memory import kept_graph_budget
    op = mean_loss_hvp(model, hessian_param_names(model, "all"), loss, batches)
    phases = {}

    def timed(fn, key):
        def wrapper(*args, **kwargs):
            start = cpu_clock()
            out = fn(*args, **kwargs)
            phases[key] = cpu_clock() - start
            return out
        return wrapper
    point._extremes = timed(point._extremes, "eig")
    point._density, point._trace = timed(point._density, "density"), timed(point._trace, "trace")
    rows = []
    for seed in seeds:
        plan = CurvaturePlan(TOL, 100, seed, trace_samples=TRACE_PROBES, density_probes=DENSITY[0],
                             density_steps=DENSITY[1])
        keep = kept_graph_budget(torch.device("cpu"), op.dim, plan.max_iter + plan.density_width(op.dim))  # hessian_map
        start = cpu_clock()
        v = point_curvature(op, op.dim, plan, keep_bytes=keep)
        total = cpu_clock() - start
        rows.append(dict(seed=seed, lam_min=v["min_eig"], lam_max=v["max_eig"], eig_products=v["eig_iters"],
                         eig_cpu=phases["eig"], trace=v["trace"], trace_err=v["trace_err"],
                         trace_products=v["hvps_trace"], trace_cpu=phases["trace"], density_products=v["hvps_density"],
                         density_cpu=phases["density"], total_cpu=total,
                         total_products=v["eig_iters"] + v["hvps_trace"] + v["hvps_density"]))
    return rows


def ritz_extremes(alphas, betas, m):
    import torch
    off = torch.tensor(betas[:m - 1], dtype=torch.float64)
    t = torch.diag(torch.tensor(alphas[:m], dtype=torch.float64)) + torch.diag(off, 1) + torch.diag(off, -1)
    theta = torch.linalg.eigvalsh(t)
    return theta[0].item(), theta[-1].item()


def run_eigenthings(model, batches, seeds, truth, loss):
    import hessian_eigenthings as he
    import torch
    from hessian_eigenthings.algorithms.lanczos import lanczos_tridiagonal
    op = he.HessianOperator(model, batches, he.supervised_loss(loss), full_dataset=True)
    stamps = []
    matvec = op.matvec

    def counted(v):
        out = matvec(v)
        stamps.append(cpu_clock())
        return out
    op.matvec = counted
    rows = []
    for seed in seeds:
        row = dict(seed=seed)
        g = torch.Generator().manual_seed(seed)
        v0 = torch.randn(op.size, dtype=op.dtype, generator=g)
        steps = int(truth["eig_steps"][str(seed)]) + 2  # just past where landscape's own run stopped
        stamps.clear()
        start = cpu_clock()
        td = lanczos_tridiagonal(op, v0, steps, reorthogonalize=True)
        alphas = [float(a) for a in td.alphas]
        betas = [float(b) for b in td.betas]
        target = TOL * max(abs(truth["lam_min"]), abs(truth["lam_max"]))
        for m in range(2, len(alphas) + 1):
            lo, hi = ritz_extremes(alphas, betas, m)
            if abs(lo - truth["lam_min"]) <= target and abs(hi - truth["lam_max"]) <= target:
                row.update(lam_min=lo, lam_max=hi, eig_products=m, eig_cpu=stamps[m - 1] - start)
                break
        else:
            row.update(lam_min=lo, lam_max=hi, eig_products=f">{len(alphas)}", eig_cpu=stamps[-1] - start)
        budget = int(truth["trace_budget"][str(seed)])
        stamps.clear()
        start = cpu_clock()
        est = he.trace(op, num_matvecs=budget, method="hutch++", seed=seed)
        row.update(trace=float(est.estimate), trace_products=len(stamps), trace_cpu=cpu_clock() - start)
        if seed == seeds[0]:  # the same estimator as landscape's at the same size: its cost, once
            stamps.clear()
            start = cpu_clock()
            he.spectral_density(op, num_runs=DENSITY[0], lanczos_steps=DENSITY[1], seed=seed)
            row.update(density_products=len(stamps), density_cpu=cpu_clock() - start)
        rows.append(row)
    return rows


def run_pyhessian(model, batches, seeds, truth, loss):
    import importlib

    import torch
    ph = importlib.import_module("pyhessian.hessian")  # the module: pyhessian.hessian the attribute is the class
    count = {"n": 0}
    for name in ("hessian_vector_product",):
        original = getattr(ph, name)
        setattr(ph, name, lambda *a, _f=original, **k: (count.__setitem__("n", count["n"] + 1), _f(*a, **k))[1])
    original_dl = ph.hessian.dataloader_hv_product

    def dl(self, v):
        count["n"] += 1
        return original_dl(self, v)
    ph.hessian.dataloader_hv_product = dl
    torch.eig = lambda m, eigenvectors=False: (torch.stack([torch.linalg.eigh(m)[0], torch.zeros(len(m))], 1),
                                               torch.linalg.eigh(m)[1])  # density() calls torch.eig, since removed
    kwargs = dict(data=batches[0]) if len(batches) == 1 else dict(dataloader=batches)
    rows = []
    for seed in seeds:
        torch.manual_seed(seed)
        row = dict(seed=seed)
        start = cpu_clock()
        comp = ph.hessian(model, torch.nn.CrossEntropyLoss(), cuda=False, **kwargs)  # builds its gradient graph
        setup = cpu_clock() - start
        calls = [("eig", lambda: comp.eigenvalues()), ("trace", lambda: comp.trace())]
        if seed == seeds[0]:  # the same estimator as landscape's at the same size: its cost, once
            calls.append(("density", lambda: comp.density(iter=DENSITY[1], n_v=DENSITY[0])))
        for key, call in calls:
            count["n"] = 0
            start = cpu_clock()
            out = call()
            row[f"{key}_cpu"] = cpu_clock() - start + (setup if key == "eig" else 0.0)
            row[f"{key}_products"] = count["n"]
            if key == "eig":
                row["lam_max"] = float(out[0][0])
            if key == "trace":
                row["trace"] = float(sum(out) / len(out))
        rows.append(row)
    return rows


# --- the parent ------------------------------------------------------------------------------------

def spawn(tool, name, path, seeds, truth_file=None):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", tool, "--model", name, "--path", path,
           "--seed_list", ",".join(map(str, seeds))] + (["--truth", truth_file] if truth_file else [])
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "lib"), OMP_NUM_THREADS="2")
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{tool} on {name} failed:\n{done.stderr[-3000:]}")
    out = done.stdout
    print(f"  {tool} on {name}: {time.perf_counter() - start:.0f} s wall", flush=True)
    return json.loads(out.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=32, help="ResNet-20 training images (the Hessian's data)")
    p.add_argument("--sequences", type=int, default=32, help="GPT-2 sequences of 16 tokens")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--models", default="resnet20,gpt2")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--path", help=argparse.SUPPRESS)
    p.add_argument("--seed_list", help=argparse.SUPPRESS)
    p.add_argument("--truth", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args.child, args.model, args.path, [int(s) for s in args.seed_list.split(",")], args.truth)
    missing = [spec for module, spec in PEERS.items() if importlib.util.find_spec(module) is None]
    if missing:
        print(f"bench_peers skipped: the peers are not installed; pip install {' '.join(missing)} "
              f"(into this venv; benchmark only)")
        return
    sys.path.insert(0, os.path.join(ROOT, "lib"))
    started = time.perf_counter()
    load_before = os.getloadavg()
    paths = prepare(args.images, args.sequences)
    seeds = list(range(args.seeds))
    results = {}
    for name in args.models.split(","):
        print(f"{name}:", flush=True)
        truth = spawn("truth", name, paths[name], [0])["rows"]
        mine = spawn("landscape", name, paths[name], seeds)
        truth["eig_steps"] = {str(r["seed"]): r["eig_products"] for r in mine["rows"]}
        truth["trace_budget"] = {str(r["seed"]): r["eig_products"] + r["trace_products"] for r in mine["rows"]}
        truth_file = os.path.join(OUT_DIR, f"truth_{name}.json")
        with open(truth_file, "w") as f:
            json.dump(truth, f)
        results[name] = dict(truth=truth, landscape=mine, eigenthings=spawn("eigenthings", name, paths[name], seeds,
                                                                             truth_file),
                             pyhessian=spawn("pyhessian", name, paths[name], seeds, truth_file))
    with open(os.path.join(OUT_DIR, "results.json"), "w") as f:
        json.dump(results, f)
    sys.path.insert(0, HERE)
    from peers_report import write_report
    write_report(results, args, started, load_before, DOC)


if __name__ == "__main__":
    main()
