"""Many minima joined by their pairwise barriers (Draxler et al. 2018): the minimum spanning tree of the
barrier heights, and the minimax barrier it gives between every two minima. Pure functions over a
symmetric matrix of heights.

The tree joining every minimum whose highest edge is lowest is a minimum spanning tree, and the path
between two minima along it is a best chain through the other minima: no chain of pairwise paths from
one to the other crosses a lower highest barrier (the minimax path property).
"""
import numpy as np


def spanning_tree(heights):
    """The edges (i, j, height) with i < j of a minimum spanning tree of the symmetric matrix `heights`
    (its upper triangle is read), ascending by height; a NaN height is no edge, so models it leaves
    apart make a forest (fewer than count - 1 edges). Ties go to the pair that comes first in row order.

    scipy takes a zero as "no edge", and a barrier is often exactly 0: as the tree depends only on the
    order of the heights, scipy is given their ranks 1, 2, ... and the heights are read back."""
    from scipy.sparse.csgraph import minimum_spanning_tree
    heights = np.asarray(heights, dtype=np.float64)
    count = len(heights)
    rows, cols = np.triu_indices(count, 1)
    known = np.isfinite(heights[rows, cols])
    rows, cols = rows[known], cols[known]
    order = np.argsort(heights[rows, cols], kind="stable")
    ranks = np.zeros((count, count))
    ranks[rows[order], cols[order]] = np.arange(1, len(order) + 1)
    tree = minimum_spanning_tree(ranks).tocoo()
    edges = [(int(min(i, j)), int(max(i, j))) for i, j in zip(tree.row, tree.col)]
    return tuple(sorted(((i, j, float(heights[i, j])) for i, j in edges), key=lambda e: (ranks[e[0], e[1]])))


def minimax_heights(count, edges):
    """(count, count): for every two of `count` minima, the highest edge on the path between them through
    the tree `edges` (i, j, height): the lowest barrier any chain of pairwise paths between them must cross.
    0 on the diagonal; inf between minima the edges do not join."""
    neighbours = [[] for _ in range(count)]
    for i, j, height in edges:
        neighbours[i].append((j, height))
        neighbours[j].append((i, height))
    out = np.full((count, count), np.inf)
    for start in range(count):
        out[start, start] = 0.0
        stack = [start]
        while stack:  # a tree: each minimum is reached once, by the only path there is
            here = stack.pop()
            for there, height in neighbours[here]:
                if out[start, there] == np.inf:
                    out[start, there] = max(out[start, here], height)
                    stack.append(there)
    return out
