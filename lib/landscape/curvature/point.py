"""Every curvature quantity at one point from shared Hessian-vector products (pure).

Order of work, each step reusing what the earlier ones paid for:
1. lanczos_extremes: λmin, λmax (its Krylov run is kept, and every product it made);
2. density (SLQ): the extremes' run is the first probe, continued to the probe length if it
   stopped earlier; the other probes are fresh runs; all advance in step, one block product per step;
3. trace: Hutchinson probes on the complement of the first probe's Krylov space, whose part of the
   trace is exact from the recorded products (trace.deflated_hutchinson); the same probes give
   every layer's block trace; blocks.BLOCK probes per block product;
4. layers: each layer's diagonal block has its own operator and Lanczos run (λmin, λmax).
The products each quantity spent beyond the shared ones are counted separately. Within the point the
batches' gradient graphs can be kept between products, memory allowing (blocks.KeptGraphs).
"""
import math
from dataclasses import dataclass

import numpy as np
import torch

from .blocks import BLOCK, KeptGraphs, block_products, shares_gradient_graphs
from .density import form_next, negative_mass, slq
from .lanczos import lanczos_extremes
from .trace import deflated_hutchinson


class NonFiniteProduct(ArithmeticError):
    """A Hessian-vector product held NaN or inf: the loss is not finite at this point."""


@dataclass(frozen=True)
class CurvaturePlan:
    tol: float
    max_iter: int
    seed: int
    trace_samples: int = None  # None: no trace
    density_probes: int = None  # None: no density
    density_steps: int = None
    layers: tuple = ()  # layer_blocks(): (name, start, stop, parameter names); operators come separately

    def density_width(self, dim):
        return self.density_probes * min(self.density_steps, dim)


TRACE_SEED_OFFSET = 1_000_003  # the trace's probes never coincide with the Lanczos start vectors


class Recorded:
    """The operator, refusing non-finite products and keeping a copy of each one (float64) with
    the vector it was applied to, so a Lanczos basis vector finds its product (products_for)."""

    def __init__(self, matvec, keep=True):
        self.matvec, self.keep, self.products, self.inputs = matvec, keep, [], []
        self.extra = 0  # products that products_for had to make

    def __call__(self, v):
        out = self.matvec(v)
        if not bool(torch.isfinite(out).all()):
            raise NonFiniteProduct("a Hessian-vector product is not finite")
        if self.keep:
            self.inputs.append(v)
            self.products.append(out.detach().to(torch.float64).clone())
        return out

    def block(self, vectors):
        """The products of the rows of `vectors` (m, dim), in one pass where the operator allows
        (blocks.block_products); refused if not finite, never kept."""
        out = block_products(self.matvec, vectors)
        if not bool(torch.isfinite(out).all()):
            raise NonFiniteProduct("a Hessian-vector product is not finite")
        return out

    def record(self, v, product):
        """Keep a product made elsewhere (a block's row) as if this operator had made it."""
        if self.keep:
            self.inputs.append(v)
            self.products.append(product.detach().to(torch.float64).clone())

    def products_for(self, vectors):
        """The recorded product of each vector (the Lanczos run passes its basis tensors themselves);
        one not applied yet is applied now and counted in `extra`."""
        out = []
        for v in vectors:
            found = next((p for inp, p in zip(self.inputs, self.products) if inp is v), None)
            if found is None:
                self.extra += 1
                found = self(v)
            out.append(found)
        return out


def _extremes(matvec, dim, plan, device, dtype=torch.float64):
    return lanczos_extremes(matvec, dim, tol=plan.tol, max_iter=plan.max_iter, seed=plan.seed, device=device,
                            dtype=dtype)


def _density(values, op, dim, plan, state, device):
    """The extremes' run, continued, is the first probe; all probes advance in step, one block product each step
    (its continuation's products are kept for the trace)."""
    form_next(state, op.products_for(state.basis[state.steps - 1:state.steps])[0])
    nodes, weights, spent = slq(op.matvec, dim, plan.density_probes, plan.density_steps, seed=plan.seed, first=state,
                                device=device, block_matvec=op.block, record_first=op.record)
    values["esd_nodes"], values["esd_weights"] = nodes, weights
    values["neg_mass"], values["neg_share"] = negative_mass(nodes, weights, plan.tol * np.abs(nodes).max())
    values["hvps_density"] = spent + op.extra


def _trace(values, op, dim, plan, state, device):
    basis = state.basis[:state.steps]
    before = op.extra
    products = op.products_for(basis)
    est = deflated_hutchinson(op.matvec, dim, plan.trace_samples, basis=basis, products=products,
                              groups=[(a, b) for _, a, b, _ in plan.layers], seed=plan.seed + TRACE_SEED_OFFSET,
                              device=device, block_matvec=Recorded(op.matvec, keep=False).block, per_pass=BLOCK)
    values["trace"], values["trace_err"] = est.trace, est.err
    values["hvps_trace"] = est.hvps + op.extra - before
    if plan.layers:
        values["layer_trace"], values["layer_trace_err"] = np.array(est.group_trace), np.array(est.group_err)


def _layers(values, layer_ops, plan, device):
    runs = [_extremes(Recorded(op, keep=False), op.dim, plan, device) for op in layer_ops]
    values["layer_max_eig"] = np.array([r.lam_max for r in runs])
    values["layer_min_eig"] = np.array([r.lam_min for r in runs])
    values["hvps_layers"] = sum(r.hvps for r in runs)


def point_curvature(hvp, dim, plan, layer_ops=(), device="cpu", dtype=torch.float64, keep_bytes=0):
    """{quantity: value} at the operator's current point; see curvature_shapes for the names.

    A non-finite product (a NaN or infinite loss) gives NaN for every quantity: a result, not an error;
    eig_converged is then False (no eigenvalue was found). keep_bytes: memory the point may keep the
    batches' gradient graphs in between products (blocks.KeptGraphs; a double-backward MeanLossHVP only,
    same numbers), freed when the point is done; 0: every product rebuilds them.
    """
    kept = KeptGraphs(hvp, keep_bytes) if keep_bytes > 0 and shares_gradient_graphs(hvp) else None
    try:
        return _point_curvature(kept or hvp, dim, plan, layer_ops, device, dtype)
    except NonFiniteProduct:
        values = {name: np.full(shape, np.nan) if shape else math.nan
                  for name, shape in curvature_shapes(plan, dim).items()}
        return dict(values, eig_converged=False)
    finally:
        if kept is not None:
            kept.close()


def _point_curvature(hvp, dim, plan, layer_ops, device, dtype):
    """dtype and device hold the extremes' Lanczos basis (the driver's memory plan); the rest is float64."""
    op = Recorded(hvp, keep=bool(plan.density_probes or plan.trace_samples))
    r = _extremes(op, dim, plan, device, dtype)
    # eig_converged: the extremes' own stopping rule was met (lanczos_extremes), not the step limit
    values = dict(max_eig=r.lam_max, min_eig=r.lam_min, eig_iters=r.iters, eig_res_max=r.res_max,
                  eig_res_min=r.res_min, eig_converged=bool(r.converged))
    state = r.krylov
    if plan.density_probes:
        _density(values, op, dim, plan, state, device)
    if plan.trace_samples:
        _trace(values, op, dim, plan, state, device)
    if plan.layers:
        _layers(values, layer_ops, plan, device)
    return values


def curvature_shapes(plan, dim):
    """Name -> trailing shape (() for one number per point) of every quantity the plan yields."""
    shapes = dict.fromkeys(("max_eig", "min_eig", "eig_iters", "eig_res_max", "eig_res_min", "eig_converged"), ())
    if plan.density_probes:
        width = (plan.density_width(dim),)
        shapes.update(esd_nodes=width, esd_weights=width, neg_mass=(), neg_share=(), hvps_density=())
    if plan.trace_samples:
        shapes.update(trace=(), trace_err=(), hvps_trace=())
    if plan.layers:
        per_layer = (len(plan.layers),)
        shapes.update(layer_max_eig=per_layer, layer_min_eig=per_layer, layer_trace=per_layer,
                      layer_trace_err=per_layer, hvps_layers=())
    return shapes


def layer_blocks(names, numels):
    """(layer, start, stop, parameter names) per layer: consecutive parameters sharing a module
    prefix ('a.b.weight' -> 'a.b'); start:stop are their coordinates in the flat vector."""
    blocks, start = [], 0
    for name, size in zip(names, numels):
        layer = name.rsplit(".", 1)[0] if "." in name else name
        if blocks and blocks[-1][0] == layer:
            blocks[-1] = (layer, blocks[-1][1], start + size, blocks[-1][3] + (name,))
        else:
            blocks.append((layer, start, start + size, (name,)))
        start += size
    return tuple(blocks)
