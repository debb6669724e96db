"""The generalized Gauss–Newton matrix and the empirical Fisher (curvature="ggn" / "ef"). Truths built
independently: the logits' Jacobian by torch.autograd.functional.jacobian, the loss's Hessian in the logits
by torch.autograd.functional.hessian, per-sample gradients by a Python loop over single samples (float64);
and curvlinops-for-pytorch's GGNLinearOperator / EFLinearOperator on a CNN of a few thousand parameters."""
import json

import h5py
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import landscape
from landscape.api.curvature_map import MeanLossHessian
from landscape.cli.hessian import main as hessian_main
from landscape.curvature.gauss_newton import MeanLossEF, MeanLossGGN, curvature_operator
from landscape.curvature.hvp import hessian_param_names
from landscape.errors import CurvatureError, SurfaceFileError
from landscape.files.resume import stored_settings
from landscape.inputs.user import summed_loss
from landscape.job.batch import hessian_batch_size
from landscape.space.model_io import call_functional, logits_of, take

from tiny import make_data, make_model

SPLIT = (7, 13, 20)  # unequal batches: the products are summed and divided by the total weight


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()


def features(n=20, classes=3):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 4, generator=g, dtype=torch.float64), torch.randint(0, classes, (n,), generator=g)


def tiny_cnn(n=20):
    torch.manual_seed(0)
    model = make_model().double().eval()
    (x, y), _ = make_data(n_train=n)
    return model, (x.double(), y)


def batches_of(data, stops=SPLIT):
    x, y = data
    starts = (0, *stops[:-1])
    return [(take(x, slice(a, b)), y[a:b]) for a, b in zip(starts, stops)]


def names_of(model):
    return [n for n, _ in model.named_parameters()]


def flat(model, names):
    params = dict(model.named_parameters())
    return torch.cat([params[n].detach().reshape(-1) for n in names])


def logits_at(model, names, theta, inputs, ties=()):
    """The model's logits with the parameters `names` set from the flat vector theta (ties: (copy, of) names)."""
    params = dict(model.named_parameters())
    parts = dict(zip(names, (t.view(params[n].shape) for n, t in
                             zip(names, theta.split([params[n].numel() for n in names])))))
    for copy, of in ties:
        parts[copy] = parts[of]
    return logits_of(call_functional(model, parts, inputs))


def dense_ggn(model, names, batches, loss_total, ties=()):
    """Σ_b J_bᵀ (∇²_z ℓ_b) J_b / W: the Jacobian of the logits and the loss's Hessian in them, each dense."""
    theta, total, weight = flat(model, names), 0, 0
    for inputs, targets in batches:
        z = logits_at(model, names, theta, inputs, ties).detach()
        jac = torch.autograd.functional.jacobian(lambda t: logits_at(model, names, t, inputs, ties), theta,
                                                 vectorize=True).reshape(z.numel(), -1)
        hz = torch.autograd.functional.hessian(lambda w: loss_total(w.view(z.shape), targets, inputs)[0],
                                               z.reshape(-1))
        total = total + jac.T @ hz.to(jac.dtype) @ jac
        weight += float(loss_total(z, targets, inputs)[1])
    return total / weight


def dense_ef(model, names, batches, loss_total, ties=()):
    """Σ_i g_i g_iᵀ / W, g_i the gradient of sample i's summed loss, each sample run alone."""
    theta, grads, weight = flat(model, names), [], 0
    for inputs, targets in batches:
        for i in range(len(targets)):
            one, target = take(inputs, slice(i, i + 1)), targets[i:i + 1]
            t = theta.clone().requires_grad_()
            loss, w = loss_total(logits_at(model, names, t, one, ties), target, one)
            grads.append(torch.autograd.grad(loss, t)[0])
            weight += float(w)
    g = torch.stack(grads)
    return g.T @ g / weight


def dense_truth(curvature, *args, **kwargs):
    return {"ggn": dense_ggn, "ef": dense_ef}[curvature](*args, **kwargs)


def mean_ce(outputs, targets):
    return F.cross_entropy(outputs, targets)  # a user's loss: float64 all the way (the named one casts to fp32)


def operator_matrix(op):
    eye = torch.eye(op.dim, dtype=torch.float64)
    return torch.stack([op(e) for e in eye], dim=1)


@pytest.mark.parametrize("curvature", ["ggn", "ef"])
@pytest.mark.parametrize("method", ["double_backward", "fwd_rev"])
def test_products_on_an_mlp_equal_the_dense_matrix_which_is_psd(curvature, method):
    model, data = mlp(), features()
    names, loss = names_of(model), summed_loss(mean_ce)
    op = curvature_operator(curvature, model, names, loss, batches_of(data), method)
    matrix = operator_matrix(op)
    truth = dense_truth(curvature, model, names, [data], loss)
    scale = truth.abs().max().item()
    assert (matrix - truth).abs().max().item() <= 1e-12 * scale  # float64 sums of ~50 terms
    eigs = torch.linalg.eigvalsh((matrix + matrix.T) / 2)
    assert eigs[0].item() >= -1e-12 * eigs[-1].item()  # positive semi-definite up to rounding
    assert op.calls == op.dim


@pytest.mark.parametrize("curvature", ["ggn", "ef"])
def test_products_on_the_tiny_cnn_equal_the_dense_matrix(curvature):
    """Convolutions, BN in eval mode (running statistics), only the weights ('reference' parameters)."""
    model, data = tiny_cnn()
    names = hessian_param_names(model, "reference")
    loss = summed_loss(mean_ce)
    op = curvature_operator(curvature, model, names, loss, batches_of(data))
    truth = dense_truth(curvature, model, names, [data], loss)
    vectors = torch.randn(3, op.dim, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    for v in vectors:
        want = truth @ v
        assert (op(v) - want).abs().max().item() <= 1e-12 * want.abs().max().item()


@pytest.mark.parametrize("loss", ["crossentropy", "mse"])
def test_named_losses_ggn_is_taken_in_the_logits_as_they_are(loss):
    """The named losses compute in float32 (rounding ~1e-7 relative). 'mse' applies a softmax: its GGN is
    Jᵀ ∇²_z ℓ J all the same, which is not positive semi-definite in general (checked: here it is not)."""
    model, data = mlp(), features()
    names, total = names_of(model), summed_loss(loss)
    matrix = operator_matrix(curvature_operator("ggn", model, names, total, batches_of(data)))
    truth = dense_ggn(model, names, [data], total)
    scale = truth.abs().max().item()
    assert (matrix - truth).abs().max().item() <= 1e-5 * scale
    smallest = torch.linalg.eigvalsh((matrix + matrix.T) / 2)[0].item()
    assert smallest >= -1e-5 * scale if loss == "crossentropy" else smallest < -1e-3 * scale


def test_ggn_is_the_hessian_at_zero_residual():
    """A squared error on the outputs at targets the model fits exactly: the Hessian's other term carries the
    residuals, so it vanishes and the Hessian equals the GGN (and the EF is zero: every gradient is)."""
    model, (x, _) = mlp(), features()
    with torch.no_grad():  # the targets of each batch as the operators compute its outputs: the same rounding
        targets = torch.cat([model(inputs) for inputs, _ in batches_of((x, x))])
    names, loss = names_of(model), summed_loss(lambda out, t: ((out - t) ** 2).sum(1).mean())
    batches = batches_of((x, targets))
    hessian, ggn, ef = (operator_matrix(curvature_operator(c, model, names, loss, batches))
                        for c in ("hessian", "ggn", "ef"))
    scale = hessian.abs().max().item()
    assert (ggn - hessian).abs().max().item() <= 1e-12 * scale and ef.abs().max().item() <= 1e-24 * scale


def tiny_gpt2():
    from test_transformers import tiny_gpt2 as make
    return make().double()


def test_causal_lm_products_of_a_tiny_gpt2_equal_the_dense_matrices():
    """Dict inputs, padding, a tied lm_head; a sample of the EF is a sequence (the sum over its tokens). The
    operators run the sdpa model (its math kernel); the truths run it under eager attention."""
    from test_transformers import padded_tokens
    model = tiny_gpt2()
    data = padded_tokens()
    names, loss = names_of(model), summed_loss("causal_lm")
    eager = tiny_gpt2()
    eager.set_attn_implementation("eager")
    ties = (("lm_head.weight", "transformer.wte.weight"),)
    vectors = torch.randn(2, len(flat(model, names)), generator=torch.Generator().manual_seed(3),
                          dtype=torch.float64)
    for curvature in ("ggn", "ef"):
        truth = dense_truth(curvature, eager, names, [data], loss, ties=ties)
        op = curvature_operator(curvature, model, names, loss, batches_of(data, (4, 6)))
        for v in vectors:
            want = truth @ v  # causal_lm's loss runs in float32: rounding ~1e-7 of the largest terms
            assert (op(v) - want).abs().max().item() <= 1e-5 * want.abs().max().item()
    smallest, largest = torch.linalg.eigvalsh(dense_ggn(eager, names, [data], loss, ties=ties))[[0, -1]]
    assert smallest >= -1e-5 * largest  # cross-entropy is convex in the logits: the GGN is PSD


@pytest.mark.parametrize("curvature", ["ggn", "ef"])
def test_hessian_map_extremes_trace_density_and_layers_are_the_dense_matrices(curvature):
    model, data = mlp(), features()
    names, loss = names_of(model), summed_loss(mean_ce)
    res = landscape.hessian_map(model, data, loss=mean_ce, params="all", samples=None, x=(0.0, 0.0, 1), tol=1e-6,
                                trace=20, density=(2, 10), layers=True, curvature=curvature, hvp_batch=7,
                                progress_secs=1e9)
    truth = dense_truth(curvature, model, names, [data], loss)
    eigs = torch.linalg.eigvalsh(truth)
    scale = eigs.abs().max().item()
    assert abs(res.max_eig[0] - eigs[-1].item()) <= 1e-5 * scale and res.eig_converged[0]
    assert abs(res.min_eig[0] - eigs[0].item()) <= 1e-5 * scale
    assert abs(res.trace[0] - torch.trace(truth).item()) <= 4 * res.trace_err[0] + 1e-9
    assert res.esd_weights[0].sum() == pytest.approx(1.0) and res.esd_nodes[0].min() >= -1e-5 * scale
    for k, (lo, hi) in enumerate([(0, 30), (30, 51)]):  # layer "0": 4*6 + 6, layer "2": 6*3 + 3
        block = torch.linalg.eigvalsh(truth[lo:hi, lo:hi])
        assert abs(res.layer_max_eig[0, k] - block[-1].item()) <= 1e-5 * scale
        assert abs(res.layer_min_eig[0, k] - block[0].item()) <= 1e-5 * scale


def test_a_resume_with_another_operator_is_refused_and_old_files_are_hessian_maps(tmp_path):
    model, data = mlp(), features()
    common = dict(x=(-0.5, 0.5, 2), max_iter=10, progress_secs=1e9)
    path = str(tmp_path / "ggn.h5")
    first = landscape.hessian_map(model, data, path=path, curvature="ggn", **common)
    again = landscape.hessian_map(model, data, path=path, curvature="ggn", **common)
    np.testing.assert_array_equal(again.max_eig, first.max_eig)
    with pytest.raises(SurfaceFileError, match="curvature: file has 'ggn', this run has 'ef'"):
        landscape.hessian_map(model, data, path=path, curvature="ef", **common)
    old = str(tmp_path / "old.h5")
    landscape.hessian_map(model, data, path=old, **common)
    with h5py.File(old, "r+") as f:  # as a file made before the choice existed: no curvature recorded
        settings = json.loads(f.attrs["hessian_settings"])
        assert settings.pop("curvature") == "hessian"
        f.attrs["hessian_settings"] = json.dumps(settings, sort_keys=True)
    assert landscape.hessian_map(model, data, path=old, **common).complete
    with pytest.raises(SurfaceFileError, match="curvature: file has 'hessian', this run has 'ggn'"):
        landscape.hessian_map(model, data, path=old, curvature="ggn", **common)


def test_the_driver_records_its_curvature_and_refuses_to_resume_with_another(tmp_path, capsys):
    base = ["--model", "tiny:make_model", "--dataset", "tiny:make_data", "--x=-1:1:2", "--max_iter", "10",
            "--hessian_samples", "16", "--dir_file", str(tmp_path / "d.h5"), "--surf_file", str(tmp_path / "s.h5")]
    assert hessian_main([*base, "--curvature", "ef"]) == 0
    assert stored_settings(tmp_path / "s.h5", "hessian")["curvature"] == "ef"
    capsys.readouterr()
    assert hessian_main([*base, "--curvature", "ggn"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert any("curvature: file has 'ef', this run has 'ggn'" in line for line in err)
    with pytest.raises(SystemExit) as ended:
        hessian_main([*base, "--curvature", "fisher"])
    assert ended.value.code == 2


class TupleOut(nn.Module):
    """Returns (scores, features): no logits the GGN could be taken through."""

    def __init__(self):
        super().__init__()
        self.inner = mlp()

    def forward(self, x):
        return self.inner(x), x


class Pooled(nn.Module):
    """One row of logits for the whole batch: no per-sample gradients."""

    def __init__(self):
        super().__init__()
        self.inner = mlp()

    def forward(self, x):
        return self.inner(x).mean(0, keepdim=True)


def test_models_without_the_logits_an_operator_needs_are_refused_in_one_line(tmp_path):
    """Refused before any work: no results file is made."""
    data, path = features(), str(tmp_path / "h.h5")
    with pytest.raises(CurvatureError, match="returns no floating logits") as caught:
        landscape.hessian_map(TupleOut(), data, loss=lambda out, t: F.cross_entropy(out[0], t), curvature="ggn",
                              x=(0, 0, 1), path=path, progress_secs=1e9)
    assert "\n" not in str(caught.value)
    with pytest.raises(CurvatureError, match="one row of logits per sample"):
        landscape.hessian_map(Pooled(), data, loss=lambda out, t: (out ** 2).sum(), curvature="ef", x=(0, 0, 1),
                              path=path, progress_secs=1e9)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(CurvatureError, match="curvature='fisher'"):
        landscape.hessian_map(mlp(), data, curvature="fisher", x=(0, 0, 1), progress_secs=1e9)


@pytest.mark.parametrize("curvature,kind", [("ggn", MeanLossGGN), ("ef", MeanLossEF)])
def test_the_gpu_batch_probe_runs_the_chosen_operator(curvature, kind):
    """hvp_batch='auto' probes with the operator of the map (a fake meter drives the GPU path on the CPU)."""
    from test_memory import FakeMeter
    model, (x, y) = tiny_cnn(n=40)
    names = tuple(hessian_param_names(model))
    hessian = MeanLossHessian(model, names, summed_loss(None), "double_backward", curvature)
    made = []

    def operator(batches):
        made.append(hessian.operator(batches))
        return made[-1]
    meter = FakeMeter(capacity=16, per_sample=1, headroom=1000)
    size = hessian_batch_size(operator, x, y, hessian.dim, torch.device("cpu"), meter=meter, timer=lambda b: 1.0 / b)
    assert size <= 16  # what the meter lets fit (the timer then prefers the largest)
    assert made and all(isinstance(op, kind) and op.calls == 1 for op in made)  # probed: 64, 32, 16


def mid_cnn():
    """A CNN of 2,058 parameters (BN in eval mode), float64."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                         nn.Linear(64, 10)).double().eval()


@pytest.mark.parametrize("curvature", ["ggn", "ef"])
def test_products_equal_curvlinops(curvature):
    """curvlinops' operators with CrossEntropyLoss(reduction='mean') are (1/N) Σ_n over all N samples of the
    data (each batch weighted N_b/N): the same normalisation as the mean over samples here."""
    curvlinops = pytest.importorskip("curvlinops")
    model = mid_cnn()
    (x, y), _ = make_data(n_train=32)
    batches = batches_of((x.double(), y), (12, 24, 32))
    params = [p for p in model.parameters()]
    theirs_of = {"ggn": curvlinops.GGNLinearOperator, "ef": curvlinops.EFLinearOperator}[curvature]
    theirs = theirs_of(model, nn.CrossEntropyLoss(reduction="mean"), params, batches)
    ours = curvature_operator(curvature, model, names_of(model), summed_loss(mean_ce), batches)
    assert ours.dim == sum(p.numel() for p in params) == 2058
    vectors = torch.randn(3, ours.dim, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    for v in vectors:
        want = theirs @ v
        assert (ours(v) - want).abs().max().item() <= 1e-10 * want.abs().max().item()


def test_the_plots_name_the_operator_the_file_holds(tmp_path):
    """Labels come from the file's hessian_settings: a GGN map is not drawn as 'λmax (Hessian)'."""
    from landscape.files.results import read_results
    from landscape.plot.quantities import find, operator_name
    model = mlp()
    for curvature, name in (("ggn", "GGN"), ("hessian", "Hessian")):
        path = tmp_path / f"{curvature}.h5"
        landscape.hessian_map(model, features(), loss=mean_ce, x=(0.0, 0.0, 1), path=str(path), curvature=curvature,
                              max_iter=20, progress_secs=1e9)
        results = read_results(str(path))
        assert operator_name(results) == name and find(results, "max_eig").label == f"λmax ({name})"
    assert operator_name({"attrs": {"hessian_settings": "not json"}}) == "Hessian"  # a foreign file's attribute
