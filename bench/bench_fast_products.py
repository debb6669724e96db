"""Issue 22's fast products, each against its baseline in the same process: CPU seconds per product of a
double-backward HVP rebuilt every time, differentiated m at a time from one graph per batch (blocks.py), and
from graphs kept for the whole point (KeptGraphs); and the HVP batch 'auto' picks against the former default.

  PYTHONPATH=lib .venv/bin/python bench/bench_fast_products.py [--rounds 3]     (about 3 minutes, 2 cores)

Models: a tiny CNN (tests/tiny.py, width 8, 256 images 16x16), ResNet-20 (128 random images 32x32) and a
tiny GPT-2 (2 layers, width 64, 64 sequences of 32 tokens); every parameter; the products over all samples
in batches of 128 (ResNet-20, CNN) or 32 (GPT-2). Each variant computes the same 8 products; the fastest of
`--rounds` interleaved rounds of CPU seconds (time.process_time, both threads) is kept.
"""
import argparse
import os
import sys
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, "..", "lib"), os.path.join(HERE, "..", "tests")]
from landscape.curvature.blocks import KeptGraphs, block_products  # noqa: E402
from landscape.curvature.hvp import hessian_param_names, mean_loss_hvp  # noqa: E402
from landscape.inputs.models import get_model  # noqa: E402
from landscape.job.batch import HESSIAN_CPU_BATCH, choose_hvp_batch  # noqa: E402

M = 8


def setups():
    from tiny import make_model
    torch.manual_seed(0)
    yield "tiny CNN", make_model(width=8).eval(), torch.randn(256, 3, 16, 16), torch.randint(0, 10, (256,)), 128, \
        F.cross_entropy
    yield "ResNet-20", get_model("resnet20").eval(), torch.randn(128, 3, 32, 32), torch.randint(0, 10, (128,)), 128, \
        F.cross_entropy
    try:
        import transformers
    except ImportError:
        return
    config = transformers.GPT2Config(vocab_size=50, n_positions=32, n_embd=64, n_layer=2, n_head=4, bos_token_id=0,
                                     eos_token_id=0, attn_implementation="eager")
    lm = transformers.GPT2LMHeadModel(config).eval()
    ids = torch.randint(0, 50, (64, 32))

    class Logits(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lm = lm

        def forward(self, x):
            return self.lm(input_ids=x).logits[:, :-1].reshape(-1, 50)
    yield "tiny GPT-2", Logits().eval(), ids, ids[:, 1:].reshape(-1), 32, F.cross_entropy


def variants(op):
    vectors = torch.randn(M, op.dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def kept():
        graphs = KeptGraphs(op, 10 ** 12)
        out = torch.stack([graphs(v) for v in vectors])
        graphs.close()
        return out
    return vectors, {"one by one (before)": lambda: torch.stack([op(v) for v in vectors]),
                     f"{M} per pass (blocks)": lambda: block_products(op, vectors), "kept graphs": kept}


def batch_choice(model, x, y, loss, names):
    """CPU s of one product over 512 samples at the former default (256) and at what 'auto' picks now."""
    per, copies = len(y) // len(x), -(-512 // len(x))
    x, y = torch.cat([x] * copies)[:512], torch.cat([y] * copies)[:512 * per]
    dim = sum(p.numel() for n, p in model.named_parameters() if n in names)

    def op_of(batches):
        return mean_loss_hvp(model, names, loss, batches)
    choice = choose_hvp_batch(op_of, x, y, dim, torch.device("cpu"))
    v = torch.randn(dim, dtype=torch.float64)
    out = {}
    for size in sorted({HESSIAN_CPU_BATCH, choice.size, 512}):
        op = op_of([(x[i:i + size], y[i * per:(i + size) * per]) for i in range(0, 512, size)])
        op(v)
        start = time.process_time()
        op(v)
        out[size] = time.process_time() - start
    return choice, out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(2)
    when = time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())
    print(f"# bench_fast_products ({when}), load {os.getloadavg()[0]:.1f}\n")
    print(f"| model (parameters) | CPU s per product: one by one | {M} per pass | kept graphs "
          f"| speed-up, blocks / kept |")
    print("|---|---|---|---|---|")
    for name, model, x, y, size, loss in setups():
        names = hessian_param_names(model, "all")
        per = len(y) // len(x)
        op = mean_loss_hvp(model, names, loss, [(x[i:i + size], y[i * per:(i + size) * per])
                                                for i in range(0, len(x), size)])
        vectors, fns = variants(op)
        reference = fns["one by one (before)"]()
        best = {k: float("inf") for k in fns}
        for _ in range(args.rounds):
            for key, fn in fns.items():
                start = time.process_time()
                out = fn()
                best[key] = min(best[key], (time.process_time() - start) / M)
                assert torch.allclose(out, reference, rtol=0, atol=1e-6 * reference.abs().max()), key
        base = best["one by one (before)"]
        cells = " | ".join(f"{v:.3f}" for v in best.values())
        print(f"| {name} ({op.dim:,}) | {cells} | {base / best[f'{M} per pass (blocks)']:.2f}× / "
              f"{base / best['kept graphs']:.2f}× |", flush=True)
    print("\nHVP batch over 512 samples, CPU s of one product at the former CPU default (256), at all 512 in one "
          "batch, and at auto's pick:")
    for name, model, x, y, size, loss in setups():
        if len(y) != len(x):
            continue  # the library's timer slices one target per sample; this GPT-2 wrapper has one per token
        choice, seconds = batch_choice(model, x, y, loss, hessian_param_names(model, "all"))
        cells = ", ".join(f"{seconds[size]:.2f} at {size}" for size in sorted(seconds))
        print(f"- {name}: auto picked {choice.size} ({choice.note()}); CPU s {cells}", flush=True)


if __name__ == "__main__":
    main()
