"""CIFAR ResNets and wide ResNets, laid out like the paper's reference code.

Submodule names and definition order decide the state_dict keys, so they follow the reference
exactly (conv1, bn1, layer1..3, linear; blocks hold conv1, bn1, conv2, bn2[, shortcut]). That
lets checkpoints written by the reference load unchanged. The `_noshort` variants drop the
shortcut branch entirely (no module, no parameters), which is what the paper compares against.
"""

import torch.nn as nn
import torch.nn.functional as F

from ...errors import ModelError


def _projection(in_planes, out_planes, stride):
    """1x1 conv + BN shortcut, used when a block changes resolution or width ("option B")."""
    return nn.Sequential(
        nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False),
        nn.BatchNorm2d(out_planes),
    )


def _shortcut(in_planes, out_planes, stride):
    # An empty Sequential is the identity and adds no state_dict entries, as in the reference.
    if stride != 1 or in_planes != out_planes:
        return _projection(in_planes, out_planes, stride)
    return nn.Sequential()


class BasicBlock(nn.Module):
    """Two 3x3 convs; with `shortcut=False` the block is a plain two-layer conv stack."""

    expansion = 1

    def __init__(self, in_planes, planes, stride=1, shortcut=True):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.has_shortcut = shortcut
        if shortcut:
            self.shortcut = _shortcut(in_planes, planes * self.expansion, stride)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.has_shortcut:
            out = out + self.shortcut(x)
        return F.relu(out)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> 1x1 convs with 4x channel expansion (ResNet-50 and deeper)."""

    expansion = 4

    def __init__(self, in_planes, planes, stride=1, shortcut=True):
        super().__init__()
        out_planes = planes * self.expansion
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_planes, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.has_shortcut = shortcut
        if shortcut:
            self.shortcut = _shortcut(in_planes, out_planes, stride)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if not self.has_shortcut:
            # The reference's shortcut-free bottleneck returns before the final ReLU; we keep
            # that so its checkpoints compute the same function here.
            return out
        return F.relu(out + self.shortcut(x))


def make_stage(block, in_planes, planes, num_blocks, stride, shortcut):
    """A stage of `num_blocks` blocks; only the first one changes stride. Returns (stage, out_planes)."""
    blocks = []
    for block_stride in [stride] + [1] * (num_blocks - 1):
        blocks.append(block(in_planes, planes, block_stride, shortcut))
        in_planes = planes * block.expansion
    return nn.Sequential(*blocks), in_planes


class CifarResNet(nn.Module):
    """Three stages of 16k, 32k, 64k channels on 32x32 inputs (k = width; k=1 is the plain ResNet)."""

    def __init__(self, blocks_per_stage, width=1, shortcut=True, num_classes=10):
        super().__init__()
        planes = [16 * width, 32 * width, 64 * width]
        self.conv1 = nn.Conv2d(3, planes[0], kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes[0])
        in_planes = planes[0]
        self.layer1, in_planes = make_stage(BasicBlock, in_planes, planes[0], blocks_per_stage, 1, shortcut)
        self.layer2, in_planes = make_stage(BasicBlock, in_planes, planes[1], blocks_per_stage, 2, shortcut)
        self.layer3, in_planes = make_stage(BasicBlock, in_planes, planes[2], blocks_per_stage, 2, shortcut)
        self.linear = nn.Linear(in_planes, num_classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.avg_pool2d(out, 8)  # 32x32 input -> 8x8 maps after two stride-2 stages
        return self.linear(out.flatten(1))


def cifar_resnet(depth, width=1, shortcut=True, num_classes=10):
    """ResNet-`depth` for CIFAR: depth = 6n + 2 with n basic blocks per stage."""
    if depth < 8 or (depth - 2) % 6 != 0:
        raise ModelError(f"CIFAR ResNet depth must be 6n + 2 with n >= 1 (20, 32, 56, 110, ...), got {depth}")
    return CifarResNet((depth - 2) // 6, width=width, shortcut=shortcut, num_classes=num_classes)
