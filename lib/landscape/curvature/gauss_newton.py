"""The generalized Gauss–Newton matrix (GGN) and the empirical Fisher (EF) of the mean loss: products with
the same form as MeanLossHVP (flat vector -> flat vector, `.dim`, `.calls`), so every curvature quantity
(curvature/point.py) is computed for them alike (pure).

Both read the loss as a function of the model's logits z (space/model_io.logits_of; any other part of
the outputs is held at its value), with J the Jacobian of the logits in the chosen parameters and W the
total weight (samples, or predicted tokens for causal_lm):
- GGN: G = Jᵀ (∇²_z ℓ) J / W, ℓ the batch's summed loss. It is the Hessian without the term
  Σ (∂ℓ/∂z_k) ∇²z_k, which is the part that vanishes where the residuals do. G is positive
  semi-definite when ℓ is convex in the logits: cross-entropy, causal_lm, a squared error on the
  outputs. The reference's 'mse' applies a softmax first and is not convex in the logits, so its G
  can have negative eigenvalues: no positive part is taken here, G is exactly Jᵀ (∇²_z ℓ) J / W.
- EF: F = Σ_i g_i g_iᵀ / W, g_i the gradient of sample i's summed loss (for causal_lm a sample is a
  sequence, the sum over its predicted tokens). With g_i = J_iᵀ r_i, r_i = ∂ℓ/∂z_i, the product is
  F v = Jᵀ [r_i (r_i · J_i v)]_i / W: one Jacobian product each way, no per-sample gradient is stored.
  This needs what makes a per-sample gradient mean anything: sample i's logits depend on sample i
  alone (eval mode: BN uses running statistics) and the loss is a sum of per-sample terms.
Products per batch: the logits and their graph once; J v by reverse-over-reverse ('double_backward', the
double-vjp trick) or forward mode ('fwd_rev', torch.func.jvp); the loss's derivatives in the logits by
autograd on the small logits tensor (general for any loss); then Jᵀ by one backward pass.
"""
import torch
from torch.func import jvp

from ..errors import ChoiceError, CurvatureError
from ..space.model_io import call_functional, count_of, logits_of, qualified_name, with_logits
from .hvp import HVP_METHODS, MeanLossHVP, MeanLossOperator

CURVATURES = ("hessian", "ggn", "ef")


def check_logits(outputs, count, curvature, model=None):
    """The outputs hold the logits the GGN and EF are taken through; for the EF, one row per sample."""
    logits = logits_of(outputs)
    whose = f"model {qualified_name(model)}" if model is not None else "the model"
    if logits is None or not logits.is_floating_point():
        raise CurvatureError(f"curvature={curvature!r} is taken through the model's logits, but {whose} returns "
                             f"no floating logits (a tensor, .logits or ['logits']); use curvature='hessian'")
    if curvature == "ef" and (logits.ndim == 0 or len(logits) != count):
        raise CurvatureError(f"curvature='ef' needs one row of logits per sample: {whose} returns logits shaped "
                             f"{tuple(logits.shape)} for {count} samples; use curvature='hessian' or 'ggn'")


class LogitsCurvature(MeanLossOperator):
    """Shared by the GGN and the EF: Jᵀ c / W, c the cotangent a subclass makes from the logits z, J v and
    the loss in z (MeanLossOperator for the rest)."""

    def __init__(self, model, names, loss_fn, batches, method='double_backward'):
        if method not in HVP_METHODS:
            raise ChoiceError(f"unknown HVP method {method!r}; choose one of {HVP_METHODS}")
        super().__init__(model, names, loss_fn, batches)
        self.method = method

    def _batch_product(self, current, tangent, inputs, targets):
        named, rest = self._split(current)
        leaves = {n: p.detach().requires_grad_() for n, p in named.items()}
        with torch.enable_grad():
            outputs = call_functional(self.model, {**rest, **leaves}, inputs)
            check_logits(outputs, count_of(inputs), self.kind, self.model)
            logits = logits_of(outputs)
            jv = self._jacobian_product(logits, leaves, tangent, rest, inputs)
            cotangent, weight = self._cotangent(outputs, logits.detach(), jv, targets, inputs)
            back = torch.autograd.grad(logits, list(leaves.values()), cotangent, allow_unused=True,
                                       materialize_grads=True)
        return dict(zip(leaves, back)), torch.as_tensor(weight).detach()

    def _jacobian_product(self, logits, leaves, tangent, rest, inputs):
        """J v, the change of the logits along v."""
        if self.method == 'fwd_rev':
            named = {n: p.detach() for n, p in leaves.items()}
            return jvp(lambda p: logits_of(call_functional(self.model, {**rest, **p}, inputs)), (named,),
                       (tangent,))[1]
        # double-vjp: Jᵀu is linear in u, so the gradient of (Jᵀu)·v in u is J v
        probe = torch.zeros_like(logits, requires_grad=True)
        pulled = torch.autograd.grad(logits, list(leaves.values()), probe, create_graph=True, allow_unused=True)
        pairs = [(g, tangent[n]) for g, n in zip(pulled, leaves) if g is not None and g.requires_grad]
        if not pairs:  # the logits do not depend on these parameters
            return torch.zeros_like(logits)
        return torch.autograd.grad([g for g, _ in pairs], probe, [t for _, t in pairs], retain_graph=True,
                                   materialize_grads=True)[0]

    def _loss_in_logits(self, outputs, z, targets, inputs):
        """(summed loss, weight) of the batch as a function of its logits z (a leaf)."""
        return self.loss_fn(with_logits(outputs, z), targets, inputs)


class MeanLossGGN(LogitsCurvature):
    """The map v -> G v, G = Jᵀ (∇²_z ℓ) J / W the generalized Gauss–Newton matrix of the mean loss."""
    kind = "ggn"

    def _cotangent(self, outputs, logits, jv, targets, inputs):
        z = logits.requires_grad_()
        total, weight = self._loss_in_logits(outputs, z, targets, inputs)
        (slope,) = torch.autograd.grad(total, z, create_graph=True)
        if not slope.requires_grad:  # a loss linear in the logits: no curvature there
            return torch.zeros_like(z), weight
        return torch.autograd.grad(slope, z, jv, materialize_grads=True)[0], weight


class MeanLossEF(LogitsCurvature):
    """The map v -> F v, F = Σ_i g_i g_iᵀ / W the empirical Fisher of the mean loss (per-sample gradients)."""
    kind = "ef"

    def _cotangent(self, outputs, logits, jv, targets, inputs):
        z = logits.requires_grad_()
        total, weight = self._loss_in_logits(outputs, z, targets, inputs)
        (slope,) = torch.autograd.grad(total, z, materialize_grads=True)  # row i: ∂ℓ/∂z_i = r_i
        along = (slope * jv).flatten(1).sum(1)  # r_i · J_i v = g_i · v, per sample
        return slope * along.view(-1, *([1] * (slope.ndim - 1))), weight


def curvature_operator(curvature, model, names, loss_fn, batches, method='double_backward'):
    """The product operator of `curvature` (one of CURVATURES) of the mean loss over the parameters `names`."""
    kinds = {"hessian": MeanLossHVP, "ggn": MeanLossGGN, "ef": MeanLossEF}
    if curvature not in kinds:
        raise CurvatureError(f"curvature={curvature!r} is not one of {', '.join(CURVATURES)}")
    return kinds[curvature](model, names, loss_fn, batches, method)
