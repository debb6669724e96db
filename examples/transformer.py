"""A small decoder-only transformer (nanoGPT-shaped) on characters of the Zen of Python, which ships
with every Python (`import this`). Used by examples/transformer_landscape.py through the API and by
plot_surface.py through --model/--dataset/--loss:

    --model examples.transformer:make_model --dataset examples.transformer:make_data \
    --loss examples.transformer:next_token_loss
"""
import codecs
import contextlib
import io
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def zen_text():
    with contextlib.redirect_stdout(io.StringIO()):  # importing `this` prints the poem
        import this
    return codecs.decode(this.s, "rot13")


VOCAB = sorted(set(zen_text()))


def make_data(block=16, test_share=0.2):
    """(train, test): every window of block + 1 characters, as (inputs, targets) token tensors (N, block)."""
    ids = torch.tensor([VOCAB.index(c) for c in zen_text()])
    windows = ids.unfold(0, block + 1, 1)
    cut = int(len(windows) * (1 - test_share))  # the poem's last lines are the test set
    split = lambda w: (w[:, :-1].contiguous(), w[:, 1:].contiguous())
    return split(windows[:cut]), split(windows[cut:])


def next_token_loss(outputs, targets):
    """Mean cross-entropy of the next character over every position of the batch."""
    return F.cross_entropy(outputs.reshape(-1, outputs.shape[-1]), targets.reshape(-1))


class Block(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, h):
        b, t, c = h.shape
        q, k, v = self.qkv(self.norm1(h)).view(b, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # each position sees only the past
        h = h + self.proj(attended.transpose(1, 2).reshape(b, t, c))
        return h + self.mlp(self.norm2(h))


class TinyGPT(nn.Module):
    def __init__(self, vocab=len(VOCAB), block=16, width=32, heads=2, layers=2):
        super().__init__()
        self.token, self.position = nn.Embedding(vocab, width), nn.Embedding(block, width)
        self.blocks = nn.Sequential(*[Block(width, heads) for _ in range(layers)])
        self.norm, self.head = nn.LayerNorm(width), nn.Linear(width, vocab)

    def forward(self, tokens):
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        return self.head(self.norm(self.blocks(self.token(tokens) + self.position(positions))))


def make_model(**kwargs):
    torch.manual_seed(0)
    return TinyGPT(**kwargs)


def train(model, data, seconds=60.0, batch=64, lr=3e-3, steps=None):
    """AdamW on random batches until `seconds` have passed, or for exactly `steps` steps when given (the
    same training on any CPU); returns the last batch's loss."""
    inputs, targets = data
    return optimize(model, lambda rows: next_token_loss(model(inputs[rows]), targets[rows]), len(inputs),
                    seconds, batch, lr, steps)


def optimize(model, loss_of_rows, count, seconds, batch, lr, steps):
    """The training loop both examples share: AdamW on loss_of_rows(random rows of `count` samples)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    generator, deadline = torch.Generator().manual_seed(0), time.monotonic() + seconds
    model.train()
    done = 0
    while (done < steps) if steps is not None else (time.monotonic() < deadline):
        done += 1
        loss = loss_of_rows(torch.randint(0, count, (batch,), generator=generator))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return loss.item()
