"""What landscape.barrier_matrix returns: the points of every line between the models, the barrier matrices
read from them, their minimum spanning trees, and the CSV of the pairwise barriers."""
import os
from dataclasses import dataclass

import numpy as np

from ..errors import ChoiceError
from ..plot.output import write_text
from ..space.minima import minimax_heights, spanning_tree
from ..space.paths import BARRIER_KINDS, check_barrier_kind
from .loss_path import HIGHER_IS_BETTER, PathQuantities


@dataclass(frozen=True)
class SpanningTree:
    """A minimum spanning tree of one barrier matrix. edges: (i, j, height) with i < j, ascending; fewer
    than len(names) - 1 of them where unfinished (NaN) barriers leave some models apart (spans False)."""
    names: tuple
    edges: tuple

    @property
    def spans(self):
        return len(self.edges) == len(self.names) - 1

    @property
    def max_edge(self):
        """The tree's highest edge (i, j, height): the barrier that the best chains of pairwise paths through
        the other minima must cross to join them all (the highest minimax barrier); None without edges."""
        return self.edges[-1] if self.edges else None

    def minimax(self):
        """(models, models): the lowest barrier on any chain of pairwise paths between two models (inf
        between models the tree does not join)."""
        return minimax_heights(len(self.names), self.edges)

    def describe(self, digits=4):
        """'a–b 0.12, b–c 0.5; highest b–c 0.5' in one line."""
        if not self.edges:
            return "no edges (no barrier is finished)"
        text = ", ".join(f"{self._edge(e, digits)}" for e in self.edges)
        apart = "" if self.spans else f" (a forest: {len(self.names) - 1 - len(self.edges)} edge(s) unfinished)"
        return f"{text}; highest {self._edge(self.max_edge, digits)}{apart}"

    def _edge(self, edge, digits):
        i, j, height = edge
        return f"{self.names[i]}–{self.names[j]} {height:.{digits}g}"


@dataclass(frozen=True, eq=False)
class BarrierMatrix:
    """Every line of a barrier matrix and its points. names: the models; lines: (i, j, aligned) per row of
    `values` and `done`, from model i to model j (aligned: to align(model i, model j)); t: the n points
    from 0 to 1; values: {quantity: (lines, n) array} (interpolate's quantities, NaN where not done);
    kind: the barrier kind of the files written and the defaults below; path, csv, figures: the files
    written (path None for a temporary results file)."""
    names: tuple
    lines: tuple
    t: np.ndarray
    values: dict
    done: np.ndarray
    bn: str
    bn_batches: int
    kind: str = "linear"
    path: str = None
    csv: str = None
    figures: tuple = ()

    @property
    def complete(self):
        return bool(self.done.all())

    @property
    def aligned(self):
        """Whether the matrix holds lines after alignment too."""
        return any(line[2] for line in self.lines)

    @property
    def quantities(self):
        return tuple(self.values)

    def row(self, a, b, aligned=False):
        """The row of the line between two models (indices or names), in either order."""
        i, j = sorted((self._index(a), self._index(b)))
        if i == j:
            raise ChoiceError(f"models {a!r} and {b!r} are one model: no line joins it to itself")
        if (i, j, bool(aligned)) not in self.lines:
            raise ChoiceError("this matrix holds no lines after alignment: give align= to compute them")
        return self.lines.index((i, j, bool(aligned)))

    def path_of(self, a, b, aligned=False):
        """The LossPath of the line between two models (indices or names), from the one listed first in
        names to the other (aligned: to the other aligned to it); its barrier() is interpolate's."""
        row = self.row(a, b, aligned)
        settings = PathQuantities(self.bn, self.bn_batches, "train_acc" in self.values, "test_loss" in self.values)
        return settings.path(self.t, {name: v[row] for name, v in self.values.items()}, self.done[row], self.path)

    def matrix(self, name="train_loss", kind=None, aligned=False):
        """(models, models): the barrier of `name` on the line between every two models (LossPath.barrier:
        a rise in loss, a drop in accuracy), mirrored, 0 on the diagonal, NaN where a line is unfinished."""
        kind = kind or self.kind
        check_barrier_kind(kind)
        if aligned and not self.aligned:
            raise ChoiceError("this matrix holds no lines after alignment: give align= to compute them")
        out = np.zeros((len(self.names),) * 2)
        for row, (i, j, on) in enumerate(self.lines):
            if on == bool(aligned):
                path = self.path_of(i, j, aligned)
                out[i, j] = out[j, i] = path.barrier(name, kind) if path.complete else np.nan
        return out

    def tree(self, name="train_loss", kind=None, aligned=False):
        """The minimum spanning tree of matrix(name, kind, aligned) (Draxler et al. 2018)."""
        return SpanningTree(self.names, spanning_tree(self.matrix(name, kind, aligned)))

    def _index(self, model):
        if isinstance(model, str):
            if model not in self.names:
                raise ChoiceError(f"no model named {model!r}; the models are {', '.join(self.names)}")
            return self.names.index(model)
        if isinstance(model, bool) or not isinstance(model, (int, np.integer)) or not 0 <= model < len(self.names):
            raise ChoiceError(f"model {model!r}: give a name or an index from 0 to {len(self.names) - 1}")
        return int(model)


def barriers_csv(matrix):
    """One row per line: the two models, whether b was aligned to a, how many points are done, then the
    barrier of every quantity of both kinds (empty where the line is unfinished)."""
    names = [name for name in HIGHER_IS_BETTER if name in matrix.values]
    columns = [f"{name}_{kind}" for name in names for kind in BARRIER_KINDS]
    lines = [",".join(["model_a", "model_b", "aligned", "points_done", *columns])]
    for i, j, aligned in matrix.lines:
        path = matrix.path_of(i, j, aligned)
        cells = [path.barrier(name, kind) if path.complete else np.nan for name in names for kind in BARRIER_KINDS]
        lines.append(",".join([_csv_text(matrix.names[i]), _csv_text(matrix.names[j]), str(int(aligned)),
                               str(int(path.done.sum())), *(repr(v) if np.isfinite(v) else "" for v in cells)]))
    return "\n".join(lines) + "\n"


def _csv_text(text):
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n') else text


def write_outputs(matrix, csv, figure):
    """Rank 0: the CSV and the figure, at the paths given or next to the results file."""
    from ..plot.barriers import save_barrier_figure  # matplotlib only once something is drawn
    stem = None if matrix.path is None else os.path.splitext(matrix.path)[0]
    csv = csv or (stem and f"{stem}_barriers.csv")
    figure = figure or (stem and f"{stem}_barriers")
    if csv:
        write_text(csv, barriers_csv(matrix))
    figures = ()
    if figure:
        figure = str(figure)[:-4] if str(figure).endswith(".png") else str(figure)
        rows, labels = figure_rows(matrix)
        figures = tuple(save_barrier_figure(figure, list(matrix.names), rows, labels))
    return BarrierMatrix(**{**matrix.__dict__, "csv": csv, "figures": figures})


def figure_rows(matrix):
    """One row per loss (train, then test), a panel per matrix: before, and after alignment."""
    rows, labels = [], []
    for name in ("train_loss", "test_loss"):
        if name not in matrix.values:
            continue
        row = []
        for aligned in (False, True)[:1 + matrix.aligned]:
            tree = matrix.tree(name, aligned=aligned)
            top = tree.max_edge
            summit = "" if top is None else \
                f"\ntree's highest edge {matrix.names[top[0]]}–{matrix.names[top[1]]}: {top[2]:.3g}"
            when = ("after" if aligned else "before") + " alignment" if matrix.aligned else ""
            values = matrix.matrix(name, aligned=aligned)
            unfinished = int(np.isnan(values[np.triu_indices(len(values), 1)]).sum())
            summit += f"\n{unfinished} line(s) unfinished" if unfinished else ""
            title = f"{name} barrier ({matrix.kind}){', ' if when else ''}{when}{summit}"
            row.append((title, values, tree.edges))
        rows.append(row)
        labels.append(f"{name} barrier ({matrix.kind})")
    return rows, labels
