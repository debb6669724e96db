"""Fast products (issue 22): the timed HVP batch, products in blocks, and the extremes' stopping rule.

Truths: the HVP batch against the timer a test injects (its minimum over candidates it can list by hand);
blocked products against the same operator applied one vector at a time; the stopping rule against the
known spectrum of a dense matrix and against the former rule, re-run here.
"""
import json

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import landscape
from landscape.curvature.blocks import KeptGraphs, block_products
from landscape.curvature.density import slq
from landscape.curvature.hvp import MeanLossHVP, hessian_param_names, mean_loss_hvp
from landscape.curvature.lanczos import (
    hidden_weight_log_limit,
    lanczos_extremes,
    lanczos_steps,
    log_christoffel_sum,
    start_vector,
)
from landscape.curvature.point import CurvaturePlan, point_curvature
from landscape.curvature.trace import deflated_hutchinson
from landscape.job.batch import HESSIAN_CPU_BATCH, HVP_CPU_SIZES, choose_hvp_batch, even_batch
from landscape.space.losses import weighted_loss

from tiny import make_data, make_model

FP32_PRODUCT = 1e-6  # relative: two fp32 products by the same operations, summed in one order in float64


def tiny_op(samples=40, batch=16, method="double_backward"):
    model = make_model()
    (x, y), _ = make_data(n_train=samples)
    names = hessian_param_names(model, "all")
    batches = [(x[i:i + batch], y[i:i + batch]) for i in range(0, samples, batch)]
    return mean_loss_hvp(model, names, F.cross_entropy, batches, method=method)


# --- the HVP batch ---------------------------------------------------------------------------------

def test_even_batches_cut_the_samples_into_as_many_batches_within_one_sample():
    for count in (1, 7, 100, 500, 5000, 5001):
        for size in (1, 32, 128, 512, 10 ** 6):
            even = even_batch(size, count)
            batches = -(-count // even)
            assert batches == -(-count // min(size, count)) and even <= max(1, min(size, count))
            assert even * batches - count < batches  # the last batch is short by less than one per batch


def test_auto_picks_the_fastest_product_of_the_injected_timer_and_says_what_it_spent():
    calls = []

    def timer(size):  # a batch costs 5 + size, twice per sample above 200: 250 samples per batch win at 1,000
        calls.append(size)
        return 5 + size * (1 if size <= 250 else 2)
    choice = choose_hvp_batch(None, torch.zeros(1000), None, 0, torch.device("cpu"), timer=timer)
    candidates = [even_batch(b, 1000) for b in HVP_CPU_SIZES]
    assert choice.size == 250 and set(choice.timed) <= set(candidates)
    expected = {s: (5 + s * (1 if s <= 250 else 2)) * -(-1000 // s) for s in choice.timed}
    assert choice.timed == expected and choice.size == min(expected, key=expected.get)
    assert choice.products == pytest.approx(sum(calls) / 1000)  # every size it timed, in products over 1,000
    assert calls[:5] == candidates  # 500 is slower than 250 by less than SLOWER, so the climb reaches it
    again = choose_hvp_batch(None, torch.zeros(1000), None, 0, torch.device("cpu"), timer=timer)
    assert again == choice  # deterministic given its timer


def test_auto_keeps_each_sizes_fastest_round_and_stops_climbing_at_a_slow_size():
    seen = {}

    def noisy(size):  # the first timing of every size is twice too slow (a busy machine, first allocations)
        seen[size] = seen.get(size, 0) + 1
        return (2.0 if seen[size] == 1 else 1.0) * (size if size < 250 else 10 * size)
    choice = choose_hvp_batch(None, torch.zeros(1000), None, 0, torch.device("cpu"), timer=noisy)
    assert 500 not in seen  # 250 was SLOWER than the best, so 500 was never tried
    assert choice.timed == {32: 32 * 32, 63: 63 * 16, 125: 125 * 8, 250: 2 * 10 * 250 * 4}  # second rounds count
    assert choice.size == 125 and choice.products == pytest.approx((2 * (32 + 63 + 125) + 250) / 1000)


def test_the_real_timer_on_a_tiny_model_picks_a_candidate_that_fits():
    op_of = []
    model = make_model()
    (x, y), _ = make_data(n_train=300)
    names = hessian_param_names(model, "all")

    def hvp_of(batches):
        op_of.append(len(batches[0][1]))
        return MeanLossHVP(model, names, weighted_loss(None), batches)
    dim = sum(p.numel() for n, p in model.named_parameters() if n in names)
    choice = choose_hvp_batch(hvp_of, x, y, dim, torch.device("cpu"))
    candidates = {even_batch(b, 300) for b in HVP_CPU_SIZES}
    assert candidates == {30, 60, 100, 150, 300} and choice.size in candidates and set(op_of) <= candidates
    assert choice.products == pytest.approx(len(op_of) and sum(op_of) / 300)
    small = choose_hvp_batch(hvp_of, x[:HESSIAN_CPU_BATCH], y[:HESSIAN_CPU_BATCH], dim, torch.device("cpu"))
    assert (small.size, small.timed, small.products) == (HESSIAN_CPU_BATCH, {}, 0.0)  # one batch, as before


def test_an_auto_resume_reuses_the_recorded_batch_and_an_older_file_the_former_default(tmp_path, capsys):
    model = make_model()
    (x, y), _ = make_data(n_train=300)
    path = str(tmp_path / "h.h5")
    kwargs = dict(x=(-0.1, 0.1, 2), max_iter=6, path=path, progress_secs=1e9)
    landscape.hessian_map(model, (x, y), **kwargs)
    with h5py.File(path, "r") as f:
        recorded = json.loads(f.attrs["hessian_provenance"])["hvp_batch"]
    assert recorded in {even_batch(b, 300) for b in HVP_CPU_SIZES}
    capsys.readouterr()
    landscape.hessian_map(model, (x, y), **kwargs)
    assert f"HVP batch size {recorded} (auto: reused from {path})" in capsys.readouterr().out
    with h5py.File(path, "r+") as f:  # as a file written before the batch was recorded
        provenance = json.loads(f.attrs["hessian_provenance"])
        del provenance["hvp_batch"]
        f.attrs["hessian_provenance"] = json.dumps(provenance)
    landscape.hessian_map(model, (x, y), **kwargs)
    assert f"HVP batch size 256 (auto: auto's batch when {path} was made)" in capsys.readouterr().out


# --- products in blocks ----------------------------------------------------------------------------

def assert_same_products(blocked, single):
    scale = single.abs().max()
    assert (blocked - single).abs().max() <= FP32_PRODUCT * scale, (blocked - single).abs().max() / scale


def test_blocked_products_equal_single_ones_and_count_as_many():
    op = tiny_op()
    vectors = torch.randn(5, op.dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    single = torch.stack([op(v) for v in vectors])
    before = op.calls
    blocked = block_products(op, vectors)
    assert op.calls - before == 5 and blocked.dtype == torch.float64
    assert_same_products(blocked, single)


def test_blocked_products_of_a_tiny_gpt2_equal_single_ones():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=20, n_positions=8, n_embd=8, n_layer=1, n_head=2, bos_token_id=0,
                                     eos_token_id=0)
    model = transformers.GPT2LMHeadModel(config).eval()
    ids = torch.randint(1, 20, (6, 8), generator=torch.Generator().manual_seed(1))
    batches = [({"input_ids": ids[i:i + 3], "attention_mask": torch.ones_like(ids[i:i + 3])}, ids[i:i + 3])
               for i in (0, 3)]
    op = MeanLossHVP(model, hessian_param_names(model, "all"), weighted_loss("causal_lm"), batches)
    vectors = torch.randn(3, op.dim, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    assert_same_products(block_products(op, vectors), torch.stack([op(v) for v in vectors]))


def test_other_operators_get_their_products_one_by_one():
    op = tiny_op(method="fwd_rev")
    vectors = torch.randn(2, op.dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.equal(block_products(op, vectors), torch.stack([op(v) for v in vectors]))
    h = torch.diag(torch.arange(4.0, dtype=torch.float64))
    assert torch.equal(block_products(lambda v: h @ v, torch.eye(4, dtype=torch.float64)), h)


def test_the_trace_and_the_density_in_blocks_equal_one_by_one():
    op = tiny_op()
    trace = [deflated_hutchinson(op, op.dim, 5, seed=3, block_matvec=block, per_pass=3)
             for block in (None, lambda rows: block_products(op, rows))]
    assert trace[0].hvps == trace[1].hvps == 5
    assert trace[1].trace == pytest.approx(trace[0].trace, rel=FP32_PRODUCT, abs=FP32_PRODUCT * abs(trace[0].err))
    density = [slq(op, op.dim, 3, 6, seed=1, block_matvec=block) for block in (None, lambda r: block_products(op, r))]
    assert density[0][2] == density[1][2] == 18
    np.testing.assert_allclose(density[1][0], density[0][0], rtol=0, atol=1e-4 * np.abs(density[0][0]).max())
    np.testing.assert_allclose(density[1][1], density[0][1], rtol=1e-3, atol=1e-9)


def test_point_curvature_in_blocks_equals_one_by_one_with_the_same_products(monkeypatch):
    op = tiny_op()
    plan = CurvaturePlan(1e-3, 30, 0, trace_samples=6, density_probes=3, density_steps=8)
    blocked = point_curvature(op, op.dim, plan)
    import landscape.curvature.point as point
    monkeypatch.setattr(point, "block_products", lambda matvec, rows: torch.stack([matvec(v) for v in rows]))
    single = point_curvature(op, op.dim, plan)
    for name in ("eig_iters", "hvps_trace", "hvps_density"):
        assert blocked[name] == single[name]
    scale = abs(single["max_eig"])
    for name in ("max_eig", "min_eig"):
        assert blocked[name] == single[name]  # before any block
    assert blocked["trace"] == pytest.approx(single["trace"], abs=FP32_PRODUCT * op.dim * scale)
    np.testing.assert_allclose(blocked["esd_nodes"], single["esd_nodes"], atol=1e-4 * scale)


# --- the stopping rule -----------------------------------------------------------------------------

def planted_outlier(dim=300, outlier=-0.02, seed=0):
    """A dense symmetric matrix: a bulk of eigenvalues near 0, a few positive ones up to 1, one small negative
    outlier below the bulk (a trained minimum's shape); its eigenvalues exactly, and the matrix."""
    rng = np.random.default_rng(seed)
    spectrum = np.concatenate([rng.normal(0, 1e-4, dim - 11), rng.uniform(0.05, 0.6, 9), [1.0, outlier]])
    q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    return np.sort(spectrum), torch.tensor(q @ np.diag(spectrum) @ q.T)


def former_rule_steps(matvec, dim, seed, tol=1e-3, miss_prob=1e-2):
    """Where the rule before issue 22 stopped: the Christoffel sum to p_{k-1} only."""
    limit = hidden_weight_log_limit(dim, miss_prob)
    for state in lanczos_steps(matvec, start_vector(dim, seed), dim):
        theta = np.linalg.eigvalsh(state.tridiagonal().numpy())
        margin = tol * max(abs(theta[0]), abs(theta[-1]))
        if all(log_christoffel_sum(state.alphas, state.betas, x) >= limit for x in (theta[0] - margin,
                                                                                      theta[-1] + margin)):
            return state.steps


def test_the_stopping_rule_finds_a_planted_negative_outlier_with_fewer_products_than_before():
    """Each extreme is within tol * max|λ| with probability >= 99 % (miss_prob 0.01 per side): over 60 starts
    at 3 matrices, more than 6 misses would be a 0.3 % event for a rule that keeps that; none are expected."""
    misses, now, before = 0, 0, 0
    for matrix_seed in range(3):
        spectrum, h = planted_outlier(seed=matrix_seed)
        for seed in range(20):
            r = lanczos_extremes(lambda v: h @ v, len(spectrum), seed=seed)
            scale = max(abs(spectrum[0]), abs(spectrum[-1]))
            misses += abs(r.lam_min - spectrum[0]) > 1e-3 * scale or abs(r.lam_max - spectrum[-1]) > 1e-3 * scale
            former = former_rule_steps(lambda v: h @ v, len(spectrum), seed)
            assert r.converged and r.hvps <= former  # the sum to p_k is the former sum one step earlier
            now, before = now + r.hvps, before + former
    assert misses <= 6
    assert now <= before - 30  # at x = θ - margin of the step before, which is at least as far in


def test_the_sum_to_p_k_is_the_next_steps_sum_without_its_product():
    _, h = planted_outlier(dim=80)
    states = [(list(s.alphas), list(s.betas), s.beta_next) for s in lanczos_steps(lambda v: h @ v,
                                                                                  start_vector(80, 1), 12)]
    for (alphas, betas, beta_next), (alphas1, betas1, _) in zip(states, states[1:]):
        for x in (-0.5, 0.3, 1.2):
            assert log_christoffel_sum(alphas, betas, x, beta_next) == log_christoffel_sum(alphas1, betas1, x)


# --- gradient graphs kept within a point --------------------------------------------------------------

def test_kept_graphs_give_the_same_products_and_keep_batches_while_the_budget_lasts():
    op = tiny_op(samples=48, batch=16)  # three batches
    vectors = torch.randn(4, op.dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    single = torch.stack([op(v) for v in vectors])
    whole = KeptGraphs(op, budget=10 ** 12)
    for _ in range(2):  # the second time, every graph is reused
        assert_same_products(torch.stack([whole(v) for v in vectors]), single)
        assert_same_products(block_products(whole, vectors), single)
    assert whole.kept == 3 and whole.kept_bytes > 0
    one = KeptGraphs(op, budget=whole.kept_bytes // 3 + 1)  # room for about one batch's graph
    assert_same_products(block_products(one, vectors), single)
    assert_same_products(block_products(one, vectors), single)
    assert 1 <= one.kept < 3 and one.kept_bytes <= one.budget
    none = KeptGraphs(op, budget=0)
    assert_same_products(none(vectors[0]).unsqueeze(0), single[:1]) and none.kept == 0
    whole.close()
    assert whole.kept == 0


def test_point_curvature_with_kept_graphs_equals_without():
    op = tiny_op(samples=48, batch=16)
    plan = CurvaturePlan(1e-3, 30, 1, trace_samples=4, density_probes=2, density_steps=6)
    kept, plain = point_curvature(op, op.dim, plan, keep_bytes=10 ** 12), point_curvature(op, op.dim, plan)
    assert kept["eig_iters"] == plain["eig_iters"] and kept["hvps_trace"] == plain["hvps_trace"]
    scale = abs(plain["max_eig"])
    for name in ("max_eig", "min_eig", "trace"):
        assert kept[name] == pytest.approx(plain[name], abs=1e-5 * scale * (op.dim if name == "trace" else 1))


def test_the_kept_graph_budget_is_a_share_of_host_memory_less_the_bases_and_none_on_a_gpu():
    from landscape.host import available_memory
    from landscape.job.memory import KEEP_SHARE, kept_graph_budget
    assert kept_graph_budget(torch.device("cuda"), 10, 10) == 0
    budget = kept_graph_budget(torch.device("cpu"), 1000, 100)
    assert 0 < budget <= KEEP_SHARE * available_memory() - 1000 * 100 * 8 + 2 ** 27  # the memory moves a little
    assert kept_graph_budget(torch.device("cpu"), 10 ** 12, 100) == 0  # bases larger than the share: keep nothing
