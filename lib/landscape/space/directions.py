"""Directions in parameter space: pure functions over lists of tensors.

A direction is a list of float tensors, one per entry of the model's parameter list
(dir_type 'weights', order of named_parameters) or of its state_dict (dir_type 'states',
which adds BN running statistics and integer buffers such as num_batches_tracked).
Integer entries always get an all-zero direction and are never moved. A tensor the model holds under
several names (a tied weight: GPT-2's lm_head.weight is transformer.wte.weight) is one entry, under its
first name: named_parameters() lists it once, and the state_dict's later names for it are dropped, so it
moves once and counts once in a norm. Models without such aliases keep the reference's lists exactly.
"""
import torch

from ..errors import ChoiceError

DIR_TYPES = ("weights", "states")
NORMS = ("filter", "layer", "weight", "dfilter", "dlayer")
IGNORES = ("none", "biasbn")
EPS = 1e-10  # the reference's guard against a zero filter


def check_choice(value, choices, flag):
    if value not in choices:
        raise ChoiceError(f"{flag}={value!r} is not one of {', '.join(choices)}")
    return value


def distinct_entries(named):
    """((name, tensor) pairs, {name: [later names of the same tensor]}): each tensor object once, under
    its first name. Identity, not equal values or storage: a tied weight is one Parameter (or buffer)
    object registered under two names, while two tensors that merely hold the same numbers stay two."""
    kept, first_name, aliases = [], {}, {}
    for name, t in named:
        if id(t) in first_name:
            aliases.setdefault(first_name[id(t)], []).append(name)
        else:
            first_name[id(t)] = name
            kept.append((name, t))
    return kept, aliases


def _every_name(model, dir_type):
    """Every (name, tensor object) of a `dir_type` direction, aliases included."""
    if dir_type == "weights":
        return model.named_parameters(remove_duplicate=False)
    return model.state_dict(keep_vars=True).items()  # the Parameter and buffer objects themselves


def named_entries(model, dir_type):
    """(name, tensor) pairs that a direction of `dir_type` covers, in the reference's order, each
    tensor once (see the module's docstring)."""
    check_choice(dir_type, DIR_TYPES, "--dir_type")
    return [(n, t.detach()) for n, t in distinct_entries(_every_name(model, dir_type))[0]]


def entry_aliases(model, dir_type):
    """{entry name: [the model's other names for that tensor]}, for the entries that have some."""
    check_choice(dir_type, DIR_TYPES, "--dir_type")
    return distinct_entries(_every_name(model, dir_type))[1]


def is_movable(t):
    return t.is_floating_point()


def random_direction(entries, seed):
    """Gaussian direction shaped like `entries`; generated on the CPU so a seed means the same numbers anywhere."""
    gen = torch.Generator().manual_seed(int(seed))
    return [torch.randn(t.shape, generator=gen, dtype=torch.float32) if is_movable(t)
            else torch.zeros(t.shape, dtype=torch.float32) for t in entries]


def target_direction(entries, target_entries):
    """theta_target - theta, the interpolation direction of --model_file2/--model_file3."""
    return [(t2.float().cpu() - t.float().cpu()) if is_movable(t) else torch.zeros(t.shape)
            for t, t2 in zip(entries, target_entries)]


def _norm_one(d, w, norm):
    if norm == "filter":  # each output channel / FC row gets the norm of the same slice of w
        for di, wi in zip(d, w):
            di.mul_(wi.norm() / (di.norm() + EPS))
    elif norm == "layer":
        d.mul_(w.norm() / d.norm())
    elif norm == "weight":
        d.mul_(w)
    elif norm == "dfilter":
        for di in d:
            di.div_(di.norm() + EPS)
    elif norm == "dlayer":
        d.div_(d.norm())


def normalize_direction(direction, entries, norm, ignore):
    """Scale a random direction like the reference does, returning a new list.

    Entries with more than one dimension are normalized by `norm`. 1-D entries (biases, BN)
    are zeroed with ignore='biasbn'; otherwise they are set to the weights themselves, as the
    reference does. Integer entries stay zero.
    """
    check_choice(norm, NORMS, "--xnorm/--ynorm")
    check_choice(ignore, IGNORES, "--xignore/--yignore")
    out = []
    for d, w in zip(direction, entries):
        d = d.clone()
        if not is_movable(w):
            d.zero_()
        elif d.dim() <= 1:
            d.zero_() if ignore == "biasbn" else d.copy_(w.detach().float().cpu())
        else:
            _norm_one(d, w.detach().float().cpu(), norm)
        out.append(d)
    return out


def target_mismatch(direction, entries, target_entries):
    """Where `direction` is not target_direction(entries, target_entries): (entry index, largest
    difference), or None when every movable entry agrees within float32 rounding.

    A file holding the target stores each difference rounded once to float32 (computed in float32
    or wider), and ours is rounded once too, so the two differ by at most 2u(|theta| + |theta_target|)
    elementwise, u = 2^-24. Integer entries never move and are not compared."""
    u = 2.0 ** -24
    for i, (stored, theta, other) in enumerate(zip(direction, entries, target_entries)):
        if not is_movable(theta):
            continue
        theta, other = theta.detach().cpu().double(), other.detach().cpu().double()
        ours = (other.float() - theta.float()).double()
        stored = torch.as_tensor(stored).detach().cpu().double()
        if stored.shape != ours.shape:
            return i, float("inf")
        difference = (stored - ours).abs()
        if not bool((difference <= 2 * u * (theta.abs() + other.abs())).all()):  # NaN is a difference too
            return i, float(difference.max())
    return None
