"""Activation matching (Git Re-Basin, Ainsworth et al. 2023, section 3.1), pure: match model b's hidden units
to model a's by the correlation of their activations on the same inputs.

Each group is matched on its own (a unit's activations do not depend on how other groups are ordered): one
linear assignment maximizing the summed Pearson correlation of the paired units. A unit's samples are its
values over the inputs and, for a conv, over every spatial position. The activations are the outputs of
the layers producing the group (before BatchNorm: in eval mode BN is an affine map per unit, which leaves
a correlation unchanged); a residual stream, produced by several layers, sums their correlation matrices.
"""
from dataclasses import dataclass

import torch
import torch.nn as nn
from scipy.optimize import linear_sum_assignment


def unit_samples(output, module):
    """A layer's output as (samples, units): a Linear's units are its last axis, a conv's its axis 1."""
    if isinstance(module, nn.modules.conv._ConvNd):
        return output.movedim(1, -1).reshape(-1, module.out_channels)
    return output.reshape(-1, module.out_features)


@dataclass
class CrossMoments:
    """Running sums over samples of a, b, a², b² (per unit) and a bᵀ (units × units), in float64."""
    count: int = 0
    sum_a: torch.Tensor = None
    sum_b: torch.Tensor = None
    sq_a: torch.Tensor = None
    sq_b: torch.Tensor = None
    cross: torch.Tensor = None

    def add(self, a, b):
        a, b = a.detach().double(), b.detach().double().to(a.device)
        sums = (a.sum(0), b.sum(0), (a * a).sum(0), (b * b).sum(0), a.T @ b)
        if self.cross is None:
            self.sum_a, self.sum_b, self.sq_a, self.sq_b, self.cross = sums
        else:
            self.sum_a, self.sum_b, self.sq_a, self.sq_b, self.cross = (
                old + new for old, new in zip((self.sum_a, self.sum_b, self.sq_a, self.sq_b, self.cross), sums))
        self.count += len(a)

    def correlation(self):
        """Pearson correlation [i, j] of a's unit i with b's unit j; 0 for a unit that never varies."""
        n = self.count
        mean_a, mean_b = self.sum_a / n, self.sum_b / n
        cov = self.cross / n - mean_a[:, None] * mean_b[None, :]
        std_a = (self.sq_a / n - mean_a ** 2).clamp_min(0).sqrt()
        std_b = (self.sq_b / n - mean_b ** 2).clamp_min(0).sqrt()
        scale = std_a[:, None] * std_b[None, :]
        return torch.where(scale > 0, cov / scale.clamp_min(torch.finfo(torch.float64).tiny), 0.0).cpu()


def match_correlations(correlations):
    """{group: permutation p} maximizing sum_i corr[i, p[i]] for each group's (summed) correlation matrix,
    and the total of the matched correlations."""
    perms, total = {}, 0.0
    for group, corr in correlations.items():
        rows, cols = linear_sum_assignment(corr.numpy(), maximize=True)
        perms[group] = torch.as_tensor(cols, dtype=torch.long)
        total += float(corr[rows, cols].sum())
    return perms, total
