"""What both benchmarked loops share: model, images, directions, grid points, landscape's loop, timing."""
import copy
import resource
import time
import warnings

import numpy as np
import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from landscape.inputs.cifar import write_cifar
from landscape.inputs.data import load_dataset
from landscape.inputs.models import get_model
from landscape.inputs.synthetic import synthetic_cifar
from landscape.job.batch import auto_batch_size
from landscape.space.directions import named_entries, normalize_direction, random_direction
from landscape.space.evaluate import device_layout, evaluate
from landscape.space.losses import crossentropy_sum
from landscape.space.flatparams import PointSetter

GRID_SIDE = 51


class SmallCNN(nn.Sequential):
    """Two strided convs (8 and 16 channels): a forward costs less than decoding the images."""

    def __init__(self, num_classes=10):
        super().__init__(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, num_classes))


def make_model(name, seed=0):
    torch.manual_seed(seed)
    return (SmallCNN() if name == "smallcnn" else get_model(name)).eval()


def write_images(root, n_train, n_test=100, seed=0):
    """Generated images in the official CIFAR-10 pickle layout, so both loops read the same files."""
    train_x, train_y, test_x, test_y = synthetic_cifar(n_train, n_test, 10, seed)
    write_cifar(root, "cifar10", train_x, train_y, test_x, test_y)


def load_landscape_data(root):
    with warnings.catch_warnings():  # the MD5 warning for non-official files is expected here
        warnings.simplefilter("ignore")
        train, _ = load_dataset("cifar10", root)
    return train


def subset(data, n):
    return type(data)(data.x[:n], data.y[:n], data.num_classes)


def filter_directions(model, seed=1):
    entries = [t for _, t in named_entries(model, "weights")]
    return [normalize_direction(random_direction(entries, seed + k), entries, "filter", "biasbn") for k in (0, 1)]


def grid_points(count):
    """count (a, b) points spread over the default 51x51 grid on [-1, 1]^2 (flat index = iy*51 + ix)."""
    coords = np.linspace(-1.0, 1.0, GRID_SIDE)
    flat = np.linspace(0, GRID_SIDE * GRID_SIDE - 1, count + 2).round().astype(int)[1:-1]
    return [(float(coords[i % GRID_SIDE]), float(coords[i // GRID_SIDE])) for i in flat]


def flops_per_image(model, x):
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(x[:4])
    return counter.get_total_flops() / 4


def moved(model, dirs, data, device, channels_last=True):
    """The surface driver's setup (cli/context.py): a model copy on the device, its PointSetter, and
    the images moved once and stored by device_layout (channels_last); NCHW when channels_last=False."""
    model = copy.deepcopy(model).to(device)
    names, entries = zip(*named_entries(model, "weights"))
    setter = PointSetter(model, list(names), list(entries), dirs[0], dirs[1])
    x = data.x.to(device)
    return model, setter, (device_layout(x) if channels_last else x), data.y.to(device)


def landscape_path(model, dirs, data, device, batch="auto", precision="fp32", channels_last=True):
    """(point(a, b) -> (loss, acc), batch): per point what plot_surface does, PointSetter.set then evaluate.

    batch="auto" is --batch_size auto: the library's auto_batch_size picks it (timed on CPU)."""
    model, setter, x, y = moved(model, dirs, data, device, channels_last)
    size = auto_batch_size(model, x, precision) if batch == "auto" else batch

    def point(a, b):
        setter.set(a, b)
        return evaluate(model, x, y, crossentropy_sum, size, precision)
    return point, size


def cpu_seconds():
    """CPU time of this process and its reaped children (the DataLoader workers), all threads."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def time_interleaved(paths, points):
    """({name: [s per point]}, {name: [CPU s per point]}, {name: [(loss, acc)]}).

    Paths take turns point by point (order reversed every other point), so load from other processes
    hits them alike; points[0] is a warm-up and not recorded."""
    times, cpu, values = ({n: [] for n in paths} for _ in range(3))
    names = list(paths)
    for k, (a, b) in enumerate(points):
        for name in (names if k % 2 == 0 else names[::-1]):
            start, start_cpu = time.perf_counter(), cpu_seconds()
            result = paths[name](a, b)
            elapsed, used = time.perf_counter() - start, cpu_seconds() - start_cpu
            if k > 0:
                times[name].append(elapsed)
                cpu[name].append(used)
                values[name].append(result)
    return times, cpu, values


def max_rel_diff(values, name, other):
    """(max relative loss difference, max accuracy difference in points) of path name vs other."""
    losses = [abs(u[0] - v[0]) / abs(v[0]) for u, v in zip(values[name], values[other])]
    accs = [abs(u[1] - v[1]) for u, v in zip(values[name], values[other])]
    return max(losses), max(accs)
