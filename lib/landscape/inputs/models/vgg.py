"""VGG for 32x32 inputs, laid out like the paper's reference code (features, fc, classifier).

Unlike torchvision's VGG, the reference puts BatchNorm after every conv and uses a single hidden
fully connected layer (with BatchNorm1d) of the same width as the last conv stage.
"""

import torch.nn as nn

from ...errors import ModelError

# Channel counts of the 3x3 conv layers; 'M' is a 2x2 max-pool.
LAYOUTS = {
    "vgg9": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M"),
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    "vgg19": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"),
}

INPUT_SIZE = 32


def _features(layout):
    """Conv-BN-ReLU triples and max-pools; returns (module, output side length)."""
    layers, in_channels, side = [], 3, INPUT_SIZE
    for item in layout:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True))
            side = -(-side // 2)  # ceil_mode pooling rounds up
        else:
            layers += [nn.Conv2d(in_channels, item, kernel_size=3, padding=1), nn.BatchNorm2d(item)]
            layers.append(nn.ReLU())
            in_channels = item
    return nn.Sequential(*layers), side


class VGG(nn.Module):
    def __init__(self, layout, num_classes=10):
        super().__init__()
        self.features, side = _features(layout)
        width = [item for item in layout if item != "M"][-1]
        self.fc = nn.Sequential(nn.Linear(width * side * side, width), nn.BatchNorm1d(width), nn.ReLU())
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x):
        out = self.features(x)
        return self.classifier(self.fc(out.flatten(1)))


def vgg(name, num_classes=10):
    if name not in LAYOUTS:
        raise ModelError(f"unknown VGG layout {name!r}; known: {sorted(LAYOUTS)}")
    return VGG(LAYOUTS[name], num_classes=num_classes)
