"""landscape.sharpness_table: every measure of every checkpoint, spread over the MPI ranks and resumable.

Design: the table is a 2D "grid" of item indices, x = the column (train/test loss and error, then each
measure), y = the checkpoint, holding one quantity 'table_value' (files/results.py kind 'table'). Each
grid point is one work item, computed by the existing GridJob machinery (run_job): rank 0 hands items
out, commits them with their checksums and done bits, and a rerun with the same settings computes only
the items not yet done. Measures' settings are the job's settings (compared on resume) and also the
value dataset's 'measures' attribute.
"""
import json
import os
from dataclasses import dataclass

import numpy as np

from ..errors import ChoiceError
from ..files.results import Layout, jsonable
from ..inputs.first_batch import check_data
from ..inputs.user import data_digest, loss_label, state_digest
from ..job.mpi import abort_on_uncaught, init_world, pick_device, rank0_first
from ..job.run import GridJob, JobOptions
from ..plot.output import write_text
from ..plot.table import kendall_tau, save_gap_figure
from ..space.grid import make_grid
from .session import ItemsCall, provenance, run_to_result
from .table_measures import BASE_COLUMNS, loss_and_error, measure_specs, measure_value, model_of, options_of

TABLE_DIR_FILE = "(sharpness table: no directions)"
GAPS = ("error", "loss")


@dataclass(frozen=True)
class Table:
    """values[i, j]: column j of checkpoint i (NaN where not done; done says which are). gap: test minus
    train error (or loss, by `gap`); taus: {measure: Kendall's τ against the gap}; path, csv, figures: the
    files written (path None for a temporary results file)."""
    checkpoints: tuple
    columns: tuple
    values: np.ndarray
    done: np.ndarray
    gap: np.ndarray
    taus: dict
    measures: tuple
    path: str = None
    csv: str = None
    figures: tuple = ()

    @property
    def complete(self):
        return bool(self.done.all())

    def column(self, name):
        return self.values[:, self.columns.index(name)]


def sharpness_table(checkpoints, data, test_data, loss=None, measures=("max_eig", "trace"), path=None, csv=None,
                    figure=None, gap="error", device="auto", overwrite=False, progress_secs=10.0, job=None):
    """Every measure of every checkpoint, plus its train/test loss and error (a fraction).

    checkpoints: [(name, model or factory)], a factory being a callable of no arguments that builds the
    model (e.g. loads a checkpoint file into a new model): only the rank computing an item builds it.
    data, test_data, loss: as for surface (measures use `data`). measures: see table_measures.py, e.g.
    [dict(kind='sharpness', rho=0.05), dict(kind='sharpness', rho=0.05, measure='average'),
    'pac_bayes_flatness', 'max_eig', 'trace']. path: the HDF5 results file (None: temporary); a rerun with
    the same path and settings resumes it. csv: one row per checkpoint (default <path stem>.csv when path
    is given); figure: the stem of a PNG of each measure against the gap with Kendall's τ (default
    <path stem>_gap when path is given). gap: 'error' or 'loss'. progress_secs: seconds between progress
    lines (items done, rate, ETA). job: JobOptions (stop, commit intervals).
    A resume compares the checkpoint names and each checkpoint's state digest (rank 0 builds every model
    once for it), so a checkpoint file replaced under the same name is refused rather than mixed in.
    """
    names, entries, specs = _checked(checkpoints, measures, gap)
    check_data(data)
    check_data(test_data)
    columns = BASE_COLUMNS + tuple(spec["name"] for spec in specs)
    world = init_world()
    abort_on_uncaught(world)
    target = pick_device(world, device) if isinstance(device, str) else device
    grid = make_grid((0, len(columns) - 1, len(columns)), (0, len(names) - 1, len(names)))
    attrs = dict(columns=json.dumps(columns), checkpoints=json.dumps(names), measures=json.dumps(jsonable(specs)))
    layout = Layout(grid, "table", ("table_value",), dataset_attrs={"table_value": attrs})

    def settings():  # rank 0, once the results file is locked
        return dict(checkpoints=names, checkpoint_sha256=[state_digest(model_of(entry)) for entry in entries],
                    columns=list(columns), measures=jsonable(specs), loss=loss_label(loss),
                    data_sha256=data_digest(data), test_data_sha256=data_digest(test_data))
    call = ItemsCall(world, target, TABLE_DIR_FILE)
    evaluate = _item_evaluator(entries, specs, data, test_data, loss, target, len(columns))
    grid_job = GridJob(None, layout, evaluate, settings, dict(provenance(call, None)), TABLE_DIR_FILE,
                       overwrite, max_chunk=1, progress_secs=progress_secs)
    result = run_to_result(call, path, grid_job, job or JobOptions())
    table = _table(names, columns, specs, result, gap, result.path)
    if table.path is not None or csv or figure:
        table = rank0_first(world, lambda: _write_outputs(table, csv, figure, gap))
    return table


def _checked(checkpoints, measures, gap):
    if gap not in GAPS:
        raise ChoiceError(f"gap={gap!r} is not one of {GAPS}")
    pairs = list(checkpoints)
    if not pairs or any(not isinstance(p, (tuple, list)) or len(p) != 2 for p in pairs):
        raise ChoiceError("checkpoints must be a non-empty list of (name, model or model factory) pairs")
    names = [str(name) for name, _ in pairs]
    if len(set(names)) != len(names):
        raise ChoiceError(f"checkpoint names must be unique; got {names}")
    return names, [entry for _, entry in pairs], measure_specs(measures)


def _item_evaluator(entries, specs, data, test_data, loss, device, width):
    """evaluate_point(flat index) -> (value,): column index % width of checkpoint index // width. A rank
    keeps its last checkpoint's model and loss/error so neighbouring items share them."""
    held = {}

    def model(i):
        if held.get("index") != i:
            held.clear()
            held.update(index=i, model=model_of(entries[i]))
        return held["model"]

    def evaluate_point(index):
        i, j = divmod(int(index), width)
        if j < len(BASE_COLUMNS):
            split = "train" if j < 2 else "test"
            if split not in held or held.get("index") != i:
                held[split] = loss_and_error(model(i), data if split == "train" else test_data, loss, device)
            return (held[split][j % 2],)
        return (measure_value(specs[j - len(BASE_COLUMNS)], model(i), data, loss, device),)
    return evaluate_point


def _table(names, columns, specs, result, gap, path):
    values, done = np.asarray(result.values["table_value"]), np.asarray(result.done["table"]).astype(bool)
    col = {name: values[:, k] for k, name in enumerate(columns)}
    gaps = col[f"test_{gap}"] - col[f"train_{gap}"]
    taus = {spec["name"]: kendall_tau(col[spec["name"]], gaps) for spec in specs}
    return Table(tuple(names), tuple(columns), values, done, gaps, taus, tuple(specs), path)


def _write_outputs(table, csv, figure, gap):
    """Rank 0: the CSV and the figure, at the paths given or next to the results file."""
    stem = None if table.path is None else os.path.splitext(table.path)[0]
    csv = csv or (stem and f"{stem}.csv")
    figure = figure or (stem and f"{stem}_gap")
    if csv:
        write_text(csv, table_csv(table))
    figures = ()
    if figure:
        measures = {spec["name"]: table.column(spec["name"]) for spec in table.measures}
        label = f"generalization gap (test − train {gap})"
        figures = tuple(save_gap_figure(figure, measures, table.gap, label, table.checkpoints))
    return Table(**{**table.__dict__, "csv": csv, "figures": figures})


def table_csv(table):
    """One row per checkpoint: its name, every column, then the error and loss gaps; empty where not done."""
    header = ["checkpoint", *table.columns, "error_gap", "loss_gap"]
    lines = [",".join(header)]
    error_gap = table.column("test_error") - table.column("train_error")
    loss_gap = table.column("test_loss") - table.column("train_loss")
    for i, name in enumerate(table.checkpoints):
        row = [*table.values[i], error_gap[i], loss_gap[i]]
        lines.append(",".join([_csv_text(name)] + [repr(float(v)) if np.isfinite(v) else "" for v in row]))
    return "\n".join(lines) + "\n"


def _csv_text(text):
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n') else text


def measure_options(table):
    """{measure name: its options}, as the results file records them."""
    return {spec["name"]: options_of(spec) for spec in table.measures}
