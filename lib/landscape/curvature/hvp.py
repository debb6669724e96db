"""Hessian-vector products of the mean training loss at one point (pure; Lanczos is in lanczos.py).

Two differences from the reference code (tomgoldstein/loss-landscape, hess_vec_prod.py):
- The operator is the Hessian of the MEAN loss over all samples. The reference sums the
  HVPs of per-batch mean losses, so its eigenvalues are about (number of batches) too large
  and change with the batch size.
- Both extremes come from ONE Lanczos run with full reorthogonalization (lanczos.py). The
  reference runs ARPACK twice (lambda_max, then the 0.51*lambda_max-shifted operator for
  lambda_min); Krylov spaces are shift invariant, so the second run rebuilds a space the first had.
"""
import torch
from torch.func import grad, jvp

from ..errors import ChoiceError, DataError
from ..space.groups import entry_group
from ..space.losses import from_mean
from ..space.model_io import call_functional, to_device
from .attention import exact_attention

PARAM_SUBSETS = ('reference', 'all')
HVP_METHODS = ('double_backward', 'fwd_rev')


def hessian_param_names(model, which='reference'):
    """Names of the parameters the Hessian is taken over, in model.named_parameters() order.

    'reference': those with more than one dimension (weights of conv/linear layers), as the
    reference code does; 'all': every parameter, biases and BN affine included; a list or tuple of
    glob patterns (e.g. ['transformer.h.*.attn.*']): exactly the parameters whose names match
    (space/groups.py; a pattern matching none is refused). A tied weight is one parameter.
    """
    if isinstance(which, (list, tuple)):
        return entry_group(model, which, "weights")
    if which not in PARAM_SUBSETS:
        raise ValueError(f"unknown Hessian parameter subset {which!r}; choose one of {PARAM_SUBSETS}")
    return [name for name, p in model.named_parameters() if which == 'all' or p.ndim > 1]


def checked_parameters(model, names, what):
    """{name: parameter} of the model, once `names` is known to be a non-empty list of its parameters."""
    params = dict(model.named_parameters())
    missing = [n for n in names if n not in params]
    if missing or not names:
        raise ChoiceError(f"{what} parameter names must be a non-empty list of model parameters; "
                          f"got {list(names)}, unknown: {missing}")
    return params

class MeanLossOperator:
    """The map v -> A v, A a curvature matrix of the mean loss over all samples of `batches` (a subclass's
    _batch_product gives one batch's product for its summed loss: the Hessian here, the GGN and the
    empirical Fisher in gauss_newton.py).

    v is a flat 1-D vector over the named parameters, concatenated in the order of `names`.
    `loss_fn(outputs, targets, inputs)` gives a batch's summed loss and its weight (space/losses.py: its
    samples, or its predicted tokens); the products of the batch sums, added and divided by the total weight,
    are the product of the mean over every sample (token) of all batches. Other parameters and the buffers are
    held at the model's current values, which are read at every call. The model is put in eval mode
    (BN uses running statistics), as the reference does. `calls` counts the products.
    """

    def __init__(self, model, names, loss_fn, batches):
        params = checked_parameters(model, names, "Hessian")
        model.eval()
        self.model, self.names, self.loss_fn, self.batches = model, list(names), loss_fn, batches
        self.shapes = [params[n].shape for n in self.names]
        self.numels = [params[n].numel() for n in self.names]
        self.dim = sum(self.numels)
        self.calls = 0

    def __call__(self, v):
        if v.shape != (self.dim,):
            raise ValueError(f"HVP vector has shape {tuple(v.shape)}, expected ({self.dim},)")
        current = {n: p.detach() for n, p in self.model.named_parameters()}
        ref = current[self.names[0]]
        tangent = self.tangent(v, ref)
        total = torch.zeros(self.dim, dtype=ref.dtype, device=ref.device)
        count = 0
        with torch.no_grad(), exact_attention():  # no outer graph (transforms build their own); see attention.py
            for inputs, targets in self.batches:
                inputs, targets = to_device(inputs, ref.device), targets.to(ref.device)
                hv, weight = self._batch_product(current, tangent, inputs, targets)
                total += torch.cat([hv[n].reshape(-1) for n in self.names])
                count += weight
        if count == 0:
            raise DataError("the batches for the Hessian hold no samples: give it a non-empty data set")
        self.calls += 1
        return (total / count).to(v.device, v.dtype)

    def tangent(self, v, ref):
        """The flat vector v as {name: tensor shaped like the parameter}, in ref's device and dtype."""
        parts = v.to(ref.device, ref.dtype).split(self.numels)
        return dict(zip(self.names, (t.view(s) for t, s in zip(parts, self.shapes))))

    def _batch_product(self, current, tangent, inputs, targets):
        """({name: the batch's product}, the batch's weight) for the parameters at `current`."""
        raise NotImplementedError

    def _loss(self, named, rest, inputs, targets):
        """(summed loss, weight) of one batch with the parameters `named` (the rest held)."""
        total, weight = self.loss_fn(call_functional(self.model, {**rest, **named}, inputs), targets, inputs)
        return total, torch.as_tensor(weight).detach()

    def _split(self, current):
        named = {n: current[n] for n in self.names}
        rest = {n: p for n, p in current.items() if n not in named}
        return named, rest


class MeanLossHVP(MeanLossOperator):
    """The map v -> H v, H the Hessian of the mean loss over all samples of `batches` (MeanLossOperator)."""

    def __init__(self, model, names, loss_fn, batches, method='double_backward'):
        if method not in HVP_METHODS:
            raise ChoiceError(f"unknown HVP method {method!r}; choose one of {HVP_METHODS}")
        super().__init__(model, names, loss_fn, batches)
        self.method = method  # blocks.py reuses a double backward's gradient graph for several vectors
        self._batch_product = self._hvp_double_backward if method == 'double_backward' else self._hvp_fwd_rev

    def _hvp_fwd_rev(self, current, tangent, inputs, targets):
        named, rest = self._split(current)
        grad_fn = grad(lambda p: self._loss(p, rest, inputs, targets), has_aux=True)
        _, hv, weight = jvp(grad_fn, (named,), (tangent,), has_aux=True)
        return hv, weight

    def _hvp_double_backward(self, current, tangent, inputs, targets):
        graph = gradient_graph(self, current, inputs, targets)
        return differentiate(graph, [tangent], keep=False)[0], graph[2]


def gradient_graph(op, current, inputs, targets):
    """(leaves, the batch's gradient with its graph, weight): the first half of a double-backward HVP, which
    blocks.py builds once and differentiates for several vectors."""
    named, rest = op._split(current)
    leaves = {n: p.detach().requires_grad_() for n, p in named.items()}
    with torch.enable_grad():
        loss, weight = op._loss(leaves, rest, inputs, targets)
        grads = torch.autograd.grad(loss, list(leaves.values()), create_graph=True, materialize_grads=True)
    return leaves, grads, weight


def differentiate(graph, tangents, keep):
    """[{name: H_batch t} for t in tangents] from one gradient graph; keep: leave the graph for later products."""
    leaves, grads, _ = graph
    out = []
    with torch.enable_grad():
        for i, tangent in enumerate(tangents):
            dot = sum((g * tangent[n]).sum() for g, n in zip(grads, leaves))
            hv = torch.autograd.grad(dot, list(leaves.values()), materialize_grads=True,
                                     retain_graph=keep or i < len(tangents) - 1)
            out.append(dict(zip(leaves, hv)))
    return out


def mean_loss_hvp(model, names, loss_fn, batches, method='double_backward'):
    """HVP operator of the mean loss over all samples, for a batch-mean loss_fn(outputs, targets)
    (F.cross_entropy); see MeanLossHVP, which takes the engine's weighted form (space/losses.py).

    `batches` must be re-iterable (a list of (inputs, targets) or a DataLoader): every product
    passes over all of it. 'double_backward' (autograd grad of g.v) and 'fwd_rev' (torch.func
    jvp of grad) give the same products; double_backward measured faster on CPU, and fwd_rev
    pays seconds of one-off set-up on its first call (docs/bench_hessian.md).
    """
    return MeanLossHVP(model, names, from_mean(loss_fn), batches, method)
