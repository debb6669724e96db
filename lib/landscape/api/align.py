"""landscape.align: permute a model's hidden units to match another's (Git Re-Basin, Ainsworth et al. 2023).

    import landscape
    aligned = landscape.align(model_a, model_b)       # weight matching, no data needed
    aligned.model                                     # a copy of model_b, same function, units reordered
    aligned.permutations["fc1"]                       # copy's unit i is model_b's unit p[i]

Two networks trained from different seeds compute alike with their hidden units in different orders; the
straight line between them then crosses a loss barrier that is partly an artifact of that order. Reordering
b's units (which leaves b's function unchanged) to sit where a's most alike units sit removes that part.
The permutation structure (which units move together: a residual stream is one group) is derived by
tracing the model with torch.fx (space/permutation_trace.py); a model it cannot follow is refused.
"""
import copy
from dataclasses import dataclass

import torch

from ..errors import AlignmentError, ChoiceError, DataError
from ..inputs.first_batch import check_data, check_model
from ..inputs.user import is_pair
from ..space.activation_matching import CrossMoments, match_correlations, unit_samples
from ..space.evaluate import tensor_batches
from ..space.model_io import call_model, to_device
from ..space.permutation_spec import apply_permutations
from ..space.permutation_trace import permutation_spec
from ..space.weight_matching import weight_matching

METHODS = ("weights", "activations")
PAIR_BATCH = 256  # samples per forward pass when activations are matched on a pair of tensors


@dataclass(frozen=True)
class Alignment:
    """What align returns. model: a copy of model_b with its hidden units reordered (it computes what
    model_b computes). permutations: {group: LongTensor p}, the copy's unit i is model_b's unit p[i]; a
    group is named after the first layer that produces its units (a residual stream after its first
    conv). objective: weight matching's <θ_a, π(θ_b)>, or activation matching's summed correlation of
    the paired units. rounds and converged: weight matching's coordinate-ascent rounds, and whether the
    last changed nothing (activation matching: 1 and True)."""
    model: torch.nn.Module
    permutations: dict
    method: str
    objective: float
    rounds: int
    converged: bool


def _check_same_architecture(model_a, model_b):
    state_a, state_b = model_a.state_dict(), model_b.state_dict()
    for name in list(state_a) + [n for n in state_b if n not in state_a]:
        shape_a = tuple(state_a[name].shape) if name in state_a else "missing"
        shape_b = tuple(state_b[name].shape) if name in state_b else "missing"
        if shape_a != shape_b:
            raise AlignmentError(f"model_b is not model_a's architecture: {name!r} is {shape_a} in model_a and "
                                 f"{shape_b} in model_b")


def _spec_of_pair(model_a, model_b):
    spec = permutation_spec(model_b)
    if permutation_spec(model_a) != spec:
        raise AlignmentError("model_a and model_b hold the same tensors but are wired differently (their traced "
                             "hidden units differ): align needs one architecture")
    return spec


def _check_options(method, data, max_iter):
    if method not in METHODS:
        raise ChoiceError(f"method={method!r} is not one of {', '.join(METHODS)}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ChoiceError(f"max_iter={max_iter!r}: give a positive whole number of rounds")
    if method == "weights" and data is not None:
        raise DataError("data is used by method='activations' only; weight matching needs none")
    if method == "activations":
        if data is None:
            raise DataError("method='activations' matches units on data: give data=(inputs, targets) or batches")
        check_data(data)


def _floating_parameters(model):
    return {name: p for name, p in model.named_parameters() if p.is_floating_point()}


def _batches(data):
    return tensor_batches(*data, PAIR_BATCH) if is_pair(data) else data


class _Recorder:
    """Forward hooks that keep the last output of each producing layer of a model."""

    def __init__(self, model, names):
        self.outputs, self.handles = {}, []
        for name in names:
            module = model.get_submodule(name)
            self.handles.append(module.register_forward_hook(self._keeper(name, module)))

    def _keeper(self, name, module):
        def keep(_, __, output):
            self.outputs[name] = unit_samples(output, module)
        return keep

    def remove(self):
        for handle in self.handles:
            handle.remove()


@torch.no_grad()
def _correlations(model_a, model_b, spec, data):
    """{group: summed correlation matrix over the group's producing layers}, both models in eval mode."""
    producers = [name for names in spec.producers.values() for name in names]
    moments = {name: CrossMoments() for name in producers}
    modes = (model_a.training, model_b.training)
    recorders = (_Recorder(model_a, producers), _Recorder(model_b, producers))
    try:
        model_a.eval()
        model_b.eval()
        for batch in _batches(data):
            inputs = batch[0]
            for model, recorder in zip((model_a, model_b), recorders):
                device = next(model.parameters()).device
                call_model(model, to_device(inputs, device))
            for name in producers:
                moments[name].add(recorders[0].outputs[name], recorders[1].outputs[name])
    finally:
        for recorder in recorders:
            recorder.remove()
        model_a.train(modes[0])
        model_b.train(modes[1])
    return {group: sum(moments[name].correlation() for name in names) for group, names in spec.producers.items()}


def align(model_a, model_b, method="weights", data=None, max_iter=100, seed=0):
    """A copy of model_b with its hidden units permuted to match model_a's, as an Alignment (.model,
    .permutations). Neither model is changed.

    method='weights' (default): weight matching, coordinate ascent of <θ_a, π(θ_b)> over the groups in a
    seeded random order each round, one linear assignment per step, until a round changes nothing or
    max_iter rounds. method='activations': each group matched by the correlation of its units'
    activations on `data` ((inputs, targets) tensors or batches; the targets are not used), both models
    in eval mode. Supported: Linear, Conv1d/2d/3d, BatchNorm, elementwise activations, dropout, pooling,
    flatten(1), residual sums (MLPs, VGGs, the zoo's ResNets and models built like them). Attention, layer
    norm, concatenation, other reshapes and shared weights are refused (AlignmentError, naming the op),
    as is a model_b of another architecture than model_a's.
    """
    _check_options(method, data, max_iter)
    check_model(model_a)
    check_model(model_b)
    _check_same_architecture(model_a, model_b)
    spec = _spec_of_pair(model_a, model_b)
    if method == "weights":
        found = weight_matching(spec, _floating_parameters(model_a), _floating_parameters(model_b),
                                max_iter=max_iter, seed=seed)
        perms, objective, rounds, converged = found.permutations, found.objective, found.rounds, found.converged
    else:
        perms, objective = match_correlations(_correlations(model_a, model_b, spec, data))
        rounds, converged = 1, True
    aligned = copy.deepcopy(model_b)
    aligned.load_state_dict(apply_permutations(model_b.state_dict(), spec, perms))
    return Alignment(aligned, perms, method, objective, rounds, converged)
