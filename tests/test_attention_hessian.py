"""Hessians of a transformer whose attention is PyTorch's fused SDPA kernel (HuggingFace's default), which
has no double backward and no forward-mode derivative: products and the map's extremes against dense
Hessians of the same weights under HuggingFace's eager attention (its own softmax(q kᵀ) v code)."""
import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import landscape
from landscape.curvature.attention import exact_attention
from landscape.curvature.hvp import mean_loss_hvp

VOCAB, SEQ = 20, 6
# The first attention block's biases and layer norms: 24 + 8 + 8 + 8 + 8 + 8 = 64 numbers.
SUBSET = ["m.transformer.h.0.attn.c_attn.bias", "m.transformer.h.0.attn.c_proj.bias",
          "m.transformer.h.0.ln_1.weight", "m.transformer.h.0.ln_1.bias",
          "m.transformer.h.0.ln_2.weight", "m.transformer.h.0.ln_2.bias"]
TIED = {"m.transformer.wte.weight": "m.lm_head.weight"}  # GPT-2's output layer is its token embedding
# float64 products differ from the dense Hessian by rounding only: each entry sums at most a few
# thousand products of O(1) numbers, about 1e3 * 1.1e-16 relative to |H| |v|; 1e-10 leaves three orders
# of magnitude, while a missing or wrong second-order term is O(1) relative (float32 could not tell
# a small error from rounding at ~1e-4).
PRODUCT_TOL = 1e-10


class LogitsOf(nn.Module):
    """A HuggingFace causal LM as a tensor -> tensor model: token ids in, logits out."""

    def __init__(self, model):
        super().__init__()
        self.m = model

    def forward(self, x):
        return self.m(input_ids=x).logits


def next_token_loss(outputs, targets):
    """Mean cross-entropy of predicting each token from those before it (targets are the ids)."""
    return F.cross_entropy(outputs[:, :-1].reshape(-1, outputs.shape[-1]), targets[:, 1:].reshape(-1))


def gpt2_pair(n_layer=1):
    """(sdpa model, eager model) with the same float64 weights at a generic point (no zero biases or
    unit norms, which would hide terms), both wrapped by LogitsOf, and a batch of token ids."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=VOCAB, n_positions=SEQ, n_embd=8, n_layer=n_layer, n_head=2,
                                     bos_token_id=0, eos_token_id=0, initializer_range=0.3)
    sdpa = transformers.GPT2LMHeadModel(config).double().eval()
    with torch.no_grad():
        for p in sdpa.parameters():
            p.add_(0.3 * torch.randn_like(p))
    eager = copy.deepcopy(sdpa)
    eager.set_attn_implementation("eager")
    assert sdpa.config._attn_implementation == "sdpa"
    ids = torch.randint(0, VOCAB, (4, SEQ), generator=torch.Generator().manual_seed(1))
    return LogitsOf(sdpa), LogitsOf(eager), ids


def dense_hessian(model, names, ids):
    """The Hessian of the loss over all of `ids` with respect to the flattened parameters `names`, by
    torch.autograd.functional.hessian, outside exact_attention (so `model` must not use fused SDPA).
    A tied parameter is passed under both its names, so the tie is spelled out here, not inferred."""
    params = dict(model.named_parameters())
    shapes = [params[n].shape for n in names]

    def loss(flat):
        parts = dict(zip(names, (t.view(s) for t, s in zip(flat.split([s.numel() for s in shapes]), shapes))))
        parts.update({TIED[n]: parts[n] for n in names if n in TIED})
        outputs = torch.func.functional_call(model, parts, (ids,), tie_weights=False)
        return next_token_loss(outputs, ids)
    flat = torch.cat([params[n].detach().reshape(-1) for n in names])
    return torch.autograd.functional.hessian(loss, flat, vectorize=True)


@pytest.mark.parametrize("method", ["double_backward", "fwd_rev"])
def test_sdpa_products_equal_the_dense_hessian_of_eager_attention(method):
    sdpa, eager, ids = gpt2_pair(n_layer=2)
    h = dense_hessian(eager, SUBSET, ids)
    assert h.shape == (64, 64) and h.abs().max() > 1e-3  # the subset's curvature is not trivially zero
    batches = [(ids[:3], ids[:3]), (ids[3:], ids[3:])]  # unequal batches: the weights n_b / N matter
    hvp = mean_loss_hvp(sdpa, SUBSET, next_token_loss, batches, method=method)
    g = torch.Generator().manual_seed(2)
    for _ in range(3):
        v = torch.randn(64, generator=g, dtype=torch.float64)
        assert torch.linalg.norm(hvp(v) - h @ v) <= PRODUCT_TOL * torch.linalg.norm(h) * torch.linalg.norm(v)
    assert hvp.calls == 3


def test_hessian_map_extremes_of_sdpa_gpt2_equal_dense_eigenvalues():
    sdpa, eager, ids = gpt2_pair(n_layer=1)
    names = [n for n, _ in eager.named_parameters()]  # every parameter: 1096 numbers
    eig = torch.linalg.eigvalsh(dense_hessian(eager, names, ids))
    res = landscape.hessian_map(sdpa, (ids, ids), loss=next_token_loss, params="all", samples=None,
                                x=(-0.5, 0.5, 3), tol=1e-6, max_iter=200, progress_secs=1e9)
    assert res.complete and bool(res.eig_converged[1])
    scale = eig.abs().max().item()
    assert abs(res.max_eig[1] - eig[-1].item()) <= 1e-5 * scale  # tol=1e-6 of max|λ|, with a margin
    assert abs(res.min_eig[1] - eig[0].item()) <= 1e-5 * scale
    assert eig[0] < 0 < eig[-1]  # both ends are informative: an indefinite Hessian


def test_fused_sdpa_has_no_second_derivative_without_exact_attention():
    sdpa, _, ids = gpt2_pair(n_layer=1)
    sdpa.float()
    params = list(sdpa.parameters())

    def second_derivative():
        grads = torch.autograd.grad(next_token_loss(sdpa(ids), ids), params, create_graph=True)
        return torch.autograd.grad(sum(g.sum() for g in grads), params)
    with exact_attention():
        assert all(torch.isfinite(h).all() for h in second_derivative())
    try:
        second_derivative()
    except RuntimeError as e:
        assert "not implemented" in str(e)
    else:
        pytest.skip("this torch differentiates fused SDPA twice: exact_attention is no longer needed")
