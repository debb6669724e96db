"""Arithmetic precision of evaluation and Hessian products: fp32 (strict: TF32 and autocast off), tf32 or bf16.

TF32 switches are set inside a block only and come back as they were after it, so a trainer's or the
user's own settings are never flipped for good. torch is imported only where a function needs it.
"""
import contextlib

from ..errors import ChoiceError, DeviceError

PRECISIONS = ("fp32", "tf32", "bf16")


def check_precision_applies(precision, device_type):
    """Refuse a --precision that this device would silently ignore (plot_hessian_eig.py has no --precision:
    it always runs in strict fp32, as reduced-precision noise is larger than the eigenvalues it measures)."""
    if precision == "tf32" and device_type != "cuda":
        raise DeviceError("--precision tf32 applies to NVIDIA GPUs only; on the CPU use fp32 or bf16")


def _new_tf32_api():
    """PyTorch >= 2.9 has per-backend fp32_precision; reading a legacy flag after a new-API write raises there."""
    import torch
    return hasattr(torch.backends.cuda.matmul, "fp32_precision")


def _tf32_switches():
    """The objects holding each TF32 switch: cuBLAS matmul, cuDNN convolutions and RNNs."""
    import torch
    if _new_tf32_api():
        switches = [torch.backends.cuda.matmul, torch.backends.cudnn.conv]
        rnn = getattr(torch.backends.cudnn, "rnn", None)
        return switches + ([rnn] if rnn is not None else [])
    return [torch.backends.cuda.matmul, torch.backends.cudnn]


def read_tf32_flags():
    """The current TF32 switches, in the form set_tf32_flags restores."""
    if _new_tf32_api():
        return tuple(s.fp32_precision for s in _tf32_switches())
    return tuple(s.allow_tf32 for s in _tf32_switches())


def set_tf32_flags(flags):
    for switch, value in zip(_tf32_switches(), flags):
        if _new_tf32_api():
            switch.fp32_precision = value
        else:
            switch.allow_tf32 = value


def tf32_flags_for(allow):
    """The switch values that allow TF32 everywhere (True) or nowhere (False)."""
    n = len(_tf32_switches())
    if _new_tf32_api():
        return ("tf32" if allow else "ieee",) * n
    return (bool(allow),) * n


@contextlib.contextmanager
def tf32_mode(allow):
    """TF32 on or off for cuBLAS and cuDNN inside the block; the previous switches come back after."""
    saved = read_tf32_flags()
    set_tf32_flags(tf32_flags_for(allow))
    try:
        yield
    finally:
        set_tf32_flags(saved)


@contextlib.contextmanager
def autocast_off(device_types=("cpu", "cuda")):
    """No autocast inside the block on these device types, even under a caller's own torch.autocast: a
    user who wraps a call in bf16 autocast does not silently get bf16 where fp32 was promised."""
    import torch
    with contextlib.ExitStack() as stack:
        for device_type in device_types:
            if torch.amp.is_autocast_available(device_type):
                stack.enter_context(torch.autocast(device_type, enabled=False))
        yield


@contextlib.contextmanager
def strict_fp32():
    """Strict fp32 inside the block (the Hessian, reference comparisons), whatever was set before:
    TF32 off and autocast off, so a bf16 surface run or a caller's autocast never lowers a Hessian."""
    with tf32_mode(False), autocast_off():
        yield


@contextlib.contextmanager
def precision_context(precision, device):
    """Autocast/TF32 settings for a validated --precision, inside the block only: 'fp32' is strict fp32
    (TF32 off, and autocast off even inside a caller's torch.autocast), and the TF32 switches the caller
    had come back after, so a trainer's or the user's own settings are never flipped for good."""
    import torch
    if precision not in PRECISIONS:
        raise ChoiceError(f"--precision={precision!r} is not one of {', '.join(PRECISIONS)}")
    with contextlib.ExitStack() as stack:
        stack.enter_context(tf32_mode(precision == "tf32"))
        if precision == "bf16":
            stack.enter_context(torch.autocast(device.type, dtype=torch.bfloat16))
        else:
            stack.enter_context(autocast_off((device.type,)))
        yield
