"""ImageNet-layout ResNets (18/34/50/101/152) adapted to 32x32 CIFAR inputs, as in the reference.

The reference keeps the four 64-128-256-512 stages of the ImageNet design but replaces the 7x7
stride-2 stem and max-pool with a single 3x3 stride-1 conv, so the final maps are 4x4.
"""

import torch.nn as nn
import torch.nn.functional as F

from ...errors import ModelError
from .resnet import BasicBlock, Bottleneck, make_stage

STAGE_LAYOUTS = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}


class ImageNetStyleResNet(nn.Module):
    def __init__(self, block, blocks_per_stage, shortcut=True, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        in_planes = 64
        self.layer1, in_planes = make_stage(block, in_planes, 64, blocks_per_stage[0], 1, shortcut)
        self.layer2, in_planes = make_stage(block, in_planes, 128, blocks_per_stage[1], 2, shortcut)
        self.layer3, in_planes = make_stage(block, in_planes, 256, blocks_per_stage[2], 2, shortcut)
        self.layer4, in_planes = make_stage(block, in_planes, 512, blocks_per_stage[3], 2, shortcut)
        self.linear = nn.Linear(in_planes, num_classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.avg_pool2d(out, 4)  # 32x32 input -> 4x4 maps after three stride-2 stages
        return self.linear(out.flatten(1))


def imagenet_style_resnet(depth, shortcut=True, num_classes=10):
    if depth not in STAGE_LAYOUTS:
        raise ModelError(f"ImageNet-style ResNet depth must be one of {sorted(STAGE_LAYOUTS)}, got {depth}")
    block, blocks_per_stage = STAGE_LAYOUTS[depth]
    return ImageNetStyleResNet(block, blocks_per_stage, shortcut=shortcut, num_classes=num_classes)
