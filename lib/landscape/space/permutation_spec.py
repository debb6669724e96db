"""Which axes of which tensors a permutation of hidden units reorders, and reordering them (pure).

A network computes the same function after its hidden units are reordered, provided everything that
touches a unit moves with it: the producing layer's output rows and bias, BatchNorm's per-unit weight,
bias and running statistics, and the consuming layers' input columns. A PermutationSpec records that, one
*group* of units per independent permutation: a residual stream is one group, shared by every layer that
writes into it through an identity shortcut.

Convention: a permutation `p` of a group puts old unit p[i] at position i (new = old[p]). Where a flatten
turned each channel into `block` consecutive features (a conv's c×h×w maps into a Linear), the columns of
unit u are u*block .. u*block + block - 1 and move together.
"""
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class PermutedAxis:
    axis: int
    group: str
    block: int = 1  # consecutive entries per unit along the axis (flattened channels)


@dataclass(frozen=True)
class PermutationSpec:
    """groups: {name: number of units}; axes: {state_dict entry: (PermutedAxis, ...)} for every entry with
    an axis to permute; producers: {name: (module names whose outputs are the group's units, ...)}."""
    groups: dict
    axes: dict
    producers: dict

    def entries_of(self, group):
        """[(entry, PermutedAxis)] for every axis the group permutes, in entry order."""
        return [(entry, pa) for entry, axes in self.axes.items() for pa in axes if pa.group == group]


def identity_permutations(spec):
    return {name: torch.arange(size) for name, size in spec.groups.items()}


def unit_index(perm, block):
    """The index along an axis where each unit holds `block` consecutive entries."""
    if block == 1:
        return perm
    return (perm[:, None] * block + torch.arange(block)).reshape(-1)


def permute_entry(tensor, axes, perms, skip_axis=None):
    """`tensor` with each of its permuted axes (but `skip_axis`) reordered by its group's permutation."""
    for pa in axes:
        if pa.axis != skip_axis:
            tensor = tensor.index_select(pa.axis, unit_index(perms[pa.group], pa.block).to(tensor.device))
    return tensor


def apply_permutations(state, spec, perms):
    """A new {name: tensor} with every entry the spec names permuted; other entries are the same objects."""
    return {name: permute_entry(t, spec.axes[name], perms) if name in spec.axes else t for name, t in state.items()}


def invert(perm):
    """The permutation q with q[perm[i]] = i: it undoes `perm`."""
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(len(perm))
    return inverse


def unit_rows(tensor, axis, size):
    """The tensor as (size, -1): row u holds every entry of unit u along `axis` (its block included)."""
    return tensor.movedim(axis, 0).reshape(size, -1)
