"""The markdown report of bench_peers.py (its tables and ratios), from the children's results."""
import math
import os
import statistics
import time


def med(values):
    values = [v for v in values if isinstance(v, (int, float))]
    return statistics.median(values) if values else math.nan


def rms(values):
    return math.sqrt(sum(v * v for v in values) / len(values)) if values else math.nan


def eig_errors(rows, truth):
    scale = max(abs(truth["lam_min"]), abs(truth["lam_max"]))
    lo = [abs(r["lam_min"] - truth["lam_min"]) / scale for r in rows if "lam_min" in r]
    hi = [abs(r["lam_max"] - truth["lam_max"]) / scale for r in rows]
    return (max(lo) if lo else None), max(hi)


def trace_rms(rows, truth):
    return rms([(r["trace"] - truth["trace"]) / abs(truth["trace"]) for r in rows])


def summary(result):
    """{tool: {quantity: (products, cpu s, error text)}} and the all-quantities totals at equal accuracy."""
    truth, out = result["truth"], {}
    land = result["landscape"]["rows"]
    land_rms = trace_rms(land, truth)
    for tool in ("landscape", "eigenthings", "pyhessian"):
        rows = result[tool]["rows"]
        lo, hi = eig_errors(rows, truth)
        eig_text = f"λmax {hi:.1e}" + (f", λmin {lo:.1e}" if lo is not None else ", no λmin")
        t_rms = trace_rms(rows, truth)
        scale = (t_rms / land_rms) ** 2 if land_rms > 0 else math.nan  # products for landscape's RMS error
        eq_products = med([r["trace_products"] for r in rows]) * scale
        eq_cpu = med([r["trace_cpu"] for r in rows]) * scale
        out[tool] = dict(
            eig=(med([r["eig_products"] for r in rows]), med([r["eig_cpu"] for r in rows]), eig_text),
            trace=(med([r["trace_products"] for r in rows]), med([r["trace_cpu"] for r in rows]),
                   f"RMS {t_rms:.2%}"),
            trace_eq=(eq_products, eq_cpu, f"×{scale:.2g} of its products"),
            density=(med([r.get("density_products") for r in rows]), med([r.get("density_cpu") for r in rows]), "same SLQ"),
            peak=(result[tool]["peak_mib"], result[tool]["peak_mib"] - result[tool]["base_mib"]))
        if tool == "landscape":
            out[tool]["total"] = med([r["total_cpu"] for r in rows])
            out[tool]["total_products"] = med([r["total_products"] for r in rows])
        else:
            out[tool]["total"] = out[tool]["eig"][1] + out[tool]["trace_eq"][1] + out[tool]["density"][1]
            out[tool]["total_products"] = out[tool]["eig"][0] + out[tool]["trace_eq"][0] + out[tool]["density"][0]
    return out


def table(name, result):
    truth, s = result["truth"], summary(result)
    lines = [f"### {name} (n = {truth['dim']:,} parameters, train loss {result['landscape']['loss']:.1e})", "",
             f"Truth: λmax {truth['lam_max']:.5g}, λmin {truth['lam_min']:.4g} ({truth['steps']} tight Lanczos steps), "
             f"trace {truth['trace']:.5g} ± {truth['trace_err']:.2g} (1σ).", "",
             "| tool | λmin, λmax: products, CPU s (worst error of max\\|λ\\|) | trace: products, CPU s (RMS error) "
             "| trace at landscape's accuracy: products, CPU s | density 3×40: products, CPU s | all four at equal "
             "accuracy: products, CPU s | peak RSS MiB (rise) |", "|---|---|---|---|---|---|---|"]
    for tool in ("landscape", "eigenthings", "pyhessian"):
        t = s[tool]
        eig, tr, eq, de = t["eig"], t["trace"], t["trace_eq"], t["density"]
        eig_cell = f"{eig[0]:g}, {eig[1]:.1f} ({eig[2]})"
        if tool == "eigenthings":
            eig_cell += ", steps chosen by an oracle"
        total = f"{t['total_products']:.0f}, {t['total']:.1f}" + (" (λmax only)" if tool == "pyhessian" else "")
        lines.append(f"| {tool} | {eig_cell} | {tr[0]:g}, {tr[1]:.1f} ({tr[2]}) | {eq[0]:.0f}, {eq[1]:.1f} ({eq[2]}) "
                     f"| {de[0]:g}, {de[1]:.1f} | {total} | {t['peak'][0]:.0f} ({t['peak'][1]:+.0f}) |")
    peers = {tool: s[tool]["total"] for tool in ("eigenthings", "pyhessian")}
    fastest = min(peers, key=peers.get)
    eig_peer = s["eigenthings"]["eig"][1]
    eig_ratio, total_ratio = s["landscape"]["eig"][1] / eig_peer, s["landscape"]["total"] / peers[fastest]
    lines += ["", f"CPU seconds, landscape / fastest peer: λmin and λmax {eig_ratio:.2f}× (eigenthings at its oracle "
              f"step count); all four at equal accuracy {total_ratio:.2f}× ({fastest}). Medians over the seeds.", ""]
    return lines, s


def write_report(results, args, started, load_before, path):
    lines = [f"# bench_peers: curvature against every peer ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})", "",
             f"`PYTHONPATH=lib .venv/bin/python bench/bench_peers.py --images {args.images} --sequences "
             f"{args.sequences} --seeds {args.seeds}`: {len(os.sched_getaffinity(0))} CPUs, 2 torch threads per tool, "
             f"load average {load_before[0]:.1f} before and {os.getloadavg()[0]:.1f} after, "
             f"{time.perf_counter() - started:.0f} s in all. Seeds 0..{args.seeds - 1} (start vectors and probes).", ""]
    for name, result in results.items():
        block, _ = table(name, result)
        lines += block
    lines += ["Per seed (λmin, λmax, products and CPU s of each quantity): bench/out/peers/results.json.", ""]
    text = "\n".join(lines)
    print(text)
    with open(path, "w") as f:
        f.write(text)
