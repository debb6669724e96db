"""Parameter groups by name: glob patterns (fnmatch, e.g. 'transformer.h.*.attn.*', '*lora*') turned
into the names they match, in the model's own order. A map that moves only a LoRA adapter, or a Hessian
over only attention, is given such a group.

Matching is case-sensitive (fnmatchcase), so a pattern means the same on every system; '*' also
matches dots, so 'transformer.h.*.attn.*' covers every block's attention. A tensor the model holds under
several names (a tied weight: GPT-2's lm_head.weight is transformer.wte.weight) is listed once, under its
first name, and a pattern matching any of its names selects it.
"""
from fnmatch import fnmatchcase

from ..errors import ChoiceError
from .directions import entry_aliases, named_entries

SHOWN_NAMES = 5  # how many of the model's names a refusal shows, spread over the whole list
EXAMPLE = "['transformer.h.*.attn.*']"


def check_patterns(patterns, what="params"):
    """The patterns as a list: a non-empty list or tuple of non-empty strings, else one ChoiceError.
    A bare string is refused, not taken as one pattern: hessian_map's params='all' is a string choice."""
    if (not isinstance(patterns, (list, tuple)) or not patterns
            or not all(isinstance(p, str) and p for p in patterns)):
        raise ChoiceError(f"{what}={patterns!r}: give a non-empty list of glob patterns of parameter names, "
                          f"e.g. {what}={EXAMPLE}")
    return list(patterns)


def some_names(names):
    """Up to SHOWN_NAMES of `names`, spread from the first to the last, for a message."""
    if len(names) <= SHOWN_NAMES:
        return list(names)
    step = (len(names) - 1) / (SHOWN_NAMES - 1)
    return [names[round(k * step)] for k in range(SHOWN_NAMES)]


def matching_names(names, patterns, what="params", aliases=None):
    """The names that match at least one pattern (themselves or one of their `aliases`, {name: [other
    names of the same tensor]}), in the order of `names`. A pattern matching none of them is refused (a
    typo would otherwise leave a group smaller than asked), naming a few of the names."""
    patterns = check_patterns(patterns, what)
    spelled = {name: [name, *(aliases or {}).get(name, ())] for name in names}

    def matches(name, pattern):
        return any(fnmatchcase(spelling, pattern) for spelling in spelled[name])
    for pattern in patterns:
        if not any(matches(name, pattern) for name in spelled):
            raise ChoiceError(f"{what} pattern {pattern!r} matches none of the model's {len(spelled)} names, "
                              f"e.g. {', '.join(some_names(list(spelled)))}")
    return [name for name in spelled if any(matches(name, pattern) for pattern in patterns)]


def entry_group(model, patterns, dir_type="weights", what="params"):
    """The names of `model`'s entries of a `dir_type` direction that the patterns match, in that order
    ('weights': named_parameters() order, the parameters a Hessian is taken over)."""
    names = [name for name, _ in named_entries(model, dir_type)]
    return matching_names(names, patterns, what, entry_aliases(model, dir_type))
