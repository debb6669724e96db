"""A HuggingFace GPT-2 through the Python API: its 2D loss landscape (fp32 and bf16), and the Hessian's
extremes along one direction over every parameter and over the attention layers alone.

    PYTHONPATH=lib:. python examples/gpt2_landscape.py [out_folder]     # or under mpirun -n 2
TRAIN_SECONDS (or TRAIN_STEPS), POINTS (per surface axis), HESSIAN_POINTS and HESSIAN_SAMPLES shrink it. It saves the
checkpoint and directions that the README's plot_surface.py / plot_hessian_eig.py commands map again.
"""
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import landscape  # noqa: E402
from examples.gpt2 import keyword_inputs, make_data, make_model, train  # noqa: E402

ATTENTION = ["transformer.h.*.attn.*"]  # the query/key/value and output projections of every block

out = sys.argv[1] if len(sys.argv) > 1 else "examples_out"
seconds, points = float(os.environ.get("TRAIN_SECONDS", 60)), int(os.environ.get("POINTS", 21))
hessian_points = int(os.environ.get("HESSIAN_POINTS", 9))
hessian_samples = int(os.environ.get("HESSIAN_SAMPLES", 256))  # a fixed seeded subset of the windows
steps = int(os.environ["TRAIN_STEPS"]) if "TRAIN_STEPS" in os.environ else None
os.makedirs(out, exist_ok=True)
(train_set, test_set), model = make_data(), make_model()
budget = f"{steps} steps" if steps is not None else f"{seconds:.0f} s"
torch.manual_seed(0)
print(f"training GPT-2 for {budget}: last batch loss {train(model, train_set, seconds, steps=steps):.3f}")
torch.save(model.state_dict(), f"{out}/gpt2.t7")
dirs = landscape.random_directions(model, n=2, seed=0)
dirs.save(f"{out}/gpt2_dirs.h5", overwrite=True)  # a rerun makes the same ones

# The surface: inputs as keyword arguments (input_ids, attention_mask), loss averaged over every predicted token.
data, test = keyword_inputs(train_set), keyword_inputs(test_set)
grid = dict(x=(-1, 1, points), y=(-1, 1, points))
fp32 = landscape.surface(model, data, loss="causal_lm", directions=dirs, test_data=test, **grid,
                         path=f"{out}/gpt2_surface.h5", overwrite=True)
bf16 = landscape.surface(model, data, loss="causal_lm", directions=dirs, **grid, precision="bf16",
                         path=f"{out}/gpt2_surface_bf16.h5", overwrite=True)
centre = (points // 2, points // 2)
error = np.abs(bf16.train_loss - fp32.train_loss)
print(f"train loss at the centre {fp32.train_loss[centre]:.4f} (fp32), {bf16.train_loss[centre]:.4f} (bf16); "
      f"|bf16 - fp32| at the centre {error[centre]:.2e}, largest over the grid {error.max():.2e} "
      f"(relative {np.max(error / fp32.train_loss):.2e})")
fp32.plot("train_loss", log=True)["contour"].savefig(f"{out}/gpt2_train_loss.png")

# The Hessian along x: over every parameter, then over the attention layers alone.
line = dict(directions=dirs, x=(-1, 1, hessian_points), loss="causal_lm", samples=hessian_samples, tol=1e-3)
whole = landscape.hessian_map(model, data, params="all", path=f"{out}/gpt2_hessian.h5", overwrite=True, **line)
attention = landscape.hessian_map(model, data, params=ATTENTION, path=f"{out}/gpt2_hessian_attention.h5",
                                  overwrite=True, **line)
fig, ax = plt.subplots(figsize=(6, 4))
for res, label, style in ((whole, "all parameters", "-"), (attention, "attention only", "--")):
    ax.plot(res.x, res.max_eig, "C3" + style, label=f"λmax, {label}")
    ax.plot(res.x, res.min_eig, "C0" + style, label=f"λmin, {label}")
ax.axhline(0, color="0.6", lw=0.8)
ax.set(xlabel="α along the x direction", ylabel="eigenvalue of the mean-loss Hessian",
       title="GPT-2 (Zen of Python): Hessian extremes along x")
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(f"{out}/gpt2_hessian.png", dpi=120)
mid = hessian_points // 2
print(f"at the trained point: λmax {whole.max_eig[mid]:.3f}, λmin {whole.min_eig[mid]:.4f} (all parameters); "
      f"λmax {attention.max_eig[mid]:.3f}, λmin {attention.min_eig[mid]:.4f} (attention only)")
print(f"figures in {out}/: gpt2_train_loss.png, gpt2_hessian.png")
