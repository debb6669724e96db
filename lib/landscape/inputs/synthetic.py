"""Synthetic CIFAR-shaped data: runs everything (demos, tests) where the real data is absent.

Each class has a colour and an oriented stripe pattern (a sine grating of its own frequency
and angle). Every image is its class's colour and grating, at a random phase, plus a random
brightness shift and pixel noise. A small CNN learns the classes within a few epochs, but not
to 100% at once, so loss curves and landscapes look like those of a real task.
"""
import numpy as np

from ..errors import DataError
from ..host import available_memory, size_in_words

SIDE = 32
COLOUR_SCALE = 45.0       # per-class mean colour: up to +-45 grey levels per channel
GRATING_SCALE = 40.0      # stripe amplitude
BRIGHTNESS_NOISE = 15.0   # per-image shift of all pixels, hides small colour differences
PIXEL_NOISE = 30.0        # per-pixel Gaussian noise
CHUNK = 4096              # images generated at once, bounds memory for large sets
BYTES_PER_IMAGE = SIDE * SIDE * 3 * (1 + 4 + 4) + 8  # uint8 pixels, two float32 copies, an int64 label


def synthetic_cifar(n_train, n_test, num_classes=10, seed=0):
    """Deterministic (train_images, train_labels, test_images, test_labels) like read_cifar's.

    Images are uint8 (N, 32, 32, 3), labels int64 balanced over num_classes. The same seed gives
    the same classes; the test set does not depend on n_train.
    """
    for name, value, least in (("n_train", n_train, 1), ("n_test", n_test, 1), ("num_classes", num_classes, 2)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
            raise DataError(f"synthetic data: {name} must be an integer >= {least}, got {value!r}")
    check_fits_in_memory(int(n_train) + int(n_test))
    class_seed, train_seed, test_seed = np.random.SeedSequence(seed).spawn(3)
    classes = _class_patterns(int(num_classes), np.random.default_rng(class_seed))
    train_images, train_labels = _draw_images(classes, int(n_train), np.random.default_rng(train_seed))
    test_images, test_labels = _draw_images(classes, int(n_test), np.random.default_rng(test_seed))
    return train_images, train_labels, test_images, test_labels


def check_fits_in_memory(images):
    """Refuse a size this host cannot hold: each image lives as uint8 here, then as float32 twice (the
    normalized copy and its channels_last copy on the device), so a too large set would be killed mid-way."""
    needed, free = images * BYTES_PER_IMAGE, available_memory()
    if free is not None and needed > free:
        raise DataError(f"synthetic data of {images:,} images needs about {size_in_words(needed)} of memory, "
                        f"{size_in_words(free)} are available; use a smaller --synthetic_size")


def _class_patterns(num_classes, rng):
    return {
        "colour": rng.uniform(-1.0, 1.0, size=(num_classes, 3)),
        "cycles": rng.uniform(1.0, 4.0, size=num_classes),  # stripes per image width
        "angle": rng.uniform(0.0, np.pi, size=num_classes),
    }


def _draw_images(classes, n, rng):
    num_classes = len(classes["colour"])
    labels = rng.permutation(np.arange(n) % num_classes).astype(np.int64)
    chunks = [_render(classes, labels[start:start + CHUNK], rng) for start in range(0, n, CHUNK)]
    return np.concatenate(chunks), labels


def _render(classes, labels, rng):
    n = len(labels)
    rows, cols = np.mgrid[0:SIDE, 0:SIDE].astype(np.float32) / SIDE
    angle = classes["angle"][labels][:, None, None]
    along = cols * np.cos(angle) + rows * np.sin(angle)
    phase = rng.uniform(0.0, 2 * np.pi, size=(n, 1, 1))
    grating = np.sin(2 * np.pi * classes["cycles"][labels][:, None, None] * along + phase).astype(np.float32)
    colour = classes["colour"][labels][:, None, None, :].astype(np.float32)
    brightness = rng.normal(0.0, BRIGHTNESS_NOISE, size=(n, 1, 1, 1)).astype(np.float32)
    noise = PIXEL_NOISE * rng.standard_normal(size=(n, SIDE, SIDE, 3), dtype=np.float32)
    # float32 throughout: generating 50k images stays fast and within memory.
    pixels = 128.0 + COLOUR_SCALE * colour + GRATING_SCALE * grating[..., None] + brightness + noise
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
