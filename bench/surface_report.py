"""Tables, the bar chart and the CPU markdown page of bench_surface.py."""
import os
import subprocess

import numpy as np
from surface_setup import GRID_SIDE

METHOD = """## How it is measured
- landscape's path is what plot_surface does (cli/context.py, cli/surface.py, evaluate.py): the model copy
  is moved to the device and bound to a `PointSetter`; the images are moved once and stored channels_last by
  `device_layout`; the batch is `auto_batch_size(model, x, "fp32")` (on CPU it times each of 64, 128, 256, 512
  on up to 512 images and keeps the fastest per image). Per point it times `PointSetter.set(a, b)` +
  `evaluate(...)`. The reference loop (bench/reference_loop.py) times `set_weights` + `eval_loss` as
  plot_surface.crunch calls them (MPI reduce and HDF5 write left out).
- The reference path reads the directions from an HDF5 file at every point (h5py datasets, as its
  `h5_util.read_list` returns them), builds one new tensor per parameter, and decodes every image through
  PIL, ToTensor and Normalize in a DataLoader (batch 128, SubsetRandomSampler, shuffle=False). Its source
  calls `loss.item()` once per batch; `correct` stays a tensor until the point ends, so it has one host
  sync per batch, not two. torchvision's MD5 table is swapped for the generated files' own sums; nothing
  else on its read path changes.
- DataLoader workers: the reference defaults to `--threads 2`. On 2 cores both 0 and 2 workers are timed and
  every ratio is taken against the faster of the two ("best reference").
- Same model instance (random init, eval mode), same filter-normalized directions (biasbn ignored), same
  grid points, torch.set_num_threads(2) for both. The first point of each path is a warm-up and not timed.
- The machine is shared: other jobs only ever add time, so the table gives the median and the fastest point;
  the paths run interleaved point by point, so on average both see the same load.
- CPU s/point: CPU time of the process and its DataLoader workers (all threads), the work a point costs.
- OMP_WAIT_POLICY=PASSIVE (unless already set): with other jobs on the cores, spinning OpenMP threads made
  the same point take 5 s or 90 s; sleeping waits keep it steady. Both paths run under the same setting.
- Variants (c) change one thing in landscape's loop at a time and are timed interleaved with the library's
  own choice (its batch, channels_last input, fp32, eager) on the same images.
- Each precision's limit: landscape's path in fp32 and in bf16 (each with its own auto batch) against a bare
  `inference_mode` forward loop in the same precision (bf16 under `torch.autocast`) at batches 64-512: weights
  set, pre-sliced channels_last batches, cross-entropy and right answers summed on the device, one read; all
  interleaved in one run, each side's fastest point, the fastest batch of the bare loop.
- GFLOP/s: forward FLOPs per image from torch.utils.flop_counter.FlopCounterMode, x images / best s/point.
- `--precision tf32` touches only CUDA flags, so on CPU it is fp32 by construction (error 0).
"""


def shell(cmd):
    return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()


def summarize(case, times, cpu, batches, gflop_per_point):
    """(rows, name of the fastest reference path). Other jobs only ever add time, so the fastest point
    ("best") is the steadier figure on a shared machine; the median is kept beside it."""
    refs = [n for n in times if n.startswith("reference")]
    best_ref = min(refs, key=lambda n: min(times[n]))
    ref_med, ref_min = float(np.median(times[best_ref])), min(times[best_ref])
    rows = []
    for name, ts in times.items():
        med, best = float(np.median(ts)), min(ts)
        rows.append(dict(case=case, path=name, batch=batches[name], points=len(ts), median_s=med, min_s=best,
                         max_s=max(ts), cpu_s=float(np.median(cpu[name])), points_per_s=1.0 / med,
                         best_points_per_s=1.0 / best, gflops=gflop_per_point / best,
                         speedup=ref_med / med, best_speedup=ref_min / best))
    return rows, best_ref


def duration(seconds):
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def table(rows):
    lines = ["| case | path | batch | timed points | s/point median (min-max) | CPU s/point | points/s median / best "
             "| GFLOP/s best | vs best reference: median / best | 51x51 grid (est., median) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['case']} | {r['path']} | {r['batch']} | {r['points']} | {r['median_s']:.3f} "
                     f"({r['min_s']:.3f}-{r['max_s']:.3f}) | {r['cpu_s']:.3f} | {r['points_per_s']:.3f} / "
                     f"{r['best_points_per_s']:.3f} | {r['gflops']:.1f} | {r['speedup']:.2f}x / "
                     f"{r['best_speedup']:.2f}x | {duration(r['median_s'] * GRID_SIDE ** 2)} |")
    return "\n".join(lines)


def check_lines(case, checks, best_ref):
    return [f"- {case}: {name} vs {best_ref} at the same points: max relative loss difference {loss:.2e}, "
            f"max accuracy difference {acc:.4f} percentage points" for name, (loss, acc) in checks.items()]


def plot(rows, path):
    """Bars: median points/s; whiskers up to the best point's rate."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    cases = list(dict.fromkeys(r["case"] for r in rows))
    fig, axes = plt.subplots(1, len(cases), figsize=(5 * len(cases), 4.5), squeeze=False)
    for ax, case in zip(axes[0], cases):
        mine = [r for r in rows if r["case"] == case]
        heights = [r["points_per_s"] for r in mine]
        bars = ax.bar(range(len(mine)), heights,
                      yerr=[[0] * len(mine), [r["best_points_per_s"] - h for r, h in zip(mine, heights)]],
                      color=["tab:blue" if r["path"].startswith("landscape") else "tab:gray" for r in mine], capsize=4)
        ax.bar_label(bars, labels=[f"{h:.3g}" for h in heights], padding=2, fontsize=8)
        labels = [r["path"].replace(" (", "\n").replace(")", "") + f"\nbatch {r['batch']}" for r in mine]
        ax.set_xticks(range(len(mine)), labels, fontsize=8)
        ax.set_title(case)
        ax.set_ylabel("grid points per second (bar: median, whisker: best)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def kept_findings(path):
    """The hand-written '## Findings' section of an earlier doc, kept when the numbers are rewritten."""
    if not os.path.exists(path):
        return ""
    with open(path) as f:
        text = f.read()
    start = text.find("\n## Findings")
    return "" if start < 0 else text[start:]


def cpu_doc(meta, sections):
    return "\n\n".join([
        "# Per-point evaluation: landscape vs the reference's loop (CPU)",
        f"- Machine: {meta['cpu']}, {meta['cores']} cores, torch {meta['torch']}, torch.set_num_threads(2) "
        f"for both paths, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}.\n- Date: {meta['date']}.\n"
        f"- Command: `{meta['command']}` (whole run {meta['wall'] / 60:.1f} min).\n- /proc/loadavg before and "
        f"after: `{meta['load'][0]}` / `{meta['load'][1]}` (other jobs shared the 2 cores).\n- Data: "
        f"{meta['n_images']} generated CIFAR-format images on disk; reference directions: {meta['directions']}.",
        METHOD, "## Results (1)-(2), (a)", *sections]) + "\n"
