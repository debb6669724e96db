"""HuggingFace models as they are: dict inputs passed as keyword arguments, ModelOutput objects, the
causal_lm loss (a mean over every predicted token, padding excluded). Truths: a per-token loop over
copies of the model moved by hand, and dense Hessians of the same model under eager attention."""
import copy
import math
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import landscape
from landscape.errors import DataError, LandscapeError, ModelError

VOCAB, SEQ = 20, 8


def tiny_gpt2(attn="sdpa", n_layer=1, seed=0):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(seed)
    config = transformers.GPT2Config(vocab_size=VOCAB, n_positions=SEQ, n_embd=8, n_layer=n_layer, n_head=2,
                                     bos_token_id=0, eos_token_id=0, initializer_range=0.3)
    model = transformers.GPT2LMHeadModel(config).eval()
    model.set_attn_implementation(attn)
    return model


def padded_tokens(count=6):
    """Token ids with right padding of several lengths (so batches predict different numbers of tokens)."""
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(1, VOCAB, (count, SEQ), generator=gen)
    lengths = torch.tensor([SEQ, 3, SEQ, 5, 2, SEQ, 4, 6][:count])
    mask = (torch.arange(SEQ)[None, :] < lengths[:, None]).long()
    return {"input_ids": ids.masked_fill(mask == 0, 0), "attention_mask": mask}, ids.masked_fill(mask == 0, 0)


def per_token_truth(model, inputs, a, direction):
    """(mean loss, accuracy %) at theta0 + a*d by a loop: every sequence alone, every position t whose next
    token t+1 is not padding predicts it; the mean is over all such tokens of all sequences."""
    moved = copy.deepcopy(model)
    with torch.no_grad():
        for (name, p), d in zip(moved.named_parameters(), direction):
            p.add_(a * d)
    losses, hits = [], []
    with torch.no_grad():
        for ids, mask in zip(inputs["input_ids"], inputs["attention_mask"]):
            logits = moved(input_ids=ids[None], attention_mask=mask[None]).logits[0].double()
            for t in range(SEQ - 1):
                if mask[t + 1]:
                    losses.append(-F.log_softmax(logits[t], dim=-1)[ids[t + 1]].item())
                    hits.append(int(logits[t].argmax()) == int(ids[t + 1]))
    return math.fsum(losses) / len(losses), 100.0 * sum(hits) / len(hits)


def test_causal_lm_surface_of_a_raw_huggingface_model_equals_a_per_token_loop():
    """The model returns CausalLMOutputWithCrossAttentions and takes input_ids/attention_mask by keyword;
    batches of 4 and 2 sequences predict different numbers of tokens, so the mean over tokens is not the
    mean of the batch means (checked: the two differ here by far more than the tolerance)."""
    model = tiny_gpt2()
    inputs, targets = padded_tokens()
    dirs = landscape.random_directions(model, 1, seed=3)
    res = landscape.surface(model, (inputs, targets), loss="causal_lm", directions=dirs, x=(-0.5, 0.5, 3),
                            batch_size=4)
    # float32 logits summed over ~30 tokens of log-probabilities ~3: rounding ~1e-6 relative
    for a, loss, acc in zip((-0.5, 0.0, 0.5), res.train_loss, res.train_acc):
        want_loss, want_acc = per_token_truth(model, inputs, a, dirs.x)
        assert loss == pytest.approx(want_loss, rel=1e-5)
        assert acc == pytest.approx(want_acc)
    first, second = per_token_truth(model, _rows(inputs, 0, 4), 0.0, dirs.x), \
        per_token_truth(model, _rows(inputs, 4, 6), 0.0, dirs.x)
    assert abs((first[0] + second[0]) / 2 - res.train_loss[1]) > 1e-3  # a mean of batch means would fail


def _rows(inputs, start, stop):
    return {key: value[start:stop] for key, value in inputs.items()}


def test_padding_is_excluded_whatever_the_padded_tokens_are():
    """Changing the ids under the padding (mask 0) changes nothing: they are neither read (attention masks
    them) nor predicted (their labels are ignored)."""
    model = tiny_gpt2()
    inputs, targets = padded_tokens()
    noisy = dict(inputs, input_ids=inputs["input_ids"].where(inputs["attention_mask"] == 1, 7))
    dirs = landscape.random_directions(model, 1)
    kept = landscape.surface(model, (inputs, targets), loss="causal_lm", directions=dirs, x=(-0.5, 0.5, 3))
    changed = landscape.surface(model, (noisy, noisy["input_ids"]), loss="causal_lm", directions=dirs,
                                x=(-0.5, 0.5, 3))
    np.testing.assert_allclose(changed.train_loss, kept.train_loss, rtol=1e-6)


def test_a_dataloader_of_dict_batches_equals_the_pair():
    model = tiny_gpt2()
    inputs, targets = padded_tokens()
    samples = [({key: value[i] for key, value in inputs.items()}, targets[i]) for i in range(len(targets))]
    loader = torch.utils.data.DataLoader(samples, batch_size=2)  # its collate stacks the dicts key by key
    dirs = landscape.random_directions(model, 1)
    pair = landscape.surface(model, (inputs, targets), loss="causal_lm", directions=dirs, x=(-1, 1, 3))
    batches = landscape.surface(model, loader, loss="causal_lm", directions=dirs, x=(-1, 1, 3))
    np.testing.assert_allclose(batches.train_loss, pair.train_loss, rtol=1e-6)
    np.testing.assert_allclose(batches.train_acc, pair.train_acc)


def dense_lm_hessian(model, inputs, targets):
    """The Hessian of the token-mean causal-LM loss over every parameter, by autograd on a flat vector.
    GPT-2 ties lm_head to the token embedding: both names get the same slice, spelled out here."""
    params = dict(model.named_parameters())
    names = list(params)
    shapes = [params[n].shape for n in names]
    labels = targets.masked_fill(inputs["attention_mask"] == 0, -100)[:, 1:].reshape(-1)

    def loss(flat):
        parts = dict(zip(names, (t.view(s) for t, s in zip(flat.split([s.numel() for s in shapes]), shapes))))
        parts["lm_head.weight"] = parts["transformer.wte.weight"]
        logits = torch.func.functional_call(model, parts, (), dict(inputs), tie_weights=False).logits
        return F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), labels, ignore_index=-100)
    flat = torch.cat([params[n].detach().reshape(-1) for n in names])
    return torch.autograd.functional.hessian(loss, flat, vectorize=True)


def test_causal_lm_hessian_of_dict_inputs_equals_the_dense_hessian():
    """hessian_map on the raw sdpa model (dict inputs, batches of unequal token counts) against eigvalsh of
    the dense float64 Hessian of the same weights under eager attention."""
    model = tiny_gpt2().double()
    inputs, targets = padded_tokens()
    res = landscape.hessian_map(model, (inputs, targets), loss="causal_lm", params="all", samples=None,
                                hvp_batch=4, x=(0.0, 0.0, 1), tol=1e-6, max_iter=300)
    eager = copy.deepcopy(model)
    eager.set_attn_implementation("eager")
    eigs = torch.linalg.eigvalsh(dense_lm_hessian(eager, inputs, targets))
    scale = float(eigs.abs().max())
    assert bool(res.eig_converged[0])
    assert res.max_eig[0] == pytest.approx(float(eigs[-1]), abs=1e-5 * scale)
    assert res.min_eig[0] == pytest.approx(float(eigs[0]), abs=1e-5 * scale)


@pytest.mark.parametrize("case,error,words", [
    ("classifier", ModelError, "(16, T, vocabulary)"),
    ("flat targets", DataError, "token ids as targets"),
    ("token out of range", DataError, "outside [0, 20)"),
    ("uneven dict", DataError, "different numbers of samples"),
    ("dict batch", DataError, "split it into (inputs, targets)"),
])
def test_what_causal_lm_cannot_read_is_one_line(case, error, words):
    model = tiny_gpt2()
    inputs, targets = padded_tokens()
    data = {
        "classifier": lambda: (torch.randn(16, 5), torch.zeros(16, dtype=torch.long)),
        "flat targets": lambda: (inputs, targets[:, 0]),
        "token out of range": lambda: (inputs, targets + VOCAB),
        "uneven dict": lambda: (dict(inputs, attention_mask=inputs["attention_mask"][:3]), targets),
        "dict batch": lambda: [dict(inputs, labels=targets)],
    }[case]()
    used = torch.nn.Sequential(torch.nn.Linear(5, 3)) if case == "classifier" else model
    with pytest.raises(error) as caught:
        landscape.surface(used, data, loss="causal_lm", x=(-1, 1, 3))
    assert words in str(caught.value) and "\n" not in str(caught.value)
    assert isinstance(caught.value, LandscapeError)


MPI_SCRIPT = """
import sys, numpy as np, torch
sys.path.insert(0, {tests!r})
import landscape
from test_transformers import padded_tokens, tiny_gpt2
model = tiny_gpt2(n_layer=1)
data = padded_tokens()
dirs = landscape.random_directions(model, 2, seed=1)
surf = landscape.surface(model, data, loss="causal_lm", directions=dirs, x=(-1, 1, 3), y=(-1, 1, 3), batch_size=4)
hess = landscape.hessian_map(model, data, loss="causal_lm", directions=dirs, x=(-0.5, 0.5, 3), params="all",
                             hvp_batch=4, max_iter=40)
ggn = landscape.hessian_map(model, data, loss="causal_lm", directions=dirs, x=(-0.5, 0.5, 3), params="all",
                            hvp_batch=4, max_iter=30, trace=2, curvature="ggn")  # equal, converged or not
np.save(sys.argv[1], np.concatenate([surf.train_loss.ravel(), surf.train_acc.ravel(), hess.max_eig, hess.min_eig,
                                     ggn.max_eig, ggn.min_eig, ggn.trace]))
"""


@pytest.mark.slow
def test_two_ranks_map_a_transformer_as_one_does(tmp_path):
    """Under mpirun -n 2 the surface, the Hessian map and the GGN map (with its trace) of a GPT-2 (dict inputs,
    causal_lm) equal one rank's: every point is computed whole by one rank, with the same batches, so the
    values agree bit for bit. The GGN is positive semi-definite: its λmin is 0 within tol·λmax."""
    from conftest import ROOT, script_results
    one, two = script_results(tmp_path, MPI_SCRIPT.format(tests=os.path.join(ROOT, "tests")))
    np.testing.assert_array_equal(one, two)
    ggn_max, ggn_min = two[-9:-6], two[-6:-3]
    assert np.isfinite(two).all() and (ggn_min > -1e-5 * ggn_max).all()  # Ritz values lie within the spectrum


def test_the_data_hash_covers_the_keyword_names():
    """A resume compares the data's hash: the same tensors under other keyword names are other data."""
    from landscape.inputs.user import data_digest
    inputs, targets = padded_tokens()
    renamed = {"input_ids": inputs["attention_mask"], "attention_mask": inputs["input_ids"]}
    relabelled = {"token_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"]}
    digests = {data_digest((d, targets)) for d in (inputs, renamed, relabelled)}
    assert len(digests) == 3 and data_digest((inputs, targets)) == data_digest((dict(inputs), targets.clone()))
