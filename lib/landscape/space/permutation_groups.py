"""The tags the permutation tracer puts on traced values, and the groups of hidden units (pure).

A traced value is Hidden (it carries a group's units on one axis), Opaque (computed from hidden units by
ops the tracer could not follow: those units are refused unless they stay put anyway), or None (nothing
permuted: the input, a parameter used directly, a shape, what only such values made).
"""
from dataclasses import dataclass

from ..errors import AlignmentError


@dataclass(frozen=True)
class Hidden:
    """A traced value that carries a group's units: on `axis` of a tensor of `ndim` dimensions (axis -1
    and ndim None: the last axis of a tensor of unknown rank). flat: channels flattened into blocks."""
    group: int
    axis: int
    ndim: int = None
    flat: bool = False


@dataclass(frozen=True)
class Opaque:
    """A value computed from the units of `groups` (frozenset of group ids) by ops the tracer could not
    follow. free: by parameter-free ops only (log_softmax of the logits), so that if it reaches the
    outputs, those units are the outputs' own and stay put."""
    groups: frozenset
    free: bool


def channel_ndim(tag):
    """The rank of a tensor whose units are on dimension 1, or None where they are elsewhere."""
    if tag.ndim is None:
        return 2  # a Linear's output of unknown rank, taken to be (batch, units)
    return tag.ndim if tag.axis == 1 else None


def on_last_axis(tag):
    return tag.ndim is None or tag.axis == tag.ndim - 1


def compatible(one, other):
    """Whether two hidden values put their units on the same axis, so an elementwise op pairs them."""
    if one.flat != other.flat:
        return False
    if one.ndim is None or other.ndim is None:
        return on_last_axis(one) and on_last_axis(other)
    return (one.axis, one.ndim) == (other.axis, other.ndim)


class Groups:
    """Union-find over the groups the producers start; the smallest id (the earliest producer) names a set."""

    def __init__(self):
        self.parent, self.size, self.producer, self.fixed, self.blockers = [], [], [], [], []
        self.ties = []  # (group, groups): the group stays put where any of those does

    def new(self, producer, size):
        self.parent.append(len(self.parent))
        self.size.append(size)
        self.producer.append(producer)
        self.fixed.append(False)
        self.blockers.append([])
        return len(self.parent) - 1

    def find(self, g):
        while self.parent[g] != g:
            self.parent[g] = self.parent[self.parent[g]]
            g = self.parent[g]
        return g

    def union(self, g, h, where):
        g, h = sorted((self.find(g), self.find(h)))
        if g == h:
            return g
        if self.size[g] != self.size[h]:
            raise AlignmentError(f"{where} joins the {self.size[g]} units of '{self.producer[g]}' with the "
                                 f"{self.size[h]} units of '{self.producer[h]}': they cannot share a permutation")
        self.parent[h] = g
        self.fixed[g] = self.fixed[g] or self.fixed[h]
        self.blockers[g] += self.blockers[h]
        return g

    def fix(self, g):
        self.fixed[self.find(g)] = True

    def block(self, g, reason):
        self.blockers[self.find(g)].append(reason)

    def tie(self, g, others):
        self.ties.append((g, others))

    def settle_ties(self):
        """Fix every tied group whose partners are fixed, until nothing changes."""
        changed = True
        while changed:
            changed = False
            for g, others in self.ties:
                if not self.fixed[self.find(g)] and any(self.fixed[self.find(o)] for o in others):
                    self.fix(g)
                    changed = True
