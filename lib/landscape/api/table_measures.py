"""The columns of landscape.sharpness_table and how one (checkpoint, column) item is computed.

A measure is a dict {'kind': ..., 'name': ... (optional), **options} or a kind's name alone:
    'sharpness'           landscape.sharpness(**options) (rho is required), its .value
    'pac_bayes_flatness'  landscape.pac_bayes_flatness(**options), its .flatness (1/σ²)
    'max_eig', 'trace'    λmax / the Hutchinson trace of the mean-loss Hessian at the checkpoint, as hessian_map
                          computes them at x=(0, 0, 1); options tol, max_iter, samples, seed, params, probes
Every item runs on one rank with no collective call, so the dispatcher may hand it to any rank.
"""
import math

import torch

from ..curvature.gauss_newton import curvature_operator
from ..curvature.hvp import hessian_param_names
from ..curvature.plan import DEFAULT_SAMPLES, hessian_dim, make_plan, sample_subset
from ..curvature.point import point_curvature
from ..errors import ChoiceError, UnreachableTargetError
from ..inputs.first_batch import FiniteBatches
from ..inputs.user import is_pair, on_device_pair, probe, summed_loss
from ..job.mpi import World
from ..space.evaluate import evaluate_batches, tensor_batches
from ..space.precision import strict_fp32
from .flatness import pac_bayes_flatness
from .session import evaluation_mode
from .sharpness import sharpness

BASE_COLUMNS = ("train_loss", "train_error", "test_loss", "test_error")
KINDS = ("sharpness", "pac_bayes_flatness", "max_eig", "trace")
CURVATURE_OPTIONS = ("tol", "max_iter", "samples", "seed", "params", "probes")
TRACE_PROBES = 100  # Hutchinson probes of the trace unless 'probes' is given
EVAL_BATCH = 256


def measure_specs(measures):
    """[{'kind', 'name', **options}] in the order given; names unique and not a base column."""
    specs = [_spec(entry) for entry in measures]
    names = [spec["name"] for spec in specs]
    clash = sorted({n for n in names if names.count(n) > 1 or n in BASE_COLUMNS})
    if clash:
        raise ChoiceError(f"measure names must be unique and not one of {BASE_COLUMNS}: {', '.join(clash)} "
                          f"(give each a 'name')")
    return specs


def _spec(entry):
    spec = {"kind": entry} if isinstance(entry, str) else dict(entry) if isinstance(entry, dict) else None
    if spec is None or spec.get("kind") not in KINDS:
        raise ChoiceError(f"a measure is one of {KINDS} or a dict with 'kind' among them and its options; "
                          f"got {entry!r}")
    if spec["kind"] == "sharpness" and "rho" not in spec:
        raise ChoiceError(f"the sharpness measure {entry!r} needs its radius 'rho'")
    unknown = set(spec) - {"kind", "name", *CURVATURE_OPTIONS} if spec["kind"] in ("max_eig", "trace") else ()
    if unknown:
        raise ChoiceError(f"{spec['kind']} takes the options {CURVATURE_OPTIONS}; not {', '.join(sorted(unknown))}")
    spec.setdefault("name", default_name(spec))
    return spec


def default_name(spec):
    """e.g. 'worst_l2_adaptive_rho0.05', 'average_l2_rho0.1_m32', 'pac_bayes_mag', 'max_eig'."""
    kind = spec["kind"]
    if kind == "sharpness":
        parts = [spec.get("measure", "worst"), spec.get("norm", "l2")]
        parts += ["adaptive"] if spec.get("adaptive", True) else []
        parts += [f"rho{spec['rho']:g}"] + ([f"m{spec['m']}"] if spec.get("m") is not None else [])
        return "_".join(parts)
    if kind == "pac_bayes_flatness":
        return "pac_bayes_mag" if spec.get("magnitude_aware") else "pac_bayes"
    return kind


def options_of(spec):
    return {k: v for k, v in spec.items() if k not in ("kind", "name")}


def measure_value(spec, model, data, loss, device):
    """One measure of one model on the training data, a float."""
    kind, options = spec["kind"], options_of(spec)
    if kind == "sharpness":
        return float(sharpness(model, data, loss, device=device, **options).value)
    if kind == "pac_bayes_flatness":
        try:
            return float(pac_bayes_flatness(model, data, loss, device=device, **options).flatness)
        except UnreachableTargetError as e:  # undefined at this checkpoint (e.g. one at chance): NaN, said
            print(f"[table] {spec['name']} is undefined here, stored as NaN: {e}", flush=True)
            return math.nan
    return curvature_value(kind, model, data, loss, device, **options)


def curvature_value(kind, model, data, loss, device, tol=1e-3, max_iter=100, samples=DEFAULT_SAMPLES, seed=0,
                    params="reference", probes=TRACE_PROBES):
    """λmax ('max_eig') or the trace of the mean-loss Hessian over `params`, as hessian_map at one point."""
    names = list(hessian_param_names(model, params))
    total = summed_loss(loss)
    with evaluation_mode(model, device, World(None)) as target:
        probe(model, data, loss, total, target)
        if is_pair(data):
            inputs, targets = sample_subset(*on_device_pair(data, target), samples, seed)
            batches = tensor_batches(inputs, targets, EVAL_BATCH)
        else:
            batches = FiniteBatches(data)
        plan = make_plan(model, names, tol, max_iter, seed, trace=probes if kind == "trace" else None)
        hvp = curvature_operator("hessian", model, names, total, batches, method="double_backward")
        with strict_fp32():
            return float(point_curvature(hvp, hessian_dim(model, names), plan)[kind])


def loss_and_error(model, data, loss, device):
    """(mean loss, error as a fraction, NaN where the outputs have no accuracy) of the model on `data`."""
    total = summed_loss(loss)
    with evaluation_mode(model, device, World(None)) as target:
        hits = probe(model, data, loss, total, target)
        batches = tensor_batches(*on_device_pair(data, target), EVAL_BATCH) if is_pair(data) else FiniteBatches(data)
        mean, accuracy = evaluate_batches(model, batches, total, accuracy=hits, device=target)
    return float(mean), float("nan") if accuracy is None else 1.0 - accuracy / 100.0


def model_of(entry):
    """A checkpoint's model: the module itself, or what its factory (a callable of no arguments) builds."""
    if isinstance(entry, torch.nn.Module):
        return entry
    model = entry()
    if not isinstance(model, torch.nn.Module):
        raise ChoiceError(f"a checkpoint's factory returned a {type(model).__name__}, not a torch.nn.Module")
    return model
