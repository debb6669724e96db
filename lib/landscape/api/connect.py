"""landscape.interpolate: loss and accuracy along the straight line between two networks' weights, and the
barrier on it (linear mode connectivity, Frankle et al. 2020).

    line = landscape.interpolate(model_a, model_b, (x, y), n=25, test_data=(x_test, y_test))
    line.t, line.train_loss, line.test_acc     # numpy arrays over t = 0 (model_a) ... 1 (model_b)
    line.barrier("train_loss")                  # max over t of L(t) - ((1 - t) L(0) + t L(1))

The points are evaluated by api/path_eval.py (evaluate_grid), which a curve, a curve's plane and the
barrier matrix share. In memory it runs on one rank (no collective: under mpirun each rank computes the
whole line); with path= the points are a 1D grid job over t, split across the ranks and resumable.
Both models come back exactly as they were (weights, buffers, modes, device).
"""
import contextlib

from ..errors import ModelError
from ..inputs.first_batch import check_model
from ..inputs.user import state_digest
from ..space.grid import make_grid
from ..space.model_io import qualified_name
from ..space.paths import architecture_mismatch, model_tensors, write_interpolated, write_state
from .loss_path import LossPath
from .path_eval import PathOptions, check_path_options, evaluate_grid, path_identity

__all__ = ["LossPath", "check_named_model", "check_same_architecture", "interpolate", "line_positions"]


def interpolate(model_a, model_b, data, n=25, test_data=None, loss=None, bn="recompute", bn_batches=None,
                batch_size=256, device=None, precision="fp32", path=None, overwrite=False, settings=None, job=None,
                progress_secs=10.0):
    """Loss (and accuracy, where it applies) of the weights w(t) = (1 - t) w_a + t w_b at n evenly spaced t
    from 0 to 1, evaluated in eval mode with model_a's module. Every floating entry of the state moves
    (parameters and float buffers); integer buffers (num_batches_tracked) are model_a's.

    data / test_data: an (inputs, targets) pair of tensors (inputs may be a dict: keyword arguments), cut
    into batches of batch_size, or a re-iterable of (inputs, targets) batches (a DataLoader) used as it
    is. loss: None (cross-entropy), 'mse', 'causal_lm' or loss(outputs, targets) -> batch mean, as for
    landscape.surface. bn: 'recompute' resets the running statistics of every BatchNorm layer (and
    InstanceNorm tracking them) at each t, ends included, and estimates them again from the first
    bn_batches batches of `data` (all of them when None), drawn once so every t sees the same ones (a
    DataLoader's are held in memory meanwhile); 'keep' interpolates them like any other buffer. device:
    None (where model_a is), 'auto', 'cpu', 'cuda' or a torch.device.

    path: None computes the line in memory, on one rank (under mpirun each rank computes all of it).
    A file name runs the n points as a 1D grid job over t (landscape.surface's results layout, its
    xcoordinates t), split across the ranks of an mpirun, committed as it goes and resumed by the same
    call; overwrite, settings (what identifies the inputs; default: hashes of both models, the data and
    the loss), job (JobOptions) and progress_secs as for surface. Returns a LossPath.
    """
    check_path_options(n, bn, bn_batches, batch_size)
    check_same_architecture(model_a, model_b)
    grid = make_grid((0.0, 1.0, n))
    options = PathOptions(data, test_data, loss, bn, bn_batches, batch_size, device, precision, path, overwrite,
                          settings, job, progress_secs)
    identity = path_identity(grid, options, lambda: dict(
        line="linear", model=qualified_name(model_a), model_sha256=state_digest(model_a),
        model_b_sha256=state_digest(model_b)))
    walked = evaluate_grid(model_a, grid, lambda device: line_positions(model_a, model_b, device),
                           lambda t: f"at t = {t:g} of the line", identity, options)
    return walked.loss_path()


def check_named_model(model, name):
    """check_model, its refusal naming the model ("model_a: ...")."""
    try:
        check_model(model)
    except ModelError as e:
        raise ModelError(f"{name}: {e}") from None


def check_same_architecture(model_a, model_b):
    """Both are finite nn.Modules whose weights can lie on one line: the same modules and state entries."""
    for name, model in (("model_a", model_a), ("model_b", model_b)):
        check_named_model(model, name)
    found = architecture_mismatch(model_a, model_b)
    if found is not None:
        raise ModelError(f"model_a ({qualified_name(model_a)}) and model_b ({qualified_name(model_b)}) differ, so "
                         f"no line joins their weights: {found}")


@contextlib.contextmanager
def line_positions(model_a, model_b, device):
    """move_to(t): sets model_a's state to w(t) = (1 - t) w_a + t w_b. Both ends are copied first (model_b's
    onto the device, in model_a's dtypes), and model_a's own values are written back when the block ends."""
    live = model_tensors(model_a)  # sharing the model's storage: writing them moves the model
    start = {name: t.clone() for name, t in live.items()}
    end = {name: t.to(device=device, dtype=start[name].dtype, copy=True) for name, t in model_tensors(model_b).items()}
    try:
        yield lambda t: write_interpolated(live, start, end, t)
    finally:
        write_state(live, start)
