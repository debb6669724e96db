"""The losses the engine evaluates and differentiates: pure functions over a batch's outputs and targets.

The engine's form of a loss is total(outputs, targets, inputs) -> (summed loss, weight): the weight is
what the sum runs over (samples, or predicted tokens for 'causal_lm'), so the value at a point is the
sum over the whole data set divided by the total weight: a mean over every sample (token), never a
mean of batch means. The inputs are there for the attention mask of 'causal_lm'.
"""
import torch
import torch.nn.functional as F

from ..errors import ChoiceError, LossError
from .model_io import is_input_dict, logits_of, qualified_name

LOSS_NAMES = ("crossentropy", "mse", "causal_lm")
IGNORE_INDEX = -100  # a label that predicts nothing (padding, a prompt), as HuggingFace and F.cross_entropy use


def crossentropy_sum(logits, y):
    return F.cross_entropy(logits.float(), y, reduction="sum")


def mse_sum(logits, y):
    """The reference's MSE: softmax probabilities against one-hot targets, mean over classes."""
    probs = torch.softmax(logits.float(), dim=1)
    onehot = F.one_hot(y, probs.shape[1]).to(probs.dtype)
    return ((probs - onehot) ** 2).mean(dim=1).sum()


def loss_function(name):
    """Summed-over-batch loss(logits, targets) of a classification --loss_name (the trainer's form)."""
    losses = {"crossentropy": crossentropy_sum, "mse": mse_sum}
    if name not in losses:
        raise ChoiceError(f"--loss_name={name!r} is not one of {', '.join(losses)}")
    return losses[name]


def per_sample(loss_sum):
    """The engine's form of a summed classification loss(logits, targets): weighted by the sample count."""
    return lambda outputs, targets, inputs: (loss_sum(logits_of(outputs), targets), len(targets))


def next_token_pairs(outputs, targets, inputs):
    """(scores, labels) of next-token prediction: the logits at positions 0..T-2 against the labels at
    1..T-1, flattened; labels where the inputs' attention_mask is 0 (padding) become IGNORE_INDEX."""
    logits = logits_of(outputs)
    labels = targets
    mask = inputs.get("attention_mask") if is_input_dict(inputs) else None
    if mask is not None:
        labels = labels.masked_fill(mask == 0, IGNORE_INDEX)
    return logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1)


def causal_lm_total(outputs, targets, inputs):
    """Summed next-token cross-entropy and the number of tokens predicted (labels not IGNORE_INDEX)."""
    scores, labels = next_token_pairs(outputs, targets, inputs)
    total = F.cross_entropy(scores.float(), labels, ignore_index=IGNORE_INDEX, reduction="sum")
    return total, (labels != IGNORE_INDEX).sum()


def class_hits(outputs, targets, inputs):
    return (logits_of(outputs).argmax(dim=1) == targets).sum()


def token_hits(outputs, targets, inputs):
    """Next tokens predicted right (argmax), padding and IGNORE_INDEX labels excluded."""
    scores, labels = next_token_pairs(outputs, targets, inputs)
    return ((scores.argmax(dim=1) == labels) & (labels != IGNORE_INDEX)).sum()


def checked_mean_loss(loss):
    """A user's loss(outputs, targets) -> batch mean, refused now if not callable and on use if its
    value is not one number."""
    if not callable(loss):
        raise LossError(f"loss must be a function loss(outputs, targets) -> mean loss, got a {type(loss).__name__}")

    def mean(outputs, targets):
        value = loss(outputs, targets)
        if not torch.is_tensor(value) or value.numel() != 1:
            shape = tuple(value.shape) if torch.is_tensor(value) else type(value).__name__
            raise LossError(f"loss {qualified_name(loss)} must return the batch's mean loss as one number (a scalar "
                            f"tensor), got {shape}")
        return value.reshape(())
    return mean


def weighted_loss(loss):
    """The engine's form of a loss: None or a name of LOSS_NAMES, or a user's loss(outputs, targets) -> batch
    mean (given the model's outputs as they are; weighted by the number of targets)."""
    if loss is None or isinstance(loss, str):
        name = loss or "crossentropy"
        if name not in LOSS_NAMES:
            raise LossError(f"loss {name!r} is not one of {', '.join(LOSS_NAMES)}; or give a function "
                            f"loss(outputs, targets) -> mean loss")
        return causal_lm_total if name == "causal_lm" else per_sample(loss_function(name))
    return from_mean(checked_mean_loss(loss))


def from_mean(mean_loss):
    """The engine's form of a batch-mean loss(outputs, targets): weighted by the number of targets."""
    return lambda outputs, targets, inputs: (mean_loss(outputs, targets) * len(targets), len(targets))


def hits_function(loss):
    """What counts a batch's right answers for the accuracy of `loss` (see gives_accuracy)."""
    return token_hits if loss == "causal_lm" else class_hits


def gives_accuracy(outputs, targets, loss=None):
    """Accuracy applies to next-token prediction (causal_lm), and otherwise to (N, classes) scores against
    N integer class indices, and to nothing else."""
    logits = logits_of(outputs)
    if logits is None or not torch.is_tensor(targets):  # a user's loss may take other outputs
        return False
    if loss == "causal_lm":
        return True
    return (logits.ndim == 2 and targets.ndim == 1 and len(targets) == len(logits)
            and not targets.is_floating_point() and not targets.is_complex() and targets.dtype != torch.bool)
