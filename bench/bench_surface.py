"""Per-grid-point evaluation: landscape (tensors on the device, flat-buffer weights) vs the reference's loop.

  python bench/bench_surface.py          CPU: resnet20 and a small CNN on 5,000 generated images
  python bench/bench_surface.py --gpu    GPU: resnet56 on 50,000 images, each --precision mode, 51x51 estimate
  python bench/bench_surface.py --limits_only --images 2000    CPU: only the fp32/bf16 limit rows (resnet20)

Both paths evaluate the same model copy, directions, grid points and images; the images are
written in the official CIFAR-10 pickle layout, so the reference path reads them through
torchvision.datasets.CIFAR10 and landscape through landscape.inputs.data.load_dataset. landscape's path
is the library's own (device_layout, auto_batch_size, PointSetter, evaluate); the paths run
interleaved point by point and each time is reported as the median and the fastest point.
Results: docs/bench_surface.md (its "## Findings" section is hand-written and kept when the
numbers are rewritten). Pieces: surface_setup.py (shared), surface_variants.py (variants,
precision errors), surface_report.py (tables, page, chart), reference_loop.py (the reference).
"""
import argparse
import os
import sys
import tempfile
import time

# On a shared machine, spinning OpenMP threads wait on descheduled peers and a point can take 10x
# longer; sleeping waits keep the timings steady. Set before torch loads; the same for both paths.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "..", "lib")]

from reference_loop import cifar10_dataset, reference_path  # noqa: E402
from surface_report import check_lines, cpu_doc, kept_findings, plot, shell, summarize, table  # noqa: E402
from surface_setup import (  # noqa: E402
    filter_directions,
    flops_per_image,
    grid_points,
    landscape_path,
    load_landscape_data,
    make_model,
    max_rel_diff,
    subset,
    time_interleaved,
    write_images,
)
from surface_variants import (  # noqa: E402
    cpu_variants,
    limits_table,
    precision_errors,
    precision_limits,
    precision_table,
    variants_table,
)

from landscape.inputs.cifar import file_md5  # noqa: E402
from landscape.space.precision import PRECISIONS, strict_fp32  # noqa: E402


def run_case(case, model_name, root, n_points):
    """CPU case: landscape vs the reference loop with 0 and 2 DataLoader workers, interleaved."""
    model = make_model(model_name)
    dirs, data = filter_directions(model), load_landscape_data(root)
    gflop = flops_per_image(model, data.x) * len(data) / 1e9
    dataset = cifar10_dataset(root, file_md5)
    paths, batches = {}, {}
    paths["landscape"], batches["landscape"] = landscape_path(model, dirs, data, torch.device("cpu"))
    for threads in (0, 2):
        name = f"reference (workers={threads})"
        paths[name], how = reference_path(model, dirs, dataset, threads, os.path.join(root, f"{model_name}_{threads}.h5"))
        batches[name] = 128
    times, cpu, values = time_interleaved(paths, grid_points(n_points + 1))
    rows, best_ref = summarize(case, times, cpu, batches, gflop)
    checks = {n: max_rel_diff(values, n, best_ref) for n in times if n != best_ref}
    return rows, dict(checks=check_lines(case, checks, best_ref), directions=how, model=model, dirs=dirs, data=data,
                      batch=batches["landscape"])


def case_variants(case, info, n_images):
    """(c) and (b) for one CPU case, against the batch the library picked in run_case."""
    model, dirs, data, batch = info["model"], info["dirs"], subset(info["data"], n_images), info["batch"]
    rows, vmap_rows, notes = cpu_variants(model, dirs, data, batch)
    sections = [variants_table(f"{case}, {n_images} images (the library's choice: batch {batch}, channels_last "
                               "input, fp32, eager)", rows),
                variants_table(f"{case}, {min(512, n_images)} images, grid points per forward pass", vmap_rows),
                *notes, limits_table(LIMITS_TITLE.format(case=case, n=n_images), precision_limits(model, dirs, data))]
    return sections, precision_errors(model, dirs, data, torch.device("cpu"), batch)


LIMITS_TITLE = ("{case}, {n} images: each precision's limit, landscape against the fastest bare inference_mode "
                "forward loop (bf16: under autocast) over the batch candidates 64-512, interleaved in one run")


def run_limits(args):
    """Only the fp32 and bf16 limit rows, on resnet20 (or --model): no reference loop, no files written."""
    torch.set_num_threads(2)
    n_images, name = args.images or 2000, args.model or "resnet20"
    with tempfile.TemporaryDirectory() as tmp:
        write_images(tmp, n_images)
        model, data = make_model(name), load_landscape_data(tmp)
    load = shell("cat /proc/loadavg")
    text = limits_table(LIMITS_TITLE.format(case=name, n=n_images),
                        precision_limits(model, filter_directions(model), data, args.points or 4))
    print(f"{shell('date')}; {shell('lscpu | sed -n s/^Model.name:.//p').strip()}; torch {torch.__version__}; "
          f"load average {load} / {shell('cat /proc/loadavg')}\n\n{text}")


def run_cpu(args):
    torch.set_num_threads(2)
    n_images, n_points = args.images or 5000, args.points or 5
    doc = args.doc or os.path.join(HERE, "..", "docs", "bench_surface.md")
    png = args.plot or os.path.join(HERE, "..", "docs", "bench_surface.png")
    started, load_before = time.time(), shell("cat /proc/loadavg")
    rows, notes, variants, errors = [], [], [], {}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(tmp, "inductor")  # time a cold compile
        write_images(tmp, n_images)
        # The small CNN's points are cheap, so it gets three times as many to steady its medians;
        # resnet20's variants run on 1,024 images to keep the run short.
        for case, name, points, n_sub in (("resnet20", "resnet20", n_points, 1024),
                                          ("small CNN", "smallcnn", 3 * n_points, n_images)):
            case_rows, info = run_case(case, name, tmp, points)
            rows += case_rows
            notes += info["checks"]
            print(table(case_rows), *info["checks"], sep="\n", flush=True)
            if args.variants == "yes":
                sections, errors[case] = case_variants(case, info, min(n_sub, n_images))
                variants += sections
                print(*sections, sep="\n\n", flush=True)
    results = [table(rows), "\n".join(notes)]
    if variants:
        results += ["### Variants of landscape's loop (c)", *variants,
                    "### Loss error of each --precision mode at the point (0.2, -0.2) (b)", precision_table(errors)]
    meta = dict(cpu=shell("lscpu | sed -n 's/^Model name: *//p'"), cores=os.cpu_count(), date=shell("date"),
                torch=torch.__version__, directions=info["directions"], load=(load_before, shell("cat /proc/loadavg")),
                wall=time.time() - started, n_images=n_images,
                command=f"cd {os.getcwd()} && {os.path.relpath(sys.executable)} {' '.join(sys.argv)}")
    text = cpu_doc(meta, results)
    print(text)
    kept = kept_findings(doc)
    with open(doc, "w") as f:
        f.write(text + kept)
    plot(rows, png)
    return rows


def time_alone(point, n_points):
    """On a dedicated GPU each path is timed on its own: ([s per point], [CPU s per point])."""
    times, cpu, _ = time_interleaved({"path": point}, grid_points(n_points + 1))
    return times["path"], cpu["path"]


def run_gpu(args):
    """resnet56 on 50k images: landscape (device_layout, auto_batch_size, cudnn.benchmark) per --precision,
    NCHW input as a variant, and the reference with 2 DataLoader workers."""
    device = torch.device(args.device or "cuda")
    torch.backends.cudnn.benchmark = True  # as plot_surface sets it on CUDA (cli/context.py)
    n_images, n_points, name = args.images or 50000, args.points or 50, args.model or "resnet56"
    with tempfile.TemporaryDirectory() as tmp:
        write_images(tmp, n_images)
        model, data = make_model(name), load_landscape_data(tmp)
        dirs = filter_directions(model)
        gflop = flops_per_image(model, data.x) * len(data) / 1e9
        times, cpu, batches, strict = {}, {}, {}, {}
        variants = [(f"landscape {p}", p, True) for p in PRECISIONS] + [("landscape fp32, NCHW input", "fp32", False)]
        for label, precision, channels_last in variants:
            point, batches[label] = landscape_path(model, dirs, data, device, precision=precision,
                                                   channels_last=channels_last)
            times[label], cpu[label] = time_alone(point, n_points)
            if label == "landscape fp32":
                strict["landscape"] = point(*grid_points(1)[0])
            del point
            print(f"{label}: batch {batches[label]}, {np.median(times[label]):.3f} s/point", flush=True)
        label = "reference (workers=2)"
        point, how = reference_path(model, dirs, cifar10_dataset(tmp, file_md5), 2, os.path.join(tmp, "dirs.h5"),
                                    device.type == "cuda")
        # The reference runs with PyTorch's defaults (cuDNN may use TF32; each precision context above put
        # the defaults back); the check below turns TF32 off.
        (times[label], cpu[label]), batches[label] = time_alone(point, args.ref_points), 128
        with strict_fp32():
            strict["reference"] = point(*grid_points(1)[0])
        n_check = min(n_images, 10000)
        errors = precision_errors(model, dirs, subset(data, n_check), device)
    rows, _ = summarize(f"{name}, {n_images} images", times, cpu, batches, gflop)
    (ours, our_acc), (theirs, their_acc) = strict["landscape"], strict["reference"]
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else str(device)
    lines = [f"# Per-point evaluation on {gpu}",
             f"- {shell('date')}; torch {torch.__version__}; {os.cpu_count()} CPU cores; cudnn.benchmark on.\n"
             f"- Command: `python {' '.join(sys.argv)}`.\n- Reference: PyTorch defaults (cuDNN TF32 allowed), "
             f"DataLoader workers=2 (its --threads default), directions as {how}.", table(rows),
             f"- Same point, landscape fp32 vs reference with TF32 off: loss {ours:.7f} vs {theirs:.7f} (relative "
             f"difference {abs(ours - theirs) / abs(theirs):.1e}), accuracy {our_acc:.2f} vs {their_acc:.2f}.",
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
    p.add_argument("--variants", choices=("yes", "no"), default="yes",
                   help="CPU: also time batch, layout, bf16, compile and vmap variants and precision errors")
    p.add_argument("--doc", default=None, help="markdown file to write (CPU default docs/bench_surface.md)")
    p.add_argument("--plot", default=None, help="bar chart PNG (CPU default docs/bench_surface.png)")
    p.add_argument("--device", default=None, help="override the device (e.g. cpu to dry-run --gpu)")
    p.add_argument("--model", default=None, help="override the GPU mode's model (resnet56), or --limits_only's")
    p.add_argument("--limits_only", action="store_true",
                   help="CPU: only landscape's fp32 and bf16 s/point against the best bare loop of each precision")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.limits_only:
        return run_limits(args)
    return run_gpu(args) if args.gpu else run_cpu(args)


if __name__ == "__main__":
    main()
