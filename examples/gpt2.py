"""A HuggingFace GPT-2, built from a config (nothing is downloaded), on characters of the Zen of Python
(`import this`, shipped with every Python). Used by examples/gpt2_landscape.py through the API and by
plot_surface.py / plot_hessian_eig.py through the command line:

    --model examples.gpt2:make_model --dataset examples.gpt2:make_data --loss_name causal_lm

The targets are the token ids themselves: loss 'causal_lm' predicts each token from those before it.
"""
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from examples.transformer import VOCAB, optimize, zen_text

BLOCK = 16  # characters per sequence


def make_model(layers=2, width=32, heads=4):
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(VOCAB), n_positions=BLOCK, n_embd=width, n_layer=layers, n_head=heads,
                        bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(config)


def make_data(test_share=0.2):
    """(train, test): every window of BLOCK characters, as (token ids, token ids) tensors (N, BLOCK)."""
    ids = torch.tensor([VOCAB.index(c) for c in zen_text()])
    windows = ids.unfold(0, BLOCK, 1).contiguous()
    cut = int(len(windows) * (1 - test_share))  # the poem's last lines are the test set
    return (windows[:cut], windows[:cut]), (windows[cut:], windows[cut:])


def keyword_inputs(data):
    """The API's form for HuggingFace models: the inputs as the keyword arguments of forward()."""
    ids, targets = data
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}, targets


def train(model, data, seconds=60.0, batch=64, lr=3e-3, steps=None):
    """AdamW on random batches until `seconds` have passed, or for exactly `steps` steps when given;
    HuggingFace's own causal-LM loss (labels=ids) trains it. Returns the last batch's loss."""
    ids, _ = data
    last = optimize(model, lambda rows: model(input_ids=ids[rows], labels=ids[rows]).loss, len(ids), seconds,
                    batch, lr, steps)
    model.eval()
    return last
