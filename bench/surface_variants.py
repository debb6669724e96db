"""Variants of landscape's loop, each timed against what the library itself picks (its batch,
channels_last input, fp32, eager): other batch sizes, NCHW input, bf16, torch.compile, and several
grid points per forward (vmap). Also each --precision mode's loss error, and the limit of each
precision: landscape against the fastest bare forward loop in that same precision."""
import copy
import time

import numpy as np
import torch
import torch.nn as nn
from surface_setup import grid_points, landscape_path, max_rel_diff, moved, subset, time_interleaved
from torch.func import functional_call, vmap

from landscape.space.directions import named_entries
from landscape.space.evaluate import evaluate
from landscape.space.losses import crossentropy_sum
from landscape.space.precision import PRECISIONS

BATCHES = (32, 64, 128, 256, 512, 1024)  # the library's CPU candidates (64-512) and one size past each end
CPU = torch.device("cpu")


def compiled_path(model, dirs, data, batch):
    """(point, label) of landscape's loop over torch.compile(model), or (None, why) where compiling fails."""
    model, setter, x, y = moved(model, dirs, data, CPU)
    compiled = torch.compile(model)

    def point(a, b):
        setter.set(a, b)
        return evaluate(compiled, x, y, crossentropy_sum, batch)
    start = time.perf_counter()
    try:
        point(0.0, 0.0)
    except Exception as e:  # report why compiling failed here (no compiler, no network, ...)
        return None, f"torch.compile failed: {type(e).__name__}: {str(e).splitlines()[0][:160]}"
    return point, f"torch.compile, batch {batch} (first call {time.perf_counter() - start:.0f} s)"


def vmap_path(model, dirs, data, batch, k):
    """k grid points per forward: the k parameter vectors stacked, functional_call under vmap.

    The returned point(a, b) evaluates (a, b) and k-1 neighbours along x and returns (loss, acc) at (a, b).
    """
    model, setter, x, y = moved(model, dirs, data, CPU)
    names, entries = zip(*named_entries(model, "weights"))
    shapes, sizes = [t.shape for t in entries], [t.numel() for t in entries]
    buffers = dict(model.named_buffers())

    def forward(flat, xb):
        params = {n: t.view(s) for n, t, s in zip(names, flat.split(sizes), shapes)}
        return functional_call(model, (params, buffers), (xb,))
    batched = vmap(forward, in_dims=(0, None))

    @torch.no_grad()
    def point(a, b):
        offsets = 0.04 * torch.arange(k, dtype=torch.float32).unsqueeze(1)
        flats = setter.theta0 + (a + offsets) * setter.dx + b * setter.dy
        loss, correct = torch.zeros(k, dtype=torch.float64), torch.zeros(k, dtype=torch.int64)
        for start in range(0, len(x), batch):
            xb, yb = x[start:start + batch], y[start:start + batch]
            logits = batched(flats, xb)
            loss += nn.functional.cross_entropy(logits.flatten(0, 1), yb.repeat(k), reduction="none").view(k, -1).sum(1)
            correct += (logits.argmax(-1) == yb).sum(1)
        return loss[0].item() / len(x), 100.0 * correct[0].item() / len(x)
    point.points_per_call = k
    return point


def interleaved_rows(paths, n_points, baseline):
    """(label, median s/point, min s/point, max loss rel. diff vs baseline) for paths timed interleaved."""
    times, _, values = time_interleaved(paths, grid_points(n_points + 1))
    rows = []
    for name, ts in times.items():
        per_call = getattr(paths[name], "points_per_call", 1)
        rows.append((name, float(np.median(ts)) / per_call, min(ts) / per_call,
                     None if name == baseline else max_rel_diff(values, name, baseline)[0]))
    return rows


def cpu_variants(model, dirs, data, batch, n_points=3, vmap_images=512):
    """(variant rows, vmap rows, notes) for one CPU case; batch is the library's choice for it."""
    base = f"library: batch {batch}, channels_last input"
    paths = {base: landscape_path(model, dirs, data, CPU, batch=batch)[0]}
    paths.update({f"batch {b}": landscape_path(model, dirs, data, CPU, batch=b)[0] for b in BATCHES if b != batch})
    paths[f"batch {batch}, NCHW input"] = landscape_path(model, dirs, data, CPU, batch=batch, channels_last=False)[0]
    bf16, bf16_batch = landscape_path(model, dirs, data, CPU, precision="bf16")
    paths[f"--precision bf16 (its auto batch: {bf16_batch})"] = bf16
    compiled, label = compiled_path(model, dirs, data, batch)
    notes = [label] if compiled is None else []
    if compiled is not None:
        paths[label] = compiled
    rows = interleaved_rows(paths, n_points, base)
    small, vbase = subset(data, vmap_images), f"eager, batch {batch}"
    vmaps = {vbase: landscape_path(model, dirs, small, CPU, batch=batch)[0]}
    vmaps.update({f"vmap, {k} points per forward, batch {batch}": vmap_path(model, dirs, small, batch, k)
                  for k in (2, 4)})
    return rows, interleaved_rows(vmaps, 2, vbase), notes


def bare_path(model, dirs, data, batch, precision):
    """The least a point can cost in `precision`: the weights set, then forward passes over pre-sliced
    channels_last batches under inference_mode (and bf16 autocast for bf16), the summed cross-entropy and
    the right answers kept on the device, one read. No checks, no loss abstraction, no batch choice."""
    model, setter, x, y = moved(model, dirs, data, CPU)
    batches = [(x[i:i + batch], y[i:i + batch]) for i in range(0, len(x), batch)]

    def point(a, b):
        setter.set(a, b)
        total, right = torch.zeros((), dtype=torch.float64), torch.zeros((), dtype=torch.int64)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            for xb, yb in batches:
                logits = model(xb)
                total += nn.functional.cross_entropy(logits.float(), yb, reduction="sum")
                right += (logits.argmax(1) == yb).sum()
        loss, hits = torch.stack([total, right.double()]).tolist()
        return loss / len(x), 100.0 * hits / len(x)
    return point


def precision_limits(model, dirs, data, n_points=4):
    """Rows (precision, landscape min s/point, its batch, {batch: bare min s/point}): landscape's
    path in fp32 and bf16 (each with its own auto batch) and the bare loop in both at each of the CPU
    batch candidates, all timed interleaved in one run; "best bare" is the fastest batch's fastest point."""
    paths, batches = {}, {}
    for precision in ("fp32", "bf16"):
        ours, batches[precision] = landscape_path(model, dirs, data, CPU, precision=precision)
        paths[f"landscape {precision}"] = ours
        for b in BATCHES[1:-1]:
            paths[f"bare {precision}, batch {b}"] = bare_path(model, dirs, data, b, precision)
    times, _, _ = time_interleaved(paths, grid_points(n_points + 1))
    rows = []
    for precision in ("fp32", "bf16"):
        bare = {b: min(times[f"bare {precision}, batch {b}"]) for b in BATCHES[1:-1]}
        rows.append((precision, min(times[f"landscape {precision}"]), batches[precision], bare))
    return rows


def limits_table(title, rows):
    """Markdown: each precision's landscape s/point against the best bare loop of the same precision."""
    fp32 = rows[0][1]
    lines = [f"**{title}**", "", "| precision | landscape s/point, min (its batch) | best bare forward loop, same "
             "precision: s/point, min (batch) | landscape / bare | landscape fp32 / this | bare loop by batch |",
             "|---|---:|---:|---:|---:|---|"]
    for precision, ours, batch, bare in rows:
        best = min(bare, key=bare.get)
        by_batch = ", ".join(f"{b}: {t:.3f}" for b, t in bare.items())
        lines.append(f"| {precision} | {ours:.3f} ({batch}) | {bare[best]:.3f} ({best}) | {ours / bare[best]:.3f} | "
                     f"{fp32 / ours:.2f}x | {by_batch} |")
    return "\n".join(lines)


def precision_errors(model, dirs, data, device, batch="auto", point=(0.2, -0.2)):
    """Loss error of each --precision mode against strict fp32, and of fp32 against float64."""
    losses = {p: landscape_path(model, dirs, data, device, batch=batch, precision=p)[0](*point)[0]
              for p in PRECISIONS}
    exact_model = copy.deepcopy(model).to(device, torch.float64)
    with torch.no_grad():
        for p, d0, d1 in zip(exact_model.parameters(), dirs[0], dirs[1]):
            p.add_((point[0] * d0.double() + point[1] * d1.double()).to(device))
        x, y = data.x.to(device, torch.float64), data.y.to(device)
        exact = sum(nn.functional.cross_entropy(exact_model(x[i:i + 256]), y[i:i + 256], reduction="sum").item()
                    for i in range(0, len(x), 256)) / len(x)
    errors = {p: abs(v - losses["fp32"]) / abs(losses["fp32"]) for p, v in losses.items()}
    errors["fp32 vs float64"] = abs(losses["fp32"] - exact) / abs(exact)
    return errors


def variants_table(title, rows):
    """Markdown table of interleaved_rows' rows, each against the first (the baseline)."""
    _, base_med, base_min, _ = rows[0]
    lines = [f"**{title}**", "", "| variant | s/point median / min | points/s (median) | vs the first row: "
             "median / min | loss rel. diff |", "|---|---:|---:|---:|---:|"]
    for label, med, best, diff in rows:
        d = "" if diff is None else f"{diff:.1e}"
        lines.append(f"| {label} | {med:.3f} / {best:.3f} | {1 / med:.3f} | {base_med / med:.2f}x / "
                     f"{base_min / best:.2f}x | {d} |")
    return "\n".join(lines)


def precision_table(errors_by_case):
    lines = ["| case | tf32 vs fp32 | bf16 vs fp32 | fp32 vs float64 |", "|---|---:|---:|---:|"]
    for case, e in errors_by_case.items():
        lines.append(f"| {case} | {e['tf32']:.1e} | {e['bf16']:.1e} | {e['fp32 vs float64']:.1e} |")
    return "\n".join(lines)
