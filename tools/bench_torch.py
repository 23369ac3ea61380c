#!/usr/bin/env python3
"""PyTorch baseline for `cltrain bench train`: the same model, batch, optimizer and step count on
the CPU with one thread, printed as one JSON line. Run both in one go to compare side by side:

    POCL_DEVICES=basic tools/cltrain bench train --model seed-mlp --batch 256 --json
    /usr/bin/python3 tools/bench_torch.py --model seed-mlp --batch 256

--model gpt is nanoGPT's GPT (tools/gpt_torch.py) in nanoGPT's CPU configuration on a vocabulary
of 65 (block 64, 4 layers, 4 heads, 128 wide, tied, no dropout: cltrain bench's), trained as
nanoGPT trains it: AdamW lr 1e-3, betas (0.9, 0.99), weight decay 0.1 on the tensors of rank >= 2
only, gradients clipped to norm 1, on random tokens; its line adds tokens_per_s.
"""
import argparse
import json
import os
import sys
import time

# Debian's PyTorch calls the system BLAS (libblas.so.3): the reference BLAS, or OpenBLAS once
# libopenblas is installed, whose own threads torch.set_num_threads does not bound. Fix them
# to --threads before torch loads it.
_threads = "1"
for _i, _arg in enumerate(sys.argv):
    if _arg == "--threads" and _i + 1 < len(sys.argv):
        _threads = sys.argv[_i + 1]
os.environ.setdefault("OPENBLAS_NUM_THREADS", _threads)

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import gpt_torch  # noqa: E402

GPT_VOCAB, GPT_BLOCK = 65, 64   # tools/commands.h's TOOL_GPT_VOCAB, clt_gpt_config_default's block


def build(name):
    if name == "seed-mlp":
        return nn.Sequential(nn.Linear(1024, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(),
                             nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10)), (1024,)
    if name == "deep-mlp":
        layers = []
        for i in range(8):
            layers += [nn.Linear(1024, 1024), nn.ReLU()]
        return nn.Sequential(*layers, nn.Linear(1024, 10)), (1024,)
    if name == "cnn":
        return nn.Sequential(nn.Conv2d(1, 16, 5, 1, 2), nn.ReLU(), nn.MaxPool2d(2, 2),
                             nn.Conv2d(16, 32, 5, 1, 2), nn.ReLU(), nn.MaxPool2d(2, 2),
                             nn.Flatten(), nn.Linear(32 * 8 * 8, 128), nn.ReLU(),
                             nn.Linear(128, 10)), (1, 32, 32)
    if name == "gpt":
        config = gpt_torch.GPTConfig(GPT_VOCAB, GPT_BLOCK, n_layer=4, n_head=4, n_embd=128, dropout=0.0)
        return gpt_torch.GPT(config), (GPT_BLOCK,)
    raise SystemExit("unknown model " + name)


def blas_in_use():
    """Which BLAS this process loaded (Debian's PyTorch takes the system's libblas.so.3)."""
    try:
        with open("/proc/self/maps") as f:
            maps = f.read()
    except OSError:
        return "unknown"
    for name in ("openblas", "mkl", "blis", "atlas"):
        if "lib" + name in maps:
            return name
    return "reference" if "libblas" in maps else "unknown"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="seed-mlp")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model, shape = build(a.model)
    gpt = a.model == "gpt"
    if gpt:   # random tokens, a target per position as cltrain bench's
        opt = gpt_torch.adamw(model, 1e-3, 0.1, 0.99)
        x = torch.randint(0, GPT_VOCAB, (a.batch, GPT_BLOCK))
        y = (torch.arange(a.batch * GPT_BLOCK) * 7 % GPT_VOCAB).view(a.batch, GPT_BLOCK)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        x = torch.rand(a.batch, *shape) - 0.5
        y = torch.arange(a.batch) % 10
    loss_fn = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad()
        if gpt:
            F.cross_entropy(model(x).view(-1, GPT_VOCAB), y.view(-1)).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        else:
            loss_fn(model(x), y).backward()
        opt.step()

    for _ in range(3):
        step()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    dt = time.perf_counter() - t0
    line = {"bench": "train", "framework": "pytorch " + torch.__version__, "model": a.model,
            "batch": a.batch, "steps": a.steps, "threads": a.threads,
            "samples_per_s": round(a.batch * a.steps / dt, 1), "blas": blas_in_use()}
    if gpt:
        line["tokens_per_s"] = round(a.batch * a.steps * GPT_BLOCK / dt, 1)
    print(json.dumps(line))


if __name__ == "__main__":
    main()
