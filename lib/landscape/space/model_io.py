"""How the engine talks to a model: pure functions over its inputs and outputs.

Inputs are a tensor (passed positionally: model(x)) or a dict of tensors sharing their first dimension
(passed as keyword arguments: model(input_ids=..., attention_mask=...), as HuggingFace models take them).
Outputs are a tensor of logits, an object with a `.logits` tensor (HuggingFace's ModelOutput) or a dict
holding "logits"; logits_of() finds them, so the named losses and accuracy read every kind alike.
"""
import copy
from collections.abc import Mapping

import torch


def is_input_dict(inputs):
    return isinstance(inputs, Mapping)


def call_model(model, inputs):
    """The model's outputs: keyword arguments for a dict of inputs, one argument otherwise."""
    return model(**inputs) if is_input_dict(inputs) else model(inputs)


def call_functional(model, params, inputs):
    """call_model with the model's tensors replaced by `params` (torch.func.functional_call)."""
    if is_input_dict(inputs):
        return torch.func.functional_call(model, params, (), dict(inputs))
    return torch.func.functional_call(model, params, (inputs,))


def logits_of(outputs):
    """The tensor of scores in a model's outputs, or None: the outputs themselves, their .logits, or
    their "logits" (ModelOutput is a dict too, so both ways find it)."""
    if torch.is_tensor(outputs):
        return outputs
    found = outputs.get("logits") if isinstance(outputs, Mapping) else getattr(outputs, "logits", None)
    return found if torch.is_tensor(found) else None


def with_logits(outputs, logits):
    """The outputs with `logits` in place of their logits (a copy; the rest kept as it is): a loss of the
    outputs read as a function of the logits alone. A ModelOutput's item assignment sets its attribute too."""
    if torch.is_tensor(outputs):
        return logits
    replaced = copy.copy(outputs)
    if isinstance(replaced, Mapping) and torch.is_tensor(replaced.get("logits")):
        replaced["logits"] = logits
    else:
        replaced.logits = logits
    return replaced


def input_tensors(inputs):
    """The tensors of the inputs, in a fixed order (a dict's by key): what is hashed and checked."""
    if is_input_dict(inputs):
        return [inputs[key] for key in sorted(inputs)]
    return [inputs]


def count_of(inputs):
    """How many samples the inputs hold (the first dimension)."""
    return len(input_tensors(inputs)[0])


def device_of(inputs):
    return input_tensors(inputs)[0].device


def take(inputs, rows):
    """The inputs' samples at `rows` (a slice or an index tensor), a dict kept a dict."""
    if is_input_dict(inputs):
        return {key: value[rows] for key, value in inputs.items()}
    return inputs[rows]


def to_device(inputs, device, non_blocking=False):
    if is_input_dict(inputs):
        return {key: value.to(device, non_blocking=non_blocking) for key, value in inputs.items()}
    return inputs.to(device, non_blocking=non_blocking)


def qualified_name(obj):
    """'module.Name' of a function or class, or of a model's class (what settings and messages show)."""
    kind = obj if isinstance(obj, type) or callable(obj) and not isinstance(obj, torch.nn.Module) else type(obj)
    return f"{getattr(kind, '__module__', '?')}.{getattr(kind, '__qualname__', repr(kind))}"
