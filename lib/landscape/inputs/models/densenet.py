"""DenseNet-BC for 32x32 inputs, laid out like the paper's reference code.

Module names (conv1, dense1..4, trans1..3, bn, linear; bn1/conv1/bn2/conv2 inside a layer) set the
state_dict keys, so they follow the reference for its checkpoints to load unchanged.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...errors import ModelError


class DenseLayer(nn.Module):
    """BN-ReLU-1x1 conv to 4g channels, BN-ReLU-3x3 conv to g channels, concatenated onto the input."""

    def __init__(self, in_planes, growth_rate):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, 4 * growth_rate, kernel_size=1, bias=False)
        self.bn2 = nn.BatchNorm2d(4 * growth_rate)
        self.conv2 = nn.Conv2d(4 * growth_rate, growth_rate, kernel_size=3, padding=1, bias=False)

    def forward(self, x):
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        return torch.cat([out, x], 1)  # new features first, as in the reference


class Transition(nn.Module):
    """BN-ReLU-1x1 conv to fewer channels, then 2x2 average pooling."""

    def __init__(self, in_planes, out_planes):
        super().__init__()
        self.bn = nn.BatchNorm2d(in_planes)
        self.conv = nn.Conv2d(in_planes, out_planes, kernel_size=1, bias=False)

    def forward(self, x):
        return F.avg_pool2d(self.conv(F.relu(self.bn(x))), 2)


def _dense_block(in_planes, num_layers, growth_rate):
    layers = [DenseLayer(in_planes + i * growth_rate, growth_rate) for i in range(num_layers)]
    return nn.Sequential(*layers), in_planes + num_layers * growth_rate


class DenseNet(nn.Module):
    def __init__(self, layers_per_block, growth_rate, reduction=0.5, num_classes=10):
        super().__init__()
        planes = 2 * growth_rate
        self.conv1 = nn.Conv2d(3, planes, kernel_size=3, padding=1, bias=False)
        self.dense1, planes = _dense_block(planes, layers_per_block[0], growth_rate)
        self.trans1, planes = self._transition(planes, reduction)
        self.dense2, planes = _dense_block(planes, layers_per_block[1], growth_rate)
        self.trans2, planes = self._transition(planes, reduction)
        self.dense3, planes = _dense_block(planes, layers_per_block[2], growth_rate)
        self.trans3, planes = self._transition(planes, reduction)
        self.dense4, planes = _dense_block(planes, layers_per_block[3], growth_rate)
        self.bn = nn.BatchNorm2d(planes)
        self.linear = nn.Linear(planes, num_classes)

    @staticmethod
    def _transition(in_planes, reduction):
        out_planes = int(math.floor(in_planes * reduction))
        return Transition(in_planes, out_planes), out_planes

    def forward(self, x):
        out = self.conv1(x)
        out = self.trans1(self.dense1(out))
        out = self.trans2(self.dense2(out))
        out = self.trans3(self.dense3(out))
        out = F.avg_pool2d(F.relu(self.bn(self.dense4(out))), 4)  # 4x4 maps for 32x32 inputs
        return self.linear(out.flatten(1))


# (layers per dense block, growth rate)
LAYOUTS = {
    "densenet121": ((6, 12, 24, 16), 32),
    "densenet161": ((6, 12, 36, 24), 48),
    "densenet169": ((6, 12, 32, 32), 32),
    "densenet201": ((6, 12, 48, 32), 32),
    "densenet_cifar": ((6, 12, 24, 16), 12),
}


def densenet(name, num_classes=10):
    if name not in LAYOUTS:
        raise ModelError(f"unknown DenseNet layout {name!r}; known: {sorted(LAYOUTS)}")
    layers_per_block, growth_rate = LAYOUTS[name]
    return DenseNet(layers_per_block, growth_rate, num_classes=num_classes)
