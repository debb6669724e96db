"""Products of the Hessian with several vectors in one pass over the batches (pure): the trace's and the
density's probes are independent, so their products can share work.

A double-backward HVP of one batch runs the forward pass and the backward pass that builds the gradient's
graph, then differentiates g·v through that graph. For m vectors, block_products builds each batch's
graph once and differentiates it m times (autograd.grad with retain_graph): the forward and first
backward, about a quarter of a product on ResNet-20, are paid once per batch instead of m times, and
the memory is one batch's graph, as for one product. Each vector's product is computed by the same
operations on the same graph as a single product, so it equals it to the last bit (tests/test_fast_products.py).
Batching the m second backward passes themselves (is_grads_batched, a vmap over them) measured slower on
the CPU (docs/BENCHMARKS.md), so it is not used.

Any other operator (a fwd_rev HVP, another curvature, a plain function) gets its products one at a time.
"""
import torch

from ..space.model_io import to_device
from .attention import exact_attention
from .hvp import MeanLossHVP

BLOCK = 8  # probes per pass: most of the gain (1 - 1/m of the shared part) at a few vectors of memory each


def block_products(op, vectors):
    """(m, dim) -> (m, dim): op applied to each row; one pass over op's batches where op is a double-backward
    MeanLossHVP (op.method), else one call per row. op.calls grows by m either way."""
    vectors = torch.as_tensor(vectors)
    if not (isinstance(op, MeanLossHVP) and op.method == "double_backward") or len(vectors) == 1:  # not a GGN
        return torch.stack([op(v) for v in vectors])
    if vectors.ndim != 2 or vectors.shape[1] != op.dim:
        raise ValueError(f"HVP vectors have shape {tuple(vectors.shape)}, expected (m, {op.dim})")
    current = {n: p.detach() for n, p in op.model.named_parameters()}
    ref = current[op.names[0]]
    tangents = [dict(zip(op.names, (t.view(s) for t, s in zip(v.to(ref.device, ref.dtype).split(op.numels),
                                                                  op.shapes)))) for v in vectors]
    total = torch.zeros(len(vectors), op.dim, dtype=ref.dtype, device=ref.device)
    count = 0
    with torch.no_grad(), exact_attention():
        for inputs, targets in op.batches:
            inputs, targets = to_device(inputs, ref.device), targets.to(ref.device)
            products, weight = _batch_block(op, current, tangents, inputs, targets)
            for row, hv in zip(total, products):
                row += torch.cat([hv[n].reshape(-1) for n in op.names])
            count += weight
    if count == 0:
        return torch.stack([op(v) for v in vectors])  # op raises its own error for empty data
    op.calls += len(vectors)
    return (total / count).to(vectors.device, vectors.dtype)


def _batch_block(op, current, tangents, inputs, targets):
    """([{name: H_batch t} for t in tangents], weight): one gradient graph, differentiated once per tangent."""
    named, rest = op._split(current)
    leaves = {n: p.detach().requires_grad_() for n, p in named.items()}
    out = []
    with torch.enable_grad():
        loss, weight = op._loss(leaves, rest, inputs, targets)
        grads = torch.autograd.grad(loss, list(leaves.values()), create_graph=True, materialize_grads=True)
        for i, tangent in enumerate(tangents):
            dot = sum((g * tangent[n]).sum() for g, n in zip(grads, leaves))
            hv = torch.autograd.grad(dot, list(leaves.values()), materialize_grads=True,
                                     retain_graph=i < len(tangents) - 1)
            out.append(dict(zip(leaves, hv)))
    return out, weight
