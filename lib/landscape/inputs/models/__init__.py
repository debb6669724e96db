"""The model zoo: the reference code's CIFAR-10 architectures by name, plus user models by import path.

Zoo names and their state_dict layouts match the reference's `--model` choices, so its checkpoints
load unchanged. Any other model is given as 'package.module:factory'.
"""

from functools import partial

import torch.nn as nn

from ...errors import ModelError
from ...imports import import_callable
from .densenet import LAYOUTS as DENSENET_LAYOUTS
from .densenet import densenet
from .resnet import cifar_resnet
from .resnet_imagenet import imagenet_style_resnet
from .vgg import LAYOUTS as VGG_LAYOUTS
from .vgg import vgg


def _cifar_resnets():
    zoo = {}
    for depth in (20, 32, 44, 56, 110):
        zoo[f"resnet{depth}"] = partial(cifar_resnet, depth)
        zoo[f"resnet{depth}_noshort"] = partial(cifar_resnet, depth, shortcut=False)
    zoo["resnet50_16_noshort"] = partial(cifar_resnet, 50, shortcut=False)
    for width in (2, 4, 8):
        zoo[f"wrn56_{width}"] = partial(cifar_resnet, 56, width)
        zoo[f"wrn56_{width}_noshort"] = partial(cifar_resnet, 56, width, shortcut=False)
    for width in (2, 4):
        zoo[f"wrn110_{width}_noshort"] = partial(cifar_resnet, 110, width, shortcut=False)
    return zoo


def _imagenet_style_resnets():
    zoo = {}
    for depth in (18, 34, 50, 101, 152):
        zoo[f"resnet{depth}"] = partial(imagenet_style_resnet, depth)
        zoo[f"resnet{depth}_noshort"] = partial(imagenet_style_resnet, depth, shortcut=False)
    return zoo


def _vggs_and_densenets():
    zoo = {name: partial(vgg, name) for name in VGG_LAYOUTS}
    zoo.update({name: partial(densenet, name) for name in DENSENET_LAYOUTS})
    return zoo


_ZOO = {**_cifar_resnets(), **_imagenet_style_resnets(), **_vggs_and_densenets()}
MODEL_NAMES = sorted(_ZOO)


def get_model(name, num_classes=10):
    """A freshly initialised zoo model with a `num_classes`-way output layer."""
    if name not in _ZOO:
        raise ModelError(
            f"unknown model {name!r}; known models: {', '.join(MODEL_NAMES)}. "
            "For your own architecture give 'package.module:factory' instead."
        )
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ModelError(f"num_classes must be a positive integer, got {num_classes!r}")
    return _ZOO[name](num_classes=num_classes)


def build_model(spec, kwargs=None, num_classes=10):
    """A zoo model by name (given `num_classes`), or `factory(**kwargs)` for spec 'package.module:factory'."""
    kwargs = {} if kwargs is None else kwargs
    if not isinstance(kwargs, dict):
        raise ModelError(f"model kwargs must be a dict of keyword arguments, got {type(kwargs).__name__}")
    if ":" not in spec:
        if kwargs:
            raise ModelError(
                f"model kwargs {sorted(kwargs)} only apply to custom 'package.module:factory' models; "
                f"zoo model {spec!r} takes only num_classes"
            )
        return get_model(spec, num_classes=num_classes)
    factory = import_callable(spec, ModelError, "custom model", form="factory")
    try:
        model = factory(**kwargs)
    except Exception as err:  # the user's factory rejected its arguments or failed
        raise ModelError(
            f"custom model {spec!r} failed when called with kwargs {kwargs!r} ({type(err).__name__}: {err})"
        ) from err
    if not isinstance(model, nn.Module):
        raise ModelError(
            f"custom model {spec!r} returned an object of type {type(model).__name__}, not a torch.nn.Module"
        )
    return model
