"""The reference's per-point evaluation loop (tomgoldstein/loss-landscape), reimplemented to time it.

What one grid point costs there, and what this module repeats:
- plot_surface.crunch calls net_plotter.set_weights, then evaluation.eval_loss, per point.
- set_weights computes d0*a + d1*b per parameter from the direction file's h5py datasets
  (so numpy reads them from the HDF5 file at every point) and re-binds `p.data = w + change`,
  where `w` are the parameter tensors taken before the net was moved to the GPU.
- eval_loss calls net.cuda() (a host-to-device copy of every re-bound parameter) and net.eval(),
  then runs a DataLoader that decodes every image through PIL, ToTensor and Normalize, batch 128,
  SubsetRandomSampler with shuffle=False, num_workers=--threads (default 2).
- Per batch: loss.item() (one host sync); correct is summed as a tensor and read once per point.
"""
import copy
import os

import numpy as np
import torch
import torch.nn as nn
import torchvision
from torch.utils.data import DataLoader, SubsetRandomSampler
from torchvision import transforms

# dataloader.py's constants, pixels scaled to [0, 1] first.
CIFAR10_MEAN = [v / 255.0 for v in (125.3, 123.0, 113.9)]
CIFAR10_STD = [v / 255.0 for v in (63.0, 62.1, 66.7)]


def cifar10_dataset(root, md5_of, train=True):
    """torchvision's CIFAR10 over root with the reference's transform.

    torchvision checks each file against the official MD5 table; generated files in the same
    layout pass that unchanged code path once the table holds their own sums (md5_of(path)).
    """
    folder = os.path.join(root, torchvision.datasets.CIFAR10.base_folder)

    class LocalCIFAR10(torchvision.datasets.CIFAR10):
        train_list = [[name, md5_of(os.path.join(folder, name))] for name, _ in torchvision.datasets.CIFAR10.train_list]
        test_list = [[name, md5_of(os.path.join(folder, name))] for name, _ in torchvision.datasets.CIFAR10.test_list]
        meta = dict(torchvision.datasets.CIFAR10.meta,
                    md5=md5_of(os.path.join(folder, torchvision.datasets.CIFAR10.meta["filename"])))

    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize(CIFAR10_MEAN, CIFAR10_STD)])
    return LocalCIFAR10(root=root, train=train, download=False, transform=transform)


def reference_loader(dataset, batch_size=128, threads=2, seed=0):
    """dataloader.load_dataset's train loader (data_split 1): every sample, in a random order."""
    sampler = SubsetRandomSampler(torch.arange(len(dataset)), generator=torch.Generator().manual_seed(seed))
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, shuffle=False, num_workers=threads)


def get_weights(net):
    return [p.data for p in net.parameters()]


def set_weights(net, weights, directions, step):
    """net_plotter.set_weights for a 2D direction: one new tensor per parameter at every point.

    step holds numpy scalars, as the reference's coordinates do; give np.float32 to keep the
    float32 arithmetic the reference had under numpy 1.x (numpy 2 would promote to float64).
    """
    dx, dy = directions
    changes = [d0 * step[0] + d1 * step[1] for d0, d1 in zip(dx, dy)]
    for p, w, d in zip(net.parameters(), weights, changes):
        p.data = w + torch.Tensor(d).type(type(w))


def eval_loss(net, loader, use_cuda=False):
    """evaluation.eval_loss with CrossEntropyLoss: (mean loss, accuracy in percent)."""
    criterion = nn.CrossEntropyLoss()
    correct, total_loss, total = 0, 0.0, 0
    if use_cuda:
        net.cuda()
    net.eval()
    with torch.no_grad():
        for inputs, targets in loader:
            batch_size = inputs.size(0)
            total += batch_size
            if use_cuda:
                inputs, targets = inputs.cuda(), targets.cuda()
            outputs = net(inputs)
            loss = criterion(outputs, targets)
            total_loss += loss.item() * batch_size
            _, predicted = outputs.max(1)
            correct += predicted.eq(targets).sum()
    return total_loss / total, float(100.0 * correct / total)


def evaluate_point(net, weights, directions, step, loader, use_cuda=False):
    """One iteration of crunch's loop, without its MPI reduce and HDF5 write."""
    set_weights(net, weights, directions, step)
    return eval_loss(net, loader, use_cuda)


def reference_path(model, dirs, dataset, threads, h5_path, use_cuda=False):
    """(point(a, b) -> (loss, acc), how the directions are held): crunch's work for one point."""
    net = copy.deepcopy(model).cpu()
    weights = get_weights(net)  # taken on the CPU, as crunch does before eval_loss's net.cuda()
    lists, handle, how = direction_lists(dirs[0], dirs[1], h5_path)
    loader = reference_loader(dataset, batch_size=128, threads=threads)

    def point(a, b):
        return evaluate_point(net, weights, lists, (np.float32(a), np.float32(b)), loader, use_cuda)
    point.keep_open = handle  # the HDF5 file stays open as long as the point function lives
    return point, how


def direction_lists(xdir, ydir, h5_path):
    """The directions as the reference holds them: h5py datasets (read from disk on every use).

    Falls back to in-memory float32 arrays where h5py is missing, which flatters the reference.
    Returns ((xlist, ylist), handle to keep open, description).
    """
    arrays = [[np.asarray(t, dtype=np.float32) for t in d] for d in (xdir, ydir)]
    try:
        import h5py
    except ImportError:
        return tuple(arrays), None, "numpy arrays in memory (h5py missing)"
    with h5py.File(h5_path, "w") as f:
        for group, tensors in zip(("xdirection", "ydirection"), arrays):
            g = f.create_group(group)
            for i, t in enumerate(tensors):
                g.create_dataset(str(i), data=t)
    f = h5py.File(h5_path, "r")
    lists = tuple([f[group][str(i)] for i in range(len(f[group]))] for group in ("xdirection", "ydirection"))
    return lists, f, "h5py datasets, read at every point"
