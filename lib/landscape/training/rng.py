"""The trainer's random numbers: each epoch's order, crops and flips drawn at once on the training
device (no per-batch host-to-device copies), and the RNG states that a resume restores.

One generator on the training device gives every draw, so saving its state makes resuming exact.
Only this device's CUDA state is saved and restored: a resume may see fewer GPUs than the run had.
"""
from dataclasses import dataclass

import torch

CROP_PADDING = 4


@dataclass(frozen=True)
class EpochDraws:
    order: torch.Tensor            # (N,) permutation of the training set
    shifts: torch.Tensor = None    # (N, 2) crop offsets in [0, 2 * CROP_PADDING], None without augmentation
    flip: torch.Tensor = None      # (N,) bool: mirror the image


def data_generator(seed, device):
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator


def draw_epoch(n, generator, augmenting):
    """All of an epoch's random numbers, on the generator's device, in one go."""
    device = generator.device
    order = torch.randperm(n, generator=generator, device=device)
    if not augmenting:
        return EpochDraws(order)
    shifts = torch.randint(0, 2 * CROP_PADDING + 1, (n, 2), generator=generator, device=device)
    flip = torch.rand(n, generator=generator, device=device) < 0.5
    return EpochDraws(order, shifts, flip)


def augment(x, shifts, flip, fill):
    """Crop of each image padded by CROP_PADDING pixels of `fill` (C,) at `shifts` (N, 2), mirrored
    where `flip` (N,); one gather per batch, all on x's device."""
    n, c, h, w = x.shape
    padded = fill.to(x).view(1, c, 1, 1).repeat(n, 1, h + 2 * CROP_PADDING, w + 2 * CROP_PADDING)
    padded[:, :, CROP_PADDING:CROP_PADDING + h, CROP_PADDING:CROP_PADDING + w] = x
    rows = shifts[:, :1] + torch.arange(h, device=x.device)
    cols_in_order = torch.arange(w, device=x.device)
    cols = shifts[:, 1:] + torch.where(flip[:, None], cols_in_order.flip(0), cols_in_order)
    images = torch.arange(n, device=x.device)[:, None, None, None]
    channels = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[images, channels, rows[:, None, :, None], cols[:, None, None, :]]


def rng_state(generator, device):
    """The random-number state an opt_state file keeps: the data generator's, the CPU's, and the CUDA
    state of the training GPU alone."""
    state = {"data_rng": generator.get_state(), "data_rng_device": device.type, "torch_rng": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda_rng"] = torch.cuda.get_rng_state(device)
    return state


def cuda_rng_for(saved, device_index):
    """This device's CUDA RNG state from a saved entry: one state (this trainer), or one per GPU as
    older files kept (get_rng_state_all), of which the entry for this device, if it is there."""
    if saved is None:
        return None
    if isinstance(saved, torch.Tensor):
        return saved
    return saved[device_index] if device_index < len(saved) else None


def restore_rng(state, generator, device):
    """Set the saved states that apply on `device`; returns warnings for those that could not be."""
    if "data_rng" not in state:  # the reference trainer saves only {'optimizer'}
        return ["holds no random-number state; data order after resuming differs"]
    warnings = []
    saved_on = state.get("data_rng_device", "cpu")
    if saved_on == device.type:
        generator.set_state(state["data_rng"])
    else:
        warnings.append(f"was trained on {saved_on}, resumed on {device.type}: data order after resuming differs")
    torch.set_rng_state(state["torch_rng"])
    if device.type == "cuda":
        cuda = cuda_rng_for(state.get("cuda_rng"), device.index or 0)
        if cuda is None:
            warnings.append(f"holds no CUDA random-number state for {device}")
        else:
            torch.cuda.set_rng_state(cuda, device)
    return warnings
