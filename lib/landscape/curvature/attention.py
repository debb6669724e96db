"""Attention that can be differentiated twice, for Hessian-vector products (pure).

torch.nn.functional.scaled_dot_product_attention (SDPA), which HuggingFace models use by default,
dispatches to a fused kernel: flash attention (on the CPU too), memory-efficient attention or cuDNN.
Those kernels have a hand-written backward but no derivative of that backward and no forward-mode
derivative, so both HVP methods fail on them: 'double_backward' with "derivative for
aten::_scaled_dot_product_flash_attention_for_cpu_backward is not implemented", 'fwd_rev' (torch.func
jvp of grad) with "Trying to use forward AD with _scaled_dot_product_flash_attention_for_cpu that does
not support it" (torch 2.14). The math kernel computes the same attention, softmax(q kᵀ / √d + mask) v,
out of ordinary matmul/softmax ops that autograd differentiates to any order in both modes, so the
Hessian it gives is the model's exact Hessian, not an approximation. It costs what eager attention
costs: the T×T score matrix is materialized (more memory on long sequences, which the GPU batch-size
probe measures since it runs the same products).
"""
from contextlib import contextmanager

from torch.nn.attention import SDPBackend, sdpa_kernel


@contextmanager
def exact_attention():
    """Run the body with SDPA restricted to its math kernel (CPU and CUDA), restoring the previous
    choice after. Models that do not call SDPA are unaffected."""
    with sdpa_kernel(SDPBackend.MATH):
        yield
