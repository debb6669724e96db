"""The permutation structure of a model, derived by tracing its forward pass with torch.fx (pure).

Every Linear or Conv output starts a group of hidden units. The tracer follows each group from the layer
that produces it through elementwise ops, BatchNorm, pooling and flatten to the layers that read it (their
input columns). An elementwise sum or product of two hidden values makes their groups one permutation:
that is how a residual stream becomes one group across the blocks its identity shortcuts join, while a
1x1-conv shortcut produces units of its own that its block's sum then joins to the block's last conv.

A group is *fixed* (never permuted) where its units reach the model's outputs, directly or through
parameter-free ops (the last layer's units are the outputs, log_softmax or not), or meet, in a sum or
product, a tensor that carries no permutation (the input, a parameter used directly). A group that is not
fixed may only pass through ops the tracer knows: one it does not know (attention, a layer norm,
concatenation, another reshape) makes align refuse the model, naming the op. What such an op computes is
*opaque*: a group summed with it stays put where the groups it came from do. Weight sharing (a module
called twice, a parameter under two names) is refused too.

Assumed, as the zoo's models and most others do: conv and pooling inputs carry a batch dimension, and a
Linear output of unknown rank that meets a channel-wise layer (BatchNorm1d, flatten) is (batch, units).
"""
import torch
import torch.nn as nn

from ..errors import AlignmentError
from .model_io import qualified_name
from .permutation_groups import Groups, Hidden, Opaque, channel_ndim, compatible, on_last_axis
from .permutation_ops import (
    BINARY_FUNCTIONS,
    BINARY_METHODS,
    ELEMENTWISE_FUNCTIONS,
    ELEMENTWISE_METHODS,
    ELEMENTWISE_MODULES,
    MEAN_OPS,
    METADATA_ATTRIBUTES,
    METADATA_METHODS,
    POOL_FUNCTIONS,
    POOL_MODULES,
    flatten_start,
    function_reason,
    module_reason,
    op_name,
    reduced_dims,
)
from .permutation_spec import PermutationSpec, PermutedAxis


def _trace(model):
    try:
        return torch.fx.symbolic_trace(model)
    except Exception as err:  # fx raises many kinds (TraceError, TypeError, ...) for code it cannot follow
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise AlignmentError(f"cannot trace {qualified_name(model)} with torch.fx to find its hidden units: "
                             f"{first}") from None


def check_no_weight_sharing(model, graph_module):
    """Refuse a parameter held under two names, or a module with parameters called more than once."""
    seen = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        if id(param) in seen:
            raise AlignmentError(f"'{name}' is the same tensor as '{seen[id(param)]}': align cannot permute "
                                 f"shared weights")
        seen[id(param)] = name
    calls = {}
    for node in graph_module.graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    for target, count in calls.items():
        module = graph_module.get_submodule(target)
        if count > 1 and any(True for _ in module.parameters(recurse=False)):
            raise AlignmentError(f"module '{target}' ({type(module).__name__}) is called {count} times: align "
                                 f"cannot permute shared weights")


def _nodes_in(args):
    found = []
    torch.fx.node.map_arg(args, found.append)
    return found


def _has_parameters(module):
    return any(True for _ in module.parameters())


class Tracer:
    """One pass over the traced graph, tagging each node with what it carries: Hidden, Opaque or None."""

    def __init__(self, graph_module, state_names):
        self.gm, self.state_names = graph_module, set(state_names)
        self.groups, self.tags, self.entries = Groups(), {}, []

    def args_tagged(self, node, kind):
        return [self.tags[n] for n in _nodes_in((node.args, node.kwargs)) if isinstance(self.tags.get(n), kind)]

    def hidden_args(self, node):
        return self.args_tagged(node, Hidden)

    def depends_on(self, node):
        """The groups a node's arguments carry, hidden or opaque."""
        found = {t.group for t in self.hidden_args(node)}
        for tag in self.args_tagged(node, Opaque):
            found |= tag.groups
        return frozenset(found)

    def unknown(self, node, reason):
        """An op the tracer cannot follow: every group it reads is refused unless it stays put anyway. Its
        result is Opaque, free where the op and its opaque inputs have no parameters of their own."""
        what = op_name(node)
        owner = self.gm.get_submodule(node.target) if node.op == "call_module" else None
        if owner is not None:
            what += f" ({type(owner).__name__})"
        for tag in self.hidden_args(node):
            self.groups.block(tag.group, f"{what} {reason}")
        depends = self.depends_on(node)
        free = (owner is None or not _has_parameters(owner)) and all(t.free for t in self.args_tagged(node, Opaque))
        return Opaque(depends, free) if depends else None

    def record(self, module_name, attribute, axis, group, block=1):
        entry = f"{module_name}.{attribute}" if module_name else attribute
        if entry in self.state_names:
            self.entries.append((entry, axis, group, block))

    def run(self):
        for node in self.gm.graph.nodes:
            if node.op == "output":  # the outputs' units stay put, and so do those they are a plain function of
                for tag in self.hidden_args(node) + [t for t in self.args_tagged(node, Opaque) if t.free]:
                    for group in (tag.groups if isinstance(tag, Opaque) else (tag.group,)):
                        self.groups.fix(group)
            elif node.op in ("placeholder", "get_attr"):
                self.tags[node] = None
            elif node.op == "call_module":
                self.tags[node] = self.call_module(node, self.gm.get_submodule(node.target))
            else:
                self.tags[node] = self.call_function(node)
        return self

    def first(self, node):
        """The Hidden value of the node's first argument, or None."""
        tag = self.tags.get(node.args[0]) if node.args and isinstance(node.args[0], torch.fx.Node) else None
        return tag if isinstance(tag, Hidden) else None

    def call_module(self, node, module):
        x = self.first(node)
        if isinstance(module, nn.Linear):
            return self.linear(node, module, x)
        if isinstance(module, nn.modules.conv._ConvNd) and not module.transposed and module.groups == 1:
            return self.conv(node, module, x)
        if x is None and self.args_tagged(node, Opaque):  # it reads units the tracer lost: opaque too
            return self.unknown(node, "")
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            return self.per_unit(node, x, ("weight", "bias", "running_mean", "running_var"), module.num_features)
        if isinstance(module, nn.PReLU) and module.num_parameters > 1:
            return self.per_unit(node, x, ("weight",), module.num_parameters)
        if isinstance(module, ELEMENTWISE_MODULES + (nn.PReLU,)) and len(node.args) == 1:
            return x
        if type(module) in POOL_MODULES and not getattr(module, "return_indices", False):
            return self.pool(node, x, POOL_MODULES[type(module)])
        if isinstance(module, nn.Flatten) and (module.start_dim, module.end_dim) == (1, -1):
            return self.flatten(node, x)
        return self.unknown(node, module_reason(module))

    def linear(self, node, module, x):
        if x is not None:
            if not on_last_axis(x):
                return self.unknown(node, "reads them on another axis than its features")
            size = self.groups.size[self.groups.find(x.group)]
            if module.in_features % size or (not x.flat and module.in_features != size):
                return self.unknown(node, f"reads {module.in_features} features, not {size} units")
            self.record(node.target, "weight", 1, x.group, module.in_features // size)
        group = self.groups.new(node.target, module.out_features)
        self.record(node.target, "weight", 0, group)
        self.record(node.target, "bias", 0, group)
        if x is None or x.ndim is None:
            return Hidden(group, -1)
        return Hidden(group, x.ndim - 1, x.ndim)

    def conv(self, node, module, x):
        ndim = len(module.kernel_size) + 2
        if x is not None:
            if x.flat or channel_ndim(x) != ndim:
                return self.unknown(node, "reads them on another axis than its channels")
            self.record(node.target, "weight", 1, x.group)
        group = self.groups.new(node.target, module.out_channels)
        self.record(node.target, "weight", 0, group)
        self.record(node.target, "bias", 0, group)
        return Hidden(group, 1, ndim)

    def per_unit(self, node, x, attributes, count):
        """BatchNorm or a per-channel PReLU: one parameter (and statistic) per unit, on dimension 1."""
        if x is None:
            return None
        ndim = channel_ndim(x)
        if x.flat or ndim is None or count != self.groups.size[self.groups.find(x.group)]:
            return self.unknown(node, "normalizes another dimension than their own")
        for attribute in attributes:
            self.record(node.target, attribute, 0, x.group)
        return Hidden(x.group, 1, ndim)

    def pool(self, node, x, spatial):
        if x is not None and (x.flat or channel_ndim(x) != spatial + 2):
            return self.unknown(node, "pools over them")
        return x

    def flatten(self, node, x):
        if x is None:
            return None
        ndim = channel_ndim(x)
        if ndim is None:
            return self.unknown(node, "mixes them with the dimensions before them")
        return Hidden(x.group, 1, 2, flat=x.flat or ndim > 2)

    def call_function(self, node):
        target, x = node.target, self.first(node)
        if (node.op == "call_method" and target in METADATA_METHODS) or (
                target is getattr and node.args[1] in METADATA_ATTRIBUTES):
            return None
        hidden = self.hidden_args(node)
        if not hidden:
            return self.unknown(node, "")
        if target in ELEMENTWISE_FUNCTIONS or (node.op == "call_method" and target in ELEMENTWISE_METHODS):
            others = _nodes_in((node.args[1:], node.kwargs))  # clamp(x, max=t): t would need the same order
            if x is not None and (not others or target in ("to", "type_as")):
                return x
        elif target in BINARY_FUNCTIONS or (node.op == "call_method" and target in BINARY_METHODS):
            return self.binary(node)
        elif target in POOL_FUNCTIONS and not node.kwargs.get("return_indices", False) and x is not None:
            return self.pool(node, x, POOL_FUNCTIONS[target])
        elif flatten_start(node) == 1 and x is not None:
            return self.flatten(node, x)
        elif target in MEAN_OPS and x is not None:
            return self.reduce(node, x)
        return self.unknown(node, function_reason(node))

    def binary(self, node):
        """x + y, x * y, ...: hidden operands share one permutation; an operand without one fixes it."""
        operands = [a for a in node.args[:2] if isinstance(a, torch.fx.Node)]
        tags = [self.tags.get(a) for a in operands]
        hidden = [t for t in tags if isinstance(t, Hidden)]
        if len(hidden) != len(self.hidden_args(node)) or not hidden:  # a hidden value passed by keyword
            return self.unknown(node, function_reason(node))
        if any(not compatible(hidden[0], t) for t in hidden[1:]):
            return self.unknown(node, "combines them with units on another axis")
        group = hidden[0].group
        for tag in hidden[1:]:
            group = self.groups.union(group, tag.group, node.name)
        if any(t is None for t in tags):  # combined with a tensor that is never permuted: the units stay put
            self.groups.fix(group)
        for tag in tags:
            if isinstance(tag, Opaque):  # with one that moves only if the units it came from could
                self.groups.tie(group, tag.groups)
        known = [t for t in hidden if t.ndim is not None]
        return Hidden(group, known[0].axis, known[0].ndim, hidden[0].flat) if known else Hidden(group, -1)

    def reduce(self, node, x):
        """mean/sum/amax over spatial dimensions only (a global average pool written as x.mean((2, 3)))."""
        reduced = reduced_dims(node)
        if reduced is None or x.ndim is None or x.axis != 1 or x.flat:
            return self.unknown(node, function_reason(node))
        dims, keep = reduced
        if any(d % x.ndim <= 1 for d in dims):
            return self.unknown(node, "reduces over them or over the batch")
        return Hidden(x.group, 1, x.ndim if keep else x.ndim - len(set(d % x.ndim for d in dims)))

    def spec(self):
        """The PermutationSpec of the groups that are not fixed; refuses one that meets an unknown op."""
        groups, names, producers, axes = self.groups, {}, {}, {}
        groups.settle_ties()
        for g in range(len(groups.parent)):
            root = groups.find(g)
            if groups.fixed[root]:
                continue
            if groups.blockers[root]:
                raise AlignmentError(f"cannot permute the hidden units of '{groups.producer[root]}': "
                                     f"{groups.blockers[root][0]}")
            names[root] = groups.producer[root]
            producers.setdefault(names[root], []).append(groups.producer[g])
        for entry, axis, group, block in self.entries:
            root = groups.find(group)
            if root in names:
                axes.setdefault(entry, []).append(PermutedAxis(axis, names[root], block))
        return PermutationSpec(groups={names[r]: groups.size[r] for r in sorted(names)},
                               axes={e: tuple(sorted(a, key=lambda pa: pa.axis)) for e, a in axes.items()},
                               producers={name: tuple(p) for name, p in producers.items()})


def permutation_spec(model):
    """The PermutationSpec of `model` (an nn.Module): its groups of hidden units, named after the module
    that first produces each, and the state_dict axes each permutes. Refuses, with an AlignmentError
    naming the op, a model whose units meet an op align cannot permute through."""
    graph_module = _trace(model)
    check_no_weight_sharing(model, graph_module)
    return Tracer(graph_module, model.state_dict().keys()).run().spec()
