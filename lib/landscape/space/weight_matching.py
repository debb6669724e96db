"""Weight matching (Ainsworth, Hayase & Srinivasa, "Git Re-Basin", ICLR 2023, algorithm 1), pure.

Find permutations π of model b's hidden units that maximize the inner product of the parameter vectors,
<θ_a, π(θ_b)> (equivalently minimize ||θ_a - π(θ_b)||). With every other group's permutation held, the
objective is linear in one group's permutation P: sum over the axes the group permutes of
<A, P B> = trace(Pᵀ A Bᵀ), A and B the entries as (units, rest) with the other groups' permutations
applied to B. So one step is a linear assignment on the units × units matrix A Bᵀ summed over those axes
(scipy's linear_sum_assignment), which can only raise the objective: coordinate ascent. Rounds visit
the groups in a seeded random order until a round changes nothing, or max_iter rounds.

An entry that holds the same group on two axes (a square layer inside a residual stream) makes the
objective quadratic in that group; its step is then kept only if the whole objective rose.
"""
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from .permutation_spec import identity_permutations, permute_entry, unit_rows

EPS64 = float(np.finfo(np.float64).eps)
ROUNDING = 64  # rounding slack, in units of eps times the sums' magnitude: a "gain" below it is a tie


@dataclass(frozen=True)
class WeightMatching:
    permutations: dict  # {group: LongTensor}, new = old[p]
    objective: float  # <θ_a, π(θ_b)> over the entries given, at the permutations found
    rounds: int  # full rounds over the groups
    converged: bool  # the last round changed no permutation (else max_iter ran out)


def objective(spec, a, b, perms):
    """<θ_a, π(θ_b)>: the sum over the entries of a of a · (b with the spec's permutations applied)."""
    total = 0.0
    for name, ta in a.items():
        tb = permute_entry(b[name], spec.axes[name], perms) if name in spec.axes else b[name]
        total += float((ta.detach().double() * tb.detach().double()).sum())
    return total


def cost_matrix(spec, a, b, perms, group):
    """sum over the axes `group` permutes of A Bᵀ (units × units): entry [i, j] is what the objective gains
    from putting b's unit j at a's position i, the other groups' permutations held."""
    size = spec.groups[group]
    cost = None
    for name, pa in spec.entries_of(group):
        if name not in a:
            continue
        rows_a = unit_rows(a[name], pa.axis, size)
        rows_b = unit_rows(permute_entry(b[name], spec.axes[name], perms, skip_axis=pa.axis), pa.axis, size)
        term = rows_a @ rows_b.T
        cost = term if cost is None else cost + term
    return torch.zeros(size, size, dtype=torch.float64) if cost is None else cost.cpu()


def self_coupled_groups(spec):
    """Groups that some entry holds on two of its axes."""
    found = set()
    for axes in spec.axes.values():
        groups = [pa.group for pa in axes]
        found.update(g for g in groups if groups.count(g) > 1)
    return found


def _assignment_step(spec, a, b, perms, group, coupled, slack):
    """The group's best permutation with the others held, or None where it does not raise the objective."""
    cost = cost_matrix(spec, a, b, perms, group)
    rows, cols = linear_sum_assignment(cost.numpy(), maximize=True)
    new = torch.as_tensor(cols, dtype=torch.long)
    units = torch.arange(len(new))
    tie = ROUNDING * EPS64 * len(new) * float(cost.abs().max())
    if float(cost[units, new].sum()) <= float(cost[units, perms[group]].sum()) + tie or torch.equal(new, perms[group]):
        return None
    if group in coupled:  # the step's gain is only estimated: keep it only if the objective truly rose
        if objective(spec, a, b, {**perms, group: new}) <= objective(spec, a, b, perms) + slack:
            return None
    return new


def weight_matching(spec, a, b, max_iter=100, seed=0, on_step=None):
    """Permutations of b's units that (locally) maximize <θ_a, π(θ_b)>. a, b: {entry: tensor} of the same
    names and shapes (the parameters; buffers need not be given). on_step(perms) is called after every
    step (a copy), for checks. Returns a WeightMatching."""
    a = {name: t.detach().double() for name, t in a.items()}
    b = {name: b[name].detach().double().to(t.device) for name, t in a.items()}
    perms = identity_permutations(spec)
    coupled = self_coupled_groups(spec)
    slack = ROUNDING * EPS64 * sum(float(t.abs().sum()) * float(b[n].abs().max()) for n, t in a.items())
    names = sorted(spec.groups)
    rng = np.random.default_rng(seed)
    rounds, converged = 0, not names
    while not converged and rounds < max_iter:
        rounds += 1
        changed = False
        for index in rng.permutation(len(names)):
            group = names[index]
            new = _assignment_step(spec, a, b, perms, group, coupled, slack)
            if new is not None:
                perms[group], changed = new, True
            if on_step is not None:
                on_step(dict(perms))
        converged = not changed
    return WeightMatching(perms, objective(spec, a, b, perms), rounds, converged)
