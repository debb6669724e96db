"""2D loss landscape of a small transformer through the Python API (about a minute of training first).

    PYTHONPATH=lib:. python examples/transformer_landscape.py [out_folder]     # or under mpirun -n 2
TRAIN_SECONDS (or TRAIN_STEPS, a fixed number of steps) and POINTS (per axis) shrink it; it also saves the
checkpoint that the README's
plot_surface.py command maps again through the command line.
"""
import os
import sys

import torch

import landscape
from examples.transformer import make_data, make_model, next_token_loss, train

out = sys.argv[1] if len(sys.argv) > 1 else "examples_out"
seconds, points = float(os.environ.get("TRAIN_SECONDS", 60)), int(os.environ.get("POINTS", 21))
steps = int(os.environ["TRAIN_STEPS"]) if "TRAIN_STEPS" in os.environ else None
os.makedirs(out, exist_ok=True)
(train_set, test_set), model = make_data(), make_model()
budget = f"{steps} steps" if steps is not None else f"{seconds:.0f} s"
print(f"training for {budget}: last batch loss {train(model, train_set, seconds, steps=steps):.3f}")
torch.save(model.state_dict(), f"{out}/transformer.t7")
dirs = landscape.random_directions(model, n=2, seed=0)
dirs.save(f"{out}/transformer_dirs.h5", overwrite=True)  # a rerun makes the same ones
res = landscape.surface(model, train_set, loss=next_token_loss, directions=dirs, test_data=test_set,
                        x=(-1, 1, points), y=(-1, 1, points), path=f"{out}/transformer_api.h5")
print(f"train loss at the centre {res.train_loss[points // 2, points // 2]:.3f}, max {res.train_loss.max():.3f}")
res.plot("train_loss", log=True)["contour"].savefig(f"{out}/transformer_train_loss.png")
