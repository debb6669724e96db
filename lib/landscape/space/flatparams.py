"""Move a model to theta0 + a*dx + b*dy with one fused update of a flat buffer.

The model's movable tensors (float parameters, and BN statistics for 'states' directions)
are re-bound as views into one flat buffer, so setting a grid point is two vector ops and
no per-tensor Python loop or copy.
"""
import numpy as np
import torch

from .directions import is_movable


def _owner(model, name):
    module_name, _, attr = name.rpartition(".")
    return (model.get_submodule(module_name) if module_name else model), attr


def bind_flat(model, names):
    """Re-bind the named tensors of `model` as views of one new flat buffer; return the buffer.
    The tensors they replace are left untouched (unbind_flat puts them back). A tied Parameter is one
    object, so setting its .data reaches every module holding it; a buffer shared by several modules
    is re-bound in each of them, so a tensor listed once moves everywhere it is used."""
    tensors = [_resolve(model, n) for n in names]
    flat = torch.cat([t.detach().reshape(-1) for t in tensors]).clone()
    holders = _buffer_holders(model)
    offset = 0
    for t in tensors:
        view = flat[offset:offset + t.numel()].view_as(t)
        offset += t.numel()
        _rebind(t, view, holders)
    return flat


def unbind_flat(model, names, originals):
    """Put the tensors that bind_flat replaced back in place, values and storage as they were."""
    holders = _buffer_holders(model)
    for name, original in zip(names, originals):
        _rebind(_resolve(model, name), original, holders)


def _rebind(current, tensor, holders):
    """Make the Parameter `current` hold `tensor`, or put `tensor` where the buffer `current` is held."""
    if isinstance(current, torch.nn.Parameter):
        current.data = tensor
    else:
        for module, attr in holders[id(current)]:
            module._buffers[attr] = tensor


def _buffer_holders(model):
    """{id(buffer): [(module, attribute) holding it]}: every place of every buffer, shared ones included."""
    holders = {}
    for module in model.modules():  # each module once; a buffer registered in two modules is found twice
        for attr, buffer in module._buffers.items():
            if buffer is not None:
                holders.setdefault(id(buffer), []).append((module, attr))
    return holders


def _resolve(model, name):
    module, attr = _owner(model, name)
    return getattr(module, attr)


class PointSetter:
    """Holds theta0, dx and dy as flat vectors over the movable entries of a direction."""

    def __init__(self, model, entry_names, entries, xdir, ydir=None):
        keep = [i for i, t in enumerate(entries) if is_movable(t)]
        names = [entry_names[i] for i in keep]
        self.model, self.names = model, names
        self.originals = [_resolve(model, n).data for n in names]
        self.flat = bind_flat(model, names)
        device, dtype = self.flat.device, self.flat.dtype
        self.theta0 = self.flat.clone()
        self.dx = _flat_of([xdir[i] for i in keep], device, dtype)
        self.dy = None if ydir is None else _flat_of([ydir[i] for i in keep], device, dtype)

    @torch.no_grad()
    def set(self, a, b=0.0):
        torch.add(self.theta0, self.dx, alpha=a, out=self.flat)
        if self.dy is not None:
            self.flat.add_(self.dy, alpha=b)

    @torch.no_grad()
    def overflowing_corner(self, xs, ys=None):
        """The first grid corner (a, b) where theta0 + a*dx + b*dy leaves the range of the parameters' dtype
        (an entry goes non-finite where theta0 and the directions are finite), or None. The map is linear in
        (a, b), so every entry is largest at a corner: xs, ys are the axes, only their ends matter."""
        limit = torch.finfo(self.flat.dtype).max
        finite = torch.isfinite(self.theta0) & torch.isfinite(self.dx)
        if self.dy is not None:
            finite &= torch.isfinite(self.dy)
        corners = [(float(a), float(b)) for a in (xs[0], xs[-1]) for b in ((0.0,) if ys is None else (ys[0], ys[-1]))]
        try:
            for a, b in corners:
                if abs(a) > limit or abs(b) > limit:  # not even a number of this dtype: torch refuses it
                    return a, b
                self.set(a, b)
                if not bool(torch.isfinite(self.flat[finite]).all()):
                    return a, b
            return None
        finally:
            self.flat.copy_(self.theta0)

    def restore(self):
        """Give the model back its own tensors, holding exactly theta0 (the flat buffer is dropped)."""
        unbind_flat(self.model, self.names, self.originals)


def _flat_of(tensors, device, dtype):
    return torch.cat([torch.as_tensor(t).reshape(-1) for t in tensors]).to(device=device, dtype=dtype)


def split_entries(vector, shapes):
    """A flat vector cut back into one array per entry, with the entries' shapes."""
    sizes = [int(np.prod(shape)) for shape in shapes]
    return [chunk.reshape(shape).cpu().numpy() for chunk, shape in zip(torch.split(vector, sizes), shapes)]
