"""Products of the Hessian with several vectors in one pass over the batches (pure): the trace's and the
density's probes are independent, so their products can share work.

A double-backward HVP of one batch runs the forward pass and the backward pass that builds the gradient's
graph, then differentiates g·v through that graph. For m vectors, block_products builds each batch's
graph once and differentiates it m times (autograd.grad with retain_graph): the forward and first
backward, a quarter of a product's wall time and half its CPU seconds on ResNet-20 (2 threads), are paid
once per batch instead of m times, and the memory is one batch's graph, as for one product. Each vector's
product is computed by the same operations on the same graph as a single product, so it equals it
(bitwise in our runs; tests/test_fast_products.py checks fp32 rounding). Batching the m second backward
passes themselves (is_grads_batched, a vmap over them) measured slower on the CPU (docs/BENCHMARKS.md),
so it is not used.

KeptGraphs goes further within one point, as PyHessian does for a single batch: each batch's gradient graph
is built once and differentiated by every product at that point (the Lanczos steps too), while the graphs
fit in the memory budget it is given; the batches beyond it are rebuilt per product as before.

Any other operator (a fwd_rev HVP, another curvature, a plain function) gets its products one at a time.
"""
import torch

from ..space.model_io import to_device
from .attention import exact_attention
from .hvp import MeanLossHVP, differentiate, gradient_graph

BLOCK = 8  # probes per pass: most of the gain (1 - 1/m of the shared part) at a few vectors of memory each


def block_products(op, vectors):
    """(m, dim) -> (m, dim): op applied to each row; one pass over op's batches where op is a double-backward
    MeanLossHVP (op.method) or has its own block(), else one call per row. op.calls grows by m either way."""
    vectors = torch.as_tensor(vectors)
    if hasattr(op, "block"):
        return op.block(vectors)
    if not shares_gradient_graphs(op) or len(vectors) == 1:
        return torch.stack([op(v) for v in vectors])
    if vectors.ndim != 2 or vectors.shape[1] != op.dim:
        raise ValueError(f"HVP vectors have shape {tuple(vectors.shape)}, expected (m, {op.dim})")
    current = {n: p.detach() for n, p in op.model.named_parameters()}
    ref = current[op.names[0]]
    tangents = _tangents(op, vectors, ref)
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


def shares_gradient_graphs(op):
    """Whether op's products differentiate one gradient graph per batch (a double-backward Hessian), so that
    several vectors may share it: not a fwd_rev HVP, nor a GGN or Fisher operator (which has a method too)."""
    return isinstance(op, MeanLossHVP) and op.method == "double_backward"


def _tangents(op, vectors, ref):
    return [op.tangent(v, ref) for v in vectors]


def _batch_block(op, current, tangents, inputs, targets):
    """([{name: H_batch t} for t in tangents], weight): one gradient graph, differentiated once per tangent."""
    graph = gradient_graph(op, current, inputs, targets)
    return differentiate(graph, tangents, keep=False), graph[2]


class KeptGraphs:
    """The products of a double-backward MeanLossHVP at its current point, each batch's gradient graph built at
    the first product and kept for the later ones, in batch order while the bytes its saved tensors hold
    (counted as autograd saves them) stay within `budget`; the others are rebuilt per product. Each product
    is the same operations on the same graphs as op's own, so it equals op(v). The parameters must not move
    while it is open: point_curvature holds one for one point, then close() frees the graphs. `kept`: how
    many batches' graphs are kept; `kept_bytes`: what they hold."""

    method = None  # block_products uses block()

    def __init__(self, op, budget):
        self.op, self.dim, self.budget = op, op.dim, budget
        self.graphs, self.kept_bytes, self.full, self.calls = {}, 0, budget <= 0, 0
        self.current = {n: p.detach() for n, p in op.model.named_parameters()}
        self.shared = {t.untyped_storage().data_ptr() for t in [*op.model.parameters(), *op.model.buffers()]}

    @property
    def kept(self):
        return len(self.graphs)

    def __call__(self, v):
        if v.shape != (self.dim,):
            raise ValueError(f"HVP vector has shape {tuple(v.shape)}, expected ({self.dim},)")
        return self.block(v.unsqueeze(0))[0]

    def block(self, vectors):
        op, ref = self.op, self.current[self.op.names[0]]
        tangents = _tangents(op, vectors, ref)
        total = torch.zeros(len(vectors), op.dim, dtype=ref.dtype, device=ref.device)
        count = 0
        with torch.no_grad(), exact_attention():
            for index, (inputs, targets) in enumerate(op.batches):
                graph = self.graphs.get(index) or self._build(index, to_device(inputs, ref.device),
                                                              targets.to(ref.device))
                for row, hv in zip(total, differentiate(graph, tangents, keep=index in self.graphs)):
                    row += torch.cat([hv[n].reshape(-1) for n in op.names])
                count += graph[2]
        if count == 0:
            return torch.stack([op(v) for v in vectors])  # op raises its own error for empty data
        self.calls += len(vectors)
        op.calls += len(vectors)
        return (total / count).to(vectors.device, vectors.dtype)

    def _build(self, index, inputs, targets):
        saved = {}

        def pack(tensor):  # the model's own tensors (a flat buffer's views too) are there anyway
            storage = tensor.untyped_storage()
            if storage.data_ptr() not in self.shared:
                saved[storage.data_ptr()] = storage.nbytes()
            return tensor
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            graph = gradient_graph(self.op, self.current, inputs, targets)
        size = sum(saved.values())
        if not self.full and self.kept_bytes + size <= self.budget:
            self.graphs[index], self.kept_bytes = graph, self.kept_bytes + size
        else:
            self.full = True  # later batches are not kept either: the kept ones stay a prefix
        return graph

    def close(self):
        self.graphs.clear()
