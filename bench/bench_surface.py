"""Per-grid-point evaluation: landscape (tensors on the device, flat-buffer weights) vs the reference's loop.

  python bench/bench_surface.py          CPU: resnet20 and a small CNN on 5,000 generated images
  python bench/bench_surface.py --gpu    GPU: resnet56 on 50,000 images, precision modes, 51x51 estimate

Both paths evaluate the same model copy, directions, grid points and images; the images are
written in the official CIFAR-10 pickle layout, so the reference path reads them through
torchvision.datasets.CIFAR10 and landscape through landscape.data.load_dataset. Paths run
interleaved point by point, so load from other processes hits both alike; each time is reported as
the median and the fastest point. Results: docs/bench_surface.md (its "## Findings" section is
hand-written and kept when the numbers are rewritten).
"""
import argparse
import copy
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings

# On a shared machine, spinning OpenMP threads wait on descheduled peers and a point can take 10x
# longer; sleeping waits keep the timings steady. Set before torch loads; the same for both paths.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "..", "lib")]

import reference_loop as ref  # noqa: E402
from landscape.data import load_dataset  # noqa: E402
from landscape.data_cifar import file_md5, write_cifar  # noqa: E402
from landscape.data_synthetic import synthetic_cifar  # noqa: E402
from landscape.directions import named_entries, normalize_direction, random_direction  # noqa: E402
from landscape.evaluate import auto_batch_size, crossentropy_sum, evaluate  # noqa: E402
from landscape.flatparams import PointSetter  # noqa: E402
from landscape.models import get_model  # noqa: E402

GRID_SIDE = 51


class SmallCNN(nn.Sequential):
    """Two strided convs (8 and 16 channels): a forward costs less than decoding the images."""

    def __init__(self, num_classes=10):
        super().__init__(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, num_classes))


def make_model(name, seed=0):
    torch.manual_seed(seed)
    return (SmallCNN() if name == "smallcnn" else get_model(name)).eval()


def write_images(root, n_train, n_test=100, seed=0):
    train_x, train_y, test_x, test_y = synthetic_cifar(n_train, n_test, 10, seed)
    write_cifar(root, "cifar10", train_x, train_y, test_x, test_y)


def load_landscape_data(root):
    with warnings.catch_warnings():  # the MD5 warning for non-official files is expected here
        warnings.simplefilter("ignore")
        train, _ = load_dataset("cifar10", root)
    return train


def filter_directions(model, seed=1):
    entries = [t for _, t in named_entries(model, "weights")]
    return [normalize_direction(random_direction(entries, seed + k), entries, "filter", "biasbn") for k in (0, 1)]


def grid_points(count):
    """count (a, b) points spread over the default 51x51 grid on [-1, 1]^2 (flat index = iy*51 + ix)."""
    coords = np.linspace(-1.0, 1.0, GRID_SIDE)
    flat = np.linspace(0, GRID_SIDE * GRID_SIDE - 1, count + 2).round().astype(int)[1:-1]
    return [(float(coords[i % GRID_SIDE]), float(coords[i // GRID_SIDE])) for i in flat]


def flops_per_image(model, x):
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(x[:4])
    return counter.get_total_flops() / 4


def landscape_path(model, dirs, data, device, batch="auto", precision="fp32", channels_last=False):
    """What landscape's surface driver does per point: PointSetter.set, then evaluate on device tensors."""
    model = copy.deepcopy(model).to(device)
    names, entries = zip(*named_entries(model, "weights"))
    setter = PointSetter(model, list(names), list(entries), dirs[0], dirs[1])
    x, y = data.x.to(device), data.y.to(device)
    if channels_last:  # weights stay flat views (PointSetter); the conv picks NHWC from the input
        x = x.contiguous(memory_format=torch.channels_last)
    size = auto_batch_size(model, x, precision) if batch == "auto" else batch

    def point(a, b):
        setter.set(a, b)
        return evaluate(model, x, y, crossentropy_sum, size, precision)
    return point, size


def fastest_cpu_batch(model, x, candidates=(32, 64, 128, 256, 512), probe=512):
    """Proposed CPU auto batch: the candidate with the least forward time per image over the first
    `probe` images (like cudnn.benchmark). Small batches keep a deep net's activations in cache;
    tiny nets want large ones."""
    x = x[:probe]
    best, best_per_image = len(x), float("inf")
    with torch.inference_mode():
        for size in (c for c in candidates if c <= len(x)):
            model(x[:size])  # first call at a shape sets up its kernels
            start = time.perf_counter()
            for i in range(0, len(x) - size + 1, size):
                model(x[i:i + size])
            per_image = (time.perf_counter() - start) / (len(x) // size * size)
            if per_image < best_per_image:
                best, best_per_image = size, per_image
    return best


def proposed_path(model, dirs, data):
    """landscape with the CPU changes proposed in docs/bench_surface.md: channels_last input, tuned batch."""
    x = data.x.contiguous(memory_format=torch.channels_last)
    batch = fastest_cpu_batch(copy.deepcopy(model), x)
    return landscape_path(model, dirs, data, torch.device("cpu"), batch=batch, channels_last=True)


def reference_path(model, dirs, dataset, threads, h5_path, use_cuda=False):
    net = copy.deepcopy(model).cpu()
    weights = ref.get_weights(net)  # taken on the CPU, as crunch does before eval_loss's net.cuda()
    lists, handle, how = ref.direction_lists(dirs[0], dirs[1], h5_path)
    loader = ref.reference_loader(dataset, batch_size=128, threads=threads)

    def point(a, b):
        return ref.evaluate_point(net, weights, lists, (np.float32(a), np.float32(b)), loader, use_cuda)
    point.keep = handle
    return point, how


def cpu_seconds():
    """CPU time of this process and its reaped children (the DataLoader workers), all threads."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def time_interleaved(paths, points, cpu_times=None):
    """{name: [seconds per point]}, {name: [(loss, acc)]}; points[0] is a warm-up, not timed.

    cpu_times, a dict, receives {name: [CPU seconds per point]}."""
    times, values = {n: [] for n in paths}, {n: [] for n in paths}
    cpu = {n: [] for n in paths}
    names = list(paths)
    for k, (a, b) in enumerate(points):
        for name in (names if k % 2 == 0 else names[::-1]):
            start, start_cpu = time.perf_counter(), cpu_seconds()
            result = paths[name](a, b)
            elapsed, used = time.perf_counter() - start, cpu_seconds() - start_cpu
            if k > 0:
                times[name].append(elapsed)
                cpu[name].append(used)
                values[name].append(result)
    if cpu_times is not None:
        cpu_times.update(cpu)
    return times, values


def max_rel_diff(values, name, other):
    losses = [abs(u[0] - v[0]) / abs(v[0]) for u, v in zip(values[name], values[other])]
    accs = [abs(u[1] - v[1]) for u, v in zip(values[name], values[other])]
    return max(losses), max(accs)


def summarize(case, times, batches, gflop_per_point, cpu_times=None):
    """Rows per path. Other jobs only ever add time, so the fastest point ("best") is the steadier
    figure on a shared machine; the median is kept beside it."""
    refs = [n for n in times if n.startswith("reference")]
    best_ref = min(refs, key=lambda n: min(times[n]))
    rows = []
    for name, ts in times.items():
        med, best = float(np.median(ts)), min(ts)
        rows.append(dict(case=case, path=name, batch=batches[name], points=len(ts), median_s=med, min_s=best,
                         max_s=max(ts), points_per_s=1.0 / med, best_points_per_s=1.0 / best,
                         gflops=gflop_per_point / best, speedup=float(np.median(times[best_ref])) / med,
                         best_speedup=min(times[best_ref]) / best,
                         cpu_s=float(np.median(cpu_times[name])) if cpu_times else None))
    return rows, best_ref


def duration(seconds):
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def table(rows):
    lines = ["| case | path | batch | timed points | s/point median (min-max) | CPU s/point | points/s median / best "
             "| GFLOP/s best | vs best reference: median / best | 51x51 grid (est., median) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        cpu = "" if r["cpu_s"] is None else f"{r['cpu_s']:.3f}"
        lines.append(f"| {r['case']} | {r['path']} | {r['batch']} | {r['points']} | {r['median_s']:.3f} "
                     f"({r['min_s']:.3f}-{r['max_s']:.3f}) | {cpu} | {r['points_per_s']:.3f} / "
                     f"{r['best_points_per_s']:.3f} | {r['gflops']:.1f} | {r['speedup']:.2f}x / "
                     f"{r['best_speedup']:.2f}x | {duration(r['median_s'] * GRID_SIDE ** 2)} |")
    return "\n".join(lines)


def run_case(case, model_name, root, n_points, ref_threads, h5_dir):
    """CPU case: landscape vs the reference loop with each DataLoader worker count, interleaved."""
    cpu = torch.device("cpu")
    model = make_model(model_name)
    dirs = filter_directions(model)
    data = load_landscape_data(root)
    gflop = flops_per_image(model, data.x) * len(data) / 1e9
    dataset = ref.cifar10_dataset(root, file_md5)
    paths, batches = {}, {}
    paths["landscape"], batches["landscape"] = landscape_path(model, dirs, data, cpu)
    label = "landscape + proposal (channels_last, tuned batch)"
    paths[label], batches[label] = proposed_path(model, dirs, data)
    for threads in ref_threads:
        name = f"reference (workers={threads})"
        h5_path = os.path.join(h5_dir, f"{model_name}_{threads}.h5")
        paths[name], how = reference_path(model, dirs, dataset, threads, h5_path)
        batches[name] = 128
    cpu_times = {}
    times, values = time_interleaved(paths, grid_points(n_points + 1), cpu_times)
    rows, best_ref = summarize(case, times, batches, gflop, cpu_times)
    checks = {n: max_rel_diff(values, n, best_ref) for n in times if n != best_ref}
    return rows, dict(checks=checks, best_ref=best_ref, directions=how, model=model, dirs=dirs, data=data)


def subset(data, n):
    return type(data)(data.x[:n], data.y[:n], data.num_classes)


def compiled_path(model, dirs, data, batch):
    """landscape's loop over torch.compile(model): (point, label), or (None, why) where compiling fails."""
    model = copy.deepcopy(model)
    names, entries = zip(*named_entries(model, "weights"))
    setter = PointSetter(model, list(names), list(entries), dirs[0], dirs[1])
    compiled = torch.compile(model)

    def point(a, b):
        setter.set(a, b)
        return evaluate(compiled, data.x, data.y, crossentropy_sum, batch)
    start = time.perf_counter()
    try:
        point(0.0, 0.0)
    except Exception as e:  # report why compiling failed here (no compiler, no network, ...)
        return None, f"torch.compile failed: {type(e).__name__}: {str(e).splitlines()[0][:160]}"
    return point, f"torch.compile, batch {batch} (first call {time.perf_counter() - start:.0f} s)"


def vmap_path(model, dirs, data, batch, k):
    """k grid points per forward: the k parameter vectors stacked, functional_call under vmap.

    call(a, b) evaluates (a, b) and k-1 neighbours along x and returns (loss, acc) at (a, b).
    """
    from torch.func import functional_call, vmap
    model = copy.deepcopy(model)
    names, entries = zip(*named_entries(model, "weights"))
    setter = PointSetter(model, list(names), list(entries), dirs[0], dirs[1])
    shapes, sizes = [t.shape for t in entries], [t.numel() for t in entries]
    buffers = dict(model.named_buffers())

    def forward(flat, xb):
        params = {n: t.view(s) for n, t, s in zip(names, flat.split(sizes), shapes)}
        return functional_call(model, (params, buffers), (xb,))
    batched = vmap(forward, in_dims=(0, None))

    @torch.no_grad()
    def call(a, b):
        offsets = 0.04 * torch.arange(k, dtype=torch.float32).unsqueeze(1)
        flats = setter.theta0 + (a + offsets) * setter.dx + b * setter.dy
        loss, correct = torch.zeros(k, dtype=torch.float64), torch.zeros(k, dtype=torch.int64)
        for start in range(0, len(data), batch):
            xb, yb = data.x[start:start + batch], data.y[start:start + batch]
            logits = batched(flats, xb)
            loss += nn.functional.cross_entropy(logits.flatten(0, 1), yb.repeat(k), reduction="none").view(k, -1).sum(1)
            correct += (logits.argmax(-1) == yb).sum(1)
        return loss[0].item() / len(data), 100.0 * correct[0].item() / len(data)
    call.points_per_call = k
    return call


def interleaved_rows(paths, n_points, baseline):
    """(label, median s/point, min s/point, max loss rel. diff vs baseline) for paths timed interleaved."""
    times, values = time_interleaved(paths, grid_points(n_points + 1))
    rows = []
    for name, ts in times.items():
        per_call = getattr(paths[name], "points_per_call", 1)
        rows.append((name, float(np.median(ts)) / per_call, min(ts) / per_call,
                     None if name == baseline else max_rel_diff(values, name, baseline)[0]))
    return rows


def precision_errors(model, dirs, data, device, point=(0.2, -0.2)):
    """Loss error of each --precision mode against strict fp32, and of fp32 against float64."""
    losses = {p: landscape_path(model, dirs, data, device, precision=p)[0](*point)[0]
              for p in ("fp32", "tf32", "bf16")}
    moved = copy.deepcopy(model).to(device, torch.float64)
    with torch.no_grad():
        for p, d0, d1 in zip(moved.parameters(), dirs[0], dirs[1]):
            p.add_((point[0] * d0.double() + point[1] * d1.double()).to(device))
        x, y = data.x.to(device, torch.float64), data.y.to(device)
        exact = sum(nn.functional.cross_entropy(moved(x[i:i + 256]), y[i:i + 256], reduction="sum").item()
                    for i in range(0, len(x), 256)) / len(x)
    errors = {p: abs(v - losses["fp32"]) / abs(losses["fp32"]) for p, v in losses.items()}
    errors["fp32 vs float64"] = abs(losses["fp32"] - exact) / abs(exact)
    return errors


def check_lines(case, info):
    out = []
    for name, (loss_rel, acc_abs) in info["checks"].items():
        out.append(f"- {case}: {name} vs {info['best_ref']} at the same points: max relative loss "
                   f"difference {loss_rel:.2e}, max accuracy difference {acc_abs:.4f} percentage points")
    return out


def cpu_extras(info, n_images, n_points, vmap_images=512):
    """(c) and (b) for one CPU case: variant rows, vmap rows, notes, precision errors."""
    model, dirs, data, cpu = info["model"], info["dirs"], subset(info["data"], n_images), torch.device("cpu")
    paths = {f"batch {b}": landscape_path(model, dirs, data, cpu, batch=b)[0] for b in (64, 128, 256, 512, 1024)}
    paths["batch 256, channels_last input"] = landscape_path(model, dirs, data, cpu, batch=256, channels_last=True)[0]
    paths["batch 256, --precision bf16"] = landscape_path(model, dirs, data, cpu, batch=256, precision="bf16")[0]
    compiled, label = compiled_path(model, dirs, data, 256)
    notes = [label] if compiled is None else []
    if compiled is not None:
        paths[label] = compiled
    rows = interleaved_rows(paths, n_points, "batch 256")
    small = subset(data, vmap_images)
    vmaps = {"eager, batch 256": landscape_path(model, dirs, small, cpu, batch=256)[0]}
    vmaps.update({f"vmap, {k} points per forward": vmap_path(model, dirs, small, 256, k) for k in (2, 4)})
    vrows = interleaved_rows(vmaps, 2, "eager, batch 256")
    return rows, vrows, notes, precision_errors(model, dirs, data, cpu)


def extras_table(title, rows):
    base = rows[[label for label, *_ in rows].index(title[1])][1:3]
    lines = [f"**{title[0]}**", "", f"| variant | s/point median / min | points/s (median) | vs {title[1]}: "
             "median / min | loss rel. diff |", "|---|---:|---:|---:|---:|"]
    for label, med, best, diff in rows:
        d = "" if diff is None else f"{diff:.1e}"
        lines.append(f"| {label} | {med:.3f} / {best:.3f} | {1 / med:.3f} | {base[0] / med:.2f}x / "
                     f"{base[1] / best:.2f}x | {d} |")
    return "\n".join(lines)


def precision_table(errors_by_case):
    lines = ["| case | tf32 vs fp32 | bf16 vs fp32 | fp32 vs float64 |", "|---|---:|---:|---:|"]
    for case, e in errors_by_case.items():
        lines.append(f"| {case} | {e['tf32']:.1e} | {e['bf16']:.1e} | {e['fp32 vs float64']:.1e} |")
    return "\n".join(lines)


def shell(cmd):
    return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()


def short_label(path):
    return (path.replace("landscape + proposal (channels_last, tuned batch)", "landscape\n+ proposal")
            .replace(" (", "\n").replace(")", "").replace(", ", "\n"))


def plot(rows, path):
    """Bars: median points/s; whiskers up to the best point's rate."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    cases = list(dict.fromkeys(r["case"] for r in rows))
    fig, axes = plt.subplots(1, len(cases), figsize=(5.5 * len(cases), 4.5), squeeze=False)
    for ax, case in zip(axes[0], cases):
        mine = [r for r in rows if r["case"] == case]
        heights = [r["points_per_s"] for r in mine]
        bars = ax.bar(range(len(mine)), heights,
                      yerr=[[0] * len(mine), [r["best_points_per_s"] - h for r, h in zip(mine, heights)]],
                      color=["tab:blue" if r["path"].startswith("landscape") else "tab:gray" for r in mine], capsize=4)
        ax.bar_label(bars, labels=[f"{h:.3g}" for h in heights], padding=2, fontsize=8)
        ax.set_xticks(range(len(mine)), [short_label(r["path"]) for r in mine], fontsize=8)
        ax.set_title(case)
        ax.set_ylabel("grid points per second (bar: median, whisker: best)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def run_cpu(args):
    torch.set_num_threads(2)
    n_images, n_points = args.images or 5000, args.points or 5
    doc = args.doc or os.path.join(HERE, "..", "docs", "bench_surface.md")
    png = args.plot or os.path.join(HERE, "..", "docs", "bench_surface.png")
    started, load_before = time.time(), shell("cat /proc/loadavg")
    rows, notes, extras, errors = [], [], [], {}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(tmp, "inductor")  # time a cold compile
        write_images(tmp, n_images)
        # The small CNN's points are cheap, so it gets three times as many to steady its medians.
        cases = (("resnet20", "resnet20", n_points, 1024), ("small CNN", "smallcnn", 3 * n_points, n_images))
        for case, name, points, sub in cases:
            case_rows, info = run_case(case, name, tmp, points, (0, 2), tmp)
            rows += case_rows
            notes += check_lines(case, info)
            print(table(case_rows), *check_lines(case, info), sep="\n", flush=True)
            if args.extras == "yes":
                n_sub = min(sub, n_images)
                extra_rows, vmap_rows, extra_notes, errors[case] = cpu_extras(info, n_sub, 3)
                added = [extras_table((f"{case}, {n_sub} images (landscape's CPU default: batch 256, fp32, eager)",
                                         "batch 256"), extra_rows),
                           extras_table((f"{case}, {min(512, n_sub)} images, grid points per forward pass",
                                         "eager, batch 256"), vmap_rows), *extra_notes]
                extras += added
                print(*added, sep="\n\n", flush=True)
    sections = [table(rows), "\n".join(notes)]
    if extras:
        sections += ["### Variants of landscape's loop (c)", *extras,
                     "### Loss error of each --precision mode at the point (0.2, -0.2) (b)", precision_table(errors)]
    meta = dict(cpu=shell("lscpu | sed -n 's/^Model name: *//p'"), cores=os.cpu_count(), date=shell("date"),
                torch=torch.__version__, directions=info["directions"], load=(load_before, shell("cat /proc/loadavg")),
                wall=time.time() - started, command="python " + " ".join(sys.argv), n_images=n_images)
    text = cpu_doc(meta, sections)
    print(text)
    kept = kept_findings(doc)
    with open(doc, "w") as f:
        f.write(text + kept)
    plot(rows, png)
    return rows


METHOD = """## How it is measured
- Per point, landscape times `PointSetter.set(a, b)` + `evaluate(...)` on the normalized tensor (batch from
  `auto_batch_size`: 256 on CPU); the reference loop (bench/reference_loop.py) times `set_weights` +
  `eval_loss` as plot_surface.crunch calls them (MPI reduce and HDF5 write left out).
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
- "landscape + proposal" is not what landscape does today: it is the change proposed below (input stored
  channels_last once, CPU batch picked by timing one forward per candidate size), timed in the same loop.
- GFLOP/s: forward FLOPs per image from torch.utils.flop_counter.FlopCounterMode, x images / best s/point.
- `--precision tf32` touches only CUDA flags, so on CPU it is fp32 by construction (error 0).
"""


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
        f"- Command: `{meta['command']}` "
        f"(whole run {meta['wall'] / 60:.1f} min).\n- /proc/loadavg before and after: "
        f"`{meta['load'][0]}` / `{meta['load'][1]}` (other jobs shared the 2 cores).\n- Data: {meta['n_images']} "
        f"generated CIFAR-format images on disk; reference directions: {meta['directions']}.",
        METHOD, "## Results (1)-(2), (a)", *sections]) + "\n"


def run_gpu(args):
    """resnet56 on 50k images: landscape per --precision (channels_last input, cudnn.benchmark) vs the reference."""
    device = torch.device(args.device or "cuda")
    torch.backends.cudnn.benchmark = True
    n_images, n_points, name = args.images or 50000, args.points or 50, args.model or "resnet56"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        write_images(tmp, n_images)
        model, data = make_model(name), load_landscape_data(tmp)
        dirs = filter_directions(model)
        gflop = flops_per_image(model, data.x) * len(data) / 1e9
        times, batches, strict = {}, {}, {}
        for precision, channels_last in (("fp32", False), ("fp32", True), ("tf32", True), ("bf16", True)):
            label = f"landscape {precision}, " + ("channels_last input" if channels_last else "NCHW input (CLI today)")
            point, batches[label] = landscape_path(model, dirs, data, device, precision=precision,
                                                   channels_last=channels_last)
            times[label] = time_interleaved({label: point}, grid_points(n_points + 1))[0][label]
            if precision == "fp32" and channels_last:
                strict["landscape"] = point(*grid_points(1)[0])
            del point
            print(f"{label}: {np.median(times[label]):.3f} s/point", flush=True)
        dataset = ref.cifar10_dataset(tmp, file_md5)
        label = "reference (workers=2)"
        point, how = reference_path(model, dirs, dataset, 2, os.path.join(tmp, "dirs.h5"), device.type == "cuda")
        # The reference runs with PyTorch's defaults (cuDNN may use TF32); the check below turns TF32 off.
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = True, False
        times[label], batches[label] = time_interleaved({label: point}, grid_points(args.ref_points + 1))[0][label], 128
        torch.backends.cudnn.allow_tf32 = False
        strict["reference"] = point(*grid_points(1)[0])
        n_check = min(n_images, 10000)
        errors = precision_errors(model, dirs, subset(data, n_check), device)
    rows, _ = summarize(f"{name}, {n_images} images", times, batches, gflop)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else str(device)
    lines = [f"# Per-point evaluation on {gpu}",
             f"- {shell('date')}; torch {torch.__version__}; {os.cpu_count()} CPU cores; cudnn.benchmark on.\n"
             f"- Command: `python {' '.join(sys.argv)}`.\n- Reference: PyTorch defaults (cuDNN TF32 allowed), "
             f"DataLoader workers=2 (its --threads default), directions as {how}.", table(rows),
             f"- Same point, landscape fp32 vs reference with TF32 off: loss {strict['landscape'][0]:.7f} vs "
             f"{strict['reference'][0]:.7f} (relative difference "
             f"{abs(strict['landscape'][0] - strict['reference'][0]) / abs(strict['reference'][0]):.1e}), "
             f"accuracy {strict['landscape'][1]:.2f} vs {strict['reference'][1]:.2f}.",
             f"Loss error of each --precision mode at (0.2, -0.2), {n_check} images:", precision_table({name: errors})]
    text = "\n\n".join(lines) + "\n"
    print(text)
    if args.doc:
        with open(args.doc, "w") as f:
            f.write(text)
    if args.plot:
        plot(rows, args.plot)
    return rows


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gpu", action="store_true", help="the lent-GPU benchmark (resnet56, 50k images)")
    p.add_argument("--points", type=int, default=None, help="timed points per path (CPU 5, GPU 50)")
    p.add_argument("--ref-points", type=int, default=3, help="GPU: timed points for the reference loop")
    p.add_argument("--images", type=int, default=None, help="training images (CPU 5000, GPU 50000)")
    p.add_argument("--extras", choices=("yes", "no"), default="yes", help="CPU: batch, compile, vmap, precision")
    p.add_argument("--doc", default=None, help="markdown file to write (CPU default docs/bench_surface.md)")
    p.add_argument("--plot", default=None, help="bar chart PNG (CPU default docs/bench_surface.png)")
    p.add_argument("--device", default=None, help="override the device (e.g. cpu to dry-run --gpu)")
    p.add_argument("--model", default=None, help="override the GPU mode's model (resnet56)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    return run_gpu(args) if args.gpu else run_cpu(args)


if __name__ == "__main__":
    main()
