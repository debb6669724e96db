"""Cost of one Hessian-vector product of a GPT-2 under PyTorch's math attention kernel, which the HVPs use
(curvature/attention.py: the fused kernels have no second derivative), against the same model with
HuggingFace's eager attention (its own softmax(q k^T) v code), in one run on this machine.

    PYTHONPATH=lib .venv/bin/python bench/bench_attention.py
Prints a markdown table of milliseconds per HVP (the best of `ROUNDS` after a warm-up) and their ratio.
"""
import copy
import time

import torch
import transformers

from landscape.curvature.hvp import mean_loss_hvp
from landscape.space.losses import IGNORE_INDEX

ROUNDS = 5
CASES = [  # (width, layers, heads, sequence length, batch)
    (64, 2, 4, 64, 8),
    (64, 2, 4, 256, 4),
    (128, 4, 4, 128, 4),
]


def next_token_mean(outputs, ids):
    logits = outputs.logits
    return torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1),
                                             ignore_index=IGNORE_INDEX)


def best_ms(operator, dim):
    v = torch.randn(dim, generator=torch.Generator().manual_seed(0))
    operator(v)  # warm-up: allocations, kernel choice
    times = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        operator(v)
        times.append(time.perf_counter() - start)
    return 1e3 * min(times)


def main():
    torch.set_num_threads(1)
    print("| width/layers/heads | T | batch | parameters | method | math (ms) | eager (ms) | math / eager |")
    print("|---|---|---|---|---|---|---|---|")
    for width, layers, heads, seq, batch in CASES:
        torch.manual_seed(0)
        config = transformers.GPT2Config(vocab_size=64, n_positions=seq, n_embd=width, n_layer=layers, n_head=heads,
                                         bos_token_id=0, eos_token_id=0)
        sdpa = transformers.GPT2LMHeadModel(config).eval()
        eager = copy.deepcopy(sdpa)
        eager.set_attn_implementation("eager")
        ids = torch.randint(0, 64, (batch, seq), generator=torch.Generator().manual_seed(1))
        names = [n for n, _ in sdpa.named_parameters()]
        dim = sum(p.numel() for p in sdpa.parameters())
        for method in ("double_backward", "fwd_rev"):
            ms = [best_ms(mean_loss_hvp(m, names, next_token_mean, [({"input_ids": ids}, ids)], method), dim)
                  for m in (sdpa, eager)]
            print(f"| {width}/{layers}/{heads} | {seq} | {batch} | {dim:,} | {method} | {ms[0]:.1f} | {ms[1]:.1f} | "
                  f"{ms[0] / ms[1]:.2f} |")


if __name__ == "__main__":
    main()
