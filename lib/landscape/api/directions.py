"""Directions for the API and the drivers alike: seeded random ones (filter-normalized by default),
targets (another model minus this one), direction files read back, and the check that a file
recording nothing of its making really holds the targets it is given with."""
import numpy as np
import torch

from ..errors import DirectionError
from ..files.directions import Directions, read_directions
from ..inputs.first_batch import check_model
from ..space.directions import named_entries, normalize_direction, random_direction, target_direction, target_mismatch
from ..space.groups import entry_group
from ..space.model_io import qualified_name
from ..version import __version__


def _per_axis(choice):
    """One choice for both directions, or an (x, y) pair."""
    return tuple(choice) if isinstance(choice, (tuple, list)) else (choice, choice)


def random_directions(model, n=1, norm="filter", ignore="biasbn", dir_type="weights", seed=0, params=None):
    """n (1 or 2) seeded Gaussian directions, normalized like the paper (filter-wise by default).
    x uses `seed`, y uses seed + 1, as plot_surface.py's --seed does, so the files agree.
    norm and ignore: one choice for both directions, or an (x, y) pair (--xnorm/--ynorm, --xignore/--yignore).
    params: None (every entry), or glob patterns of entry names (e.g. ['*lora*'], ['transformer.h.*.attn.*']):
    the directions are then zero outside the entries matched, which hold what they would hold without
    params (the same numbers, normalized entry by entry); the attrs record the patterns."""
    if n not in (1, 2):
        raise DirectionError(f"n must be 1 or 2 directions, got {n!r}")
    check_model(model)
    names, entries = zip(*named_entries(model, dir_type))
    inside = None if params is None else set(entry_group(model, params, dir_type))  # refused before any work
    norms, ignores = _per_axis(norm), _per_axis(ignore)
    made = [normalize_direction(random_direction(entries, seed + k), entries, norms[k], ignores[k]) for k in range(n)]
    if inside is not None:
        made = [[d if name in inside else torch.zeros_like(d) for name, d in zip(names, direction)]
                for direction in made]
    attrs = dict(names=list(names), dir_type=dir_type, model=qualified_name(model), seed=seed, xnorm=norms[0],
                 xignore=ignores[0], ynorm=norms[1], yignore=ignores[1], same_dir=False, landscape_version=__version__)
    if params is not None:  # only then: a file made without a group is as before
        attrs["params"] = list(params)
    return Directions(made[0], made[1] if n == 2 else None, attrs)


def _entries_of(other, names, shapes, dir_type):
    """`other`'s entries in the order of `names`, refused when it is not the same architecture."""
    found = dict(named_entries(other, dir_type))
    missing = [n for n, shape in zip(names, shapes) if n not in found or found[n].shape != shape]
    if missing:
        raise DirectionError(f"the target model does not match the model: {', '.join(missing[:5])} differ")
    return [found[n] for n in names]


def target_directions(model, x_model, y_model=None, dir_type="weights"):
    """x = x_model - model (and y = y_model - model): the interpolation of --model_file2/--model_file3."""
    names, entries = zip(*named_entries(model, dir_type))
    shapes = [t.shape for t in entries]

    def towards(other):
        return target_direction(entries, _entries_of(other, names, shapes, dir_type))
    attrs = dict(names=list(names), dir_type=dir_type, model=qualified_name(model), kind="target",
                 landscape_version=__version__)
    return Directions(towards(x_model), None if y_model is None else towards(y_model), attrs)


def check_targets(dirs, model, x_model=None, y_model=None, dir_type="weights", labels=("x_model", "y_model")):
    """Refuse directions that do not hold x_model - model (and y_model - model) within float32 rounding,
    naming the first entry that differs. The drivers run it on a direction file that records nothing of
    --model_file2/--model_file3 (the reference code's), which would otherwise be drawn along whatever it
    holds; `labels` name the two targets in the message."""
    names, entries = zip(*named_entries(model, dir_type))
    shapes = [t.shape for t in entries]
    for axis, direction, other, label in (("x", dirs.x, x_model, labels[0]), ("y", dirs.y, y_model, labels[1])):
        if other is None or direction is None:
            continue
        target = _entries_of(other, names, shapes, dir_type)
        found = target_mismatch(direction, entries, target)
        if found is not None:
            index, difference = found
            norm = float(np.sqrt(sum(float(np.square(np.asarray(d, dtype=np.float64)).sum()) for d in direction)))
            want = float(torch.cat([(b.double() - a.double()).reshape(-1) for a, b in zip(entries, target)
                                    if a.is_floating_point()]).norm())
            raise DirectionError(f"the {axis} direction is not {label} minus the model: entry {names[index]!r} "
                                 f"differs by up to {difference:.3g} (|{axis}| = {norm:.4g}, |{label} - model| = "
                                 f"{want:.4g})")


def load_directions(path):
    """A direction file in the reference layout (ours or the reference code's), as lists of tensors."""
    dirs = read_directions(path)

    def as_tensors(direction):
        return None if direction is None else [torch.from_numpy(np.asarray(t)) for t in direction]
    return Directions(as_tensors(dirs.x), as_tensors(dirs.y), dirs.attrs, dirs.path)
