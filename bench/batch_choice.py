"""How steady is the CPU batch that landscape.job.batch.auto_batch_size picks?

  python bench/batch_choice.py [--model resnet20] [--runs 5] [--rounds 1]

Each run is a fresh process, as a plot_surface job is: it builds the model, stores 5,000 random images
channels_last (device_layout) and times every candidate with the library's own per-candidate timer
(evaluate._seconds_per_image, what auto_batch_size minimizes), then prints the times and the pick.
auto_batch_size uses 3 rounds; --rounds 1 shows what a single round (its first version) picked. With more
rounds the candidates are timed in turn again and each keeps its fastest round (other jobs only add time).
"""
import argparse
import os
import subprocess
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as bench_surface.py runs

HERE = os.path.dirname(os.path.abspath(__file__))


def one_pick(model_name, rounds):
    sys.path[:0] = [HERE, os.path.join(HERE, "..", "lib")]
    import torch
    from surface_setup import make_model

    from landscape.job.batch import CPU_BATCHES, _seconds_per_image
    from landscape.space.evaluate import device_layout
    torch.set_num_threads(2)
    x = device_layout(torch.randn(5000, 3, 32, 32, generator=torch.Generator().manual_seed(0)))
    model = make_model(model_name)
    ms = {b: float("inf") for b in CPU_BATCHES}
    start = time.perf_counter()
    for _ in range(rounds):
        for b in CPU_BATCHES:
            ms[b] = min(ms[b], 1e3 * _seconds_per_image(model, x, b, "fp32"))
    cells = "  ".join(f"{b}: {v:.3f}" for b, v in ms.items())
    print(f"ms per image  {cells}  -> pick {min(ms, key=ms.get)} ({time.perf_counter() - start:.1f} s)", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="resnet20", help="resnet20, smallcnn, or a landscape.inputs.models name")
    p.add_argument("--runs", type=int, default=5, help="fresh processes, one pick each")
    p.add_argument("--rounds", type=int, default=3, help="timings per candidate, the fastest kept (library: 3)")
    p.add_argument("--once", action="store_true", help=argparse.SUPPRESS)  # a child process: one pick
    args = p.parse_args()
    if args.once:
        return one_pick(args.model, args.rounds)
    print(f"{args.model}, {args.rounds} round(s), loadavg {open('/proc/loadavg').read().split()[:3]}")
    for _ in range(args.runs):
        subprocess.run([sys.executable, os.path.abspath(__file__), "--once", "--model", args.model,
                        "--rounds", str(args.rounds)], check=True)
    print(f"loadavg after {open('/proc/loadavg').read().split()[:3]}")


if __name__ == "__main__":
    main()
