"""What the permutation tracer knows about each torch operation on hidden units (pure tables).

An op is *elementwise* (it treats every unit alike and leaves their order alone: activations, dropout,
casts), *pooling* (reduces the spatial dimensions after the channels), a *flatten* from dimension 1, a
*binary* elementwise op (add, mul, ... whose operands must be permuted alike), or *metadata* (shape,
size: no tensor comes out). Everything else that touches hidden units is refused with a reason.
"""
import operator

import torch
import torch.nn as nn
import torch.nn.functional as F

ELEMENTWISE_MODULES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
                       nn.Sigmoid, nn.Tanh, nn.Softplus, nn.Softsign, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid,
                       nn.LogSigmoid, nn.Tanhshrink, nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d,
                       nn.Dropout3d, nn.AlphaDropout)
ELEMENTWISE_FUNCTIONS = {F.relu, F.relu_, torch.relu, torch.relu_, F.relu6, F.gelu, F.silu, F.elu, F.selu, F.celu,
                         F.leaky_relu, F.mish, F.softplus, F.softsign, F.hardtanh, F.hardswish, F.hardsigmoid,
                         F.logsigmoid, F.sigmoid, F.tanh, torch.sigmoid, torch.tanh, torch.abs, torch.exp,
                         torch.neg, operator.neg, torch.clamp, F.dropout, F.dropout1d, F.dropout2d, F.dropout3d,
                         F.alpha_dropout}
ELEMENTWISE_METHODS = {"relu", "relu_", "sigmoid", "sigmoid_", "tanh", "tanh_", "abs", "exp", "neg", "clamp",
                       "clamp_", "clamp_min", "clone", "contiguous", "detach", "float", "double", "half", "bfloat16",
                       "to", "type_as"}
BINARY_FUNCTIONS = {operator.add, operator.sub, operator.mul, operator.truediv, operator.iadd, operator.isub,
                    operator.imul, operator.itruediv, torch.add, torch.sub, torch.mul, torch.div}
BINARY_METHODS = {"add", "sub", "mul", "div", "add_", "sub_", "mul_", "div_"}
METADATA_METHODS = {"size", "dim", "numel"}
METADATA_ATTRIBUTES = {"shape", "dtype", "device", "ndim", "is_cuda"}

# Pooling: {op: spatial dimensions}; the units are on dimension 1 of a (batch, units, *spatial) input.
POOL_MODULES = {nn.MaxPool1d: 1, nn.MaxPool2d: 2, nn.MaxPool3d: 3, nn.AvgPool1d: 1, nn.AvgPool2d: 2, nn.AvgPool3d: 3,
                nn.AdaptiveAvgPool1d: 1, nn.AdaptiveAvgPool2d: 2, nn.AdaptiveAvgPool3d: 3,
                nn.AdaptiveMaxPool1d: 1, nn.AdaptiveMaxPool2d: 2, nn.AdaptiveMaxPool3d: 3}
POOL_FUNCTIONS = {F.max_pool1d: 1, F.max_pool2d: 2, F.max_pool3d: 3, F.avg_pool1d: 1, F.avg_pool2d: 2,
                  F.avg_pool3d: 3, F.adaptive_avg_pool1d: 1, F.adaptive_avg_pool2d: 2, F.adaptive_avg_pool3d: 3,
                  F.adaptive_max_pool1d: 1, F.adaptive_max_pool2d: 2, F.adaptive_max_pool3d: 3}
MEAN_OPS = {torch.mean, torch.sum, torch.amax, "mean", "sum", "amax"}

NORMS_ACROSS = (nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm, nn.RMSNorm, nn.modules.instancenorm._InstanceNorm)
ATTENTION = (nn.MultiheadAttention, nn.Transformer, nn.TransformerEncoder, nn.TransformerDecoder,
             nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)
SUPPORTED = ("align knows Linear, Conv1d/2d/3d, BatchNorm, elementwise activations, dropout, pooling, "
             "flatten(1) and elementwise sums/products")


def module_reason(module):
    """Why a torch.nn layer align does not know cannot take permuted units."""
    if isinstance(module, NORMS_ACROSS):
        return "normalizes across them, a norm over the permuted dimension"
    if isinstance(module, ATTENTION):
        return "is attention, whose projections and heads need their own permutation rules"
    if isinstance(module, nn.modules.conv._ConvNd):
        return "is a grouped or transposed convolution"
    return f"is not a layer align can permute through ({SUPPORTED})"


def op_name(node):
    """How a message names a traced op: 'fc' (Linear), torch.cat(), .view()."""
    if node.op == "call_module":
        return f"'{node.target}'"
    if node.op == "call_method":
        return f".{node.target}()"
    module = getattr(node.target, "__module__", None) or ""
    module = {"_operator": "operator", "torch._C._VariableFunctions": "torch"}.get(module, module)
    return f"{module + '.' if module else ''}{getattr(node.target, '__name__', str(node.target))}()"


def function_reason(node):
    """Why a function or method align does not know cannot take permuted units."""
    name = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", str(node.target))
    if name in ("cat", "concat", "concatenate", "stack", "hstack", "vstack"):
        return "concatenates them with other tensors"
    if name in ("view", "reshape", "flatten", "unflatten", "permute", "transpose", "t", "movedim", "squeeze",
                "unsqueeze", "expand"):
        return "reshapes them in a way other than a flatten from dimension 1"
    if name in ("getitem", "narrow", "index_select", "gather", "split", "chunk"):
        return "selects some of them"
    return f"is not an operation align can permute through ({SUPPORTED})"


def is_batch_size(node):
    """Whether an fx node computes a tensor's batch size: x.size(0), x.shape[0] or x.size()[0]."""
    if not isinstance(node, torch.fx.Node):
        return False
    if node.op == "call_method" and node.target == "size":
        return tuple(node.args[1:]) == (0,) or node.kwargs.get("dim") == 0
    if node.op == "call_function" and node.target is operator.getitem and node.args[1] == 0:
        source = node.args[0]
        return isinstance(source, torch.fx.Node) and (
            (source.op == "call_function" and source.target is getattr and source.args[1] == "shape")
            or (source.op == "call_method" and source.target == "size" and len(source.args) == 1))
    return False


def flatten_start(node):
    """1 where the node flattens its first argument from dimension 1 to the end (torch.flatten(x, 1),
    x.flatten(1), x.view(x.size(0), -1), x.reshape(x.shape[0], -1)); None for any other shape op."""
    args, kwargs = node.args, node.kwargs
    if node.target in (torch.flatten, "flatten"):
        start = args[1] if len(args) > 1 else kwargs.get("start_dim", 0)
        end = args[2] if len(args) > 2 else kwargs.get("end_dim", -1)
        return 1 if (start, end) == (1, -1) else None
    if node.target in ("view", "reshape") and len(args) == 3 and args[2] == -1 and is_batch_size(args[1]):
        return 1
    return None


def reduced_dims(node):
    """The dimensions a mean/sum/amax node reduces, and whether it keeps them: ((dims), keepdim), or None
    where it reduces everything."""
    dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
    keep = node.args[2] if len(node.args) > 2 else node.kwargs.get("keepdim", False)
    if dims is None or (isinstance(dims, (tuple, list)) and not dims):
        return None
    return (tuple(dims) if isinstance(dims, (tuple, list)) else (dims,)), bool(keep)
