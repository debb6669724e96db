"""An independent truth for surfaces: per-parameter loops, a fresh model per point, plain PyTorch loss."""
import h5py
import numpy as np
import torch
import torch.nn.functional as F

from tiny import make_data, make_model


def reference_direction_file(path, model, seed, two_d=True, scale=0.5):
    """A direction file written like the reference code does: groups of '0'..'n-1', no attributes."""
    g = torch.Generator().manual_seed(seed)
    with h5py.File(path, "w") as f:
        for group in ("xdirection", "ydirection") if two_d else ("xdirection",):
            grp = f.create_group(group)
            for i, p in enumerate(model.parameters()):
                grp.create_dataset(str(i), data=(scale * torch.randn(p.shape, generator=g)).numpy())


def brute_force_surface(state_dict, dir_path, xs, ys, n_train=48):
    (x, y), _ = make_data(n_train=n_train)
    with h5py.File(dir_path, "r") as f:
        dx = [torch.from_numpy(f["xdirection"][str(i)][()]) for i in range(len(f["xdirection"]))]
        dy = [torch.from_numpy(f["ydirection"][str(i)][()]) for i in range(len(f["ydirection"]))] \
            if "ydirection" in f else None
    loss = np.zeros((len(ys), len(xs)))
    acc = np.zeros_like(loss)
    for j, b in enumerate(ys):
        for i, a in enumerate(xs):
            model = make_model()
            model.load_state_dict(state_dict)
            model.eval()
            with torch.no_grad():
                for k, p in enumerate(model.parameters()):
                    p.add_(a * dx[k] + (b * dy[k] if dy is not None else 0))
                out = model(x)
            loss[j, i] = F.cross_entropy(out, y).item()
            acc[j, i] = 100.0 * (out.argmax(1) == y).float().mean().item()
    return loss, acc
