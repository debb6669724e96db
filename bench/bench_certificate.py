"""What the extremes' stopping certificate costs: Lanczos steps until both Ritz extremes are within tol of
the truth, against steps until the certificate (lanczos_extremes) is met, at trained tiny nets (dense
Hessians) and at known spectra shaped like a trained net's, for several miss probabilities.

  PYTHONPATH=lib:tests .venv/bin/python bench/bench_certificate.py [--seeds 10]     (about a minute)

Columns (medians over the seeds; steps = products): `Ritz within tol`: the first step from which both
extreme Ritz values stay within tol * max|λ| of the dense truth, which a rule with no guarantee could at
best stop at; `before`: the certificate as it was (the sum over p_0..p_{k-1} at step k); `now`: with
p_k, which step k's product already fixes (lanczos.log_christoffel_sum); `now, miss 0.05 / 0.1`: the
same at a weaker guarantee, to show what the default 0.01 costs. `wrong` counts the seeds whose stop left
an extreme off by more than tol * max|λ|.
"""
import argparse
import os
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, "..", "lib"), os.path.join(HERE, "..", "tests")]
from test_extremes import bulk_spectrum, cnn, mlp, trained  # noqa: E402
from test_hessian import dense_hessian, known_spectrum_operator  # noqa: E402

from landscape.curvature.hvp import hessian_param_names  # noqa: E402
from landscape.curvature.lanczos import hidden_weight_log_limit, lanczos_steps, log_christoffel_sum, start_vector  # noqa: E402

TOL = 1e-3
RULES = (("before", 1e-2, False), ("now", 1e-2, True), ("now, miss 0.05", 5e-2, True), ("now, miss 0.1", 1e-1, True))


def run(matvec, dim, truth, seed, max_steps=150):
    """Per step: (both extremes within tol of the truth, theta_min, theta_max, {rule: certificate met})."""
    lo, hi = truth
    rows = []
    for state in lanczos_steps(matvec, start_vector(dim, seed), min(max_steps, dim)):
        theta = np.linalg.eigvalsh(state.tridiagonal().numpy())
        margin = TOL * max(abs(theta[0]), abs(theta[-1]))
        met = {}
        for name, miss, plus in RULES:
            limit = hidden_weight_log_limit(dim, miss)
            met[name] = all(log_christoffel_sum(state.alphas, state.betas, x, state.beta_next if plus else None)
                            >= limit for x in (theta[0] - margin, theta[-1] + margin))
        ok = max(abs(theta[0] - lo), abs(theta[-1] - hi)) <= TOL * max(abs(lo), abs(hi))
        rows.append((ok, met))
        if state.beta_next == 0:
            break
    return rows


def summary(rows):
    settled = next(k + 1 for k in range(len(rows)) if all(ok for ok, _ in rows[k:]))
    stops = {name: next((k + 1 for k, (_, met) in enumerate(rows) if met[name]), len(rows)) for name, _, _ in RULES}
    wrong = {name: not rows[stops[name] - 1][0] for name, _, _ in RULES}
    return settled, stops, wrong


def cases():
    for make, train_seed in ((mlp, 0), (mlp, 1), (cnn, 0), (cnn, 1)):
        model, x, y = trained(make, train_seed)
        hessian = torch.tensor(dense_hessian(model, hessian_param_names(model, "all"), x, y))
        hessian = (hessian + hessian.T) / 2
        eig = np.linalg.eigvalsh(hessian.numpy())
        yield f"trained {make.__name__} {train_seed}", (lambda h: lambda v: h @ v)(hessian), len(eig), eig
    for outliers in ([-0.0184], [-0.01, -0.005, -0.002]):
        spectrum = np.sort(bulk_spectrum(1500, outliers, 0))
        yield f"bulk + {outliers}", known_spectrum_operator(spectrum, 0), len(spectrum), spectrum


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=10)
    args = p.parse_args()
    torch.set_num_threads(1)
    print(f"# bench_certificate ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}), tol {TOL}, "
          f"{args.seeds} start vectors per case\n")
    names = [name for name, _, _ in RULES]
    print("| case (n, λmin/λmax) | Ritz within tol | " + " | ".join(names) + " | wrong (" + ", ".join(names) + ") |")
    print("|---" * (len(names) + 3) + "|")
    totals = {name: 0 for name in names}
    for label, matvec, dim, eig in cases():
        got = [summary(run(matvec, dim, (eig[0], eig[-1]), seed)) for seed in range(args.seeds)]
        settled = np.median([g[0] for g in got])
        stops = {name: np.median([g[1][name] for g in got]) for name in names}
        wrong = {name: sum(g[2][name] for g in got) for name in names}
        for name in names:
            totals[name] += sum(g[1][name] for g in got)
        print(f"| {label} ({dim}, {eig[0] / eig[-1]:.1%}) | {settled:g} | " + " | ".join(f"{stops[n]:g}" for n in names)
              + " | " + ", ".join(str(wrong[n]) for n in names) + " |", flush=True)
    print("\nproducts in all: " + ", ".join(f"{n} {totals[n]}" for n in names))


if __name__ == "__main__":
    main()
