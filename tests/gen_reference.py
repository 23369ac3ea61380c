#!/usr/bin/env python3
"""Generates the PyTorch reference values the tests compare against (tests/data/*.ref).

Run with PyTorch 1.13 or newer (Debian's python3-torch):  /usr/bin/python3 tests/gen_reference.py
The outputs are committed; the test suite does not need PyTorch.

File format (little-endian): magic b"CLTREF01", u32 entry count, then per entry: u32 name length,
the name (ASCII), u32 rank, u32 dims[rank], float32 data. Inputs are drawn from splitmix64 with
the same formula as the tests (tests/ref.h), so large inputs need not be stored.
"""
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(1)
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "data")
MASK = (1 << 64) - 1


class SplitMix:
    """splitmix64, as clt__splitmix64; uniform() = ((z >> 40) / 2^24) * 2 - 1, in [-1, 1)."""

    def __init__(self, seed):
        self.s = seed & MASK

    def next(self):
        self.s = (self.s + 0x9E3779B97F4A7C15) & MASK
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def tensor(self, *shape, scale=1.0):
        n = 1
        for d in shape:
            n *= d
        vals = [((self.next() >> 40) / 16777216.0 * 2.0 - 1.0) * scale for _ in range(n)]
        return torch.tensor(vals, dtype=torch.float32).reshape(*shape)


def write(name, entries):
    path = os.path.join(OUT, name + ".ref")
    with open(path, "wb") as f:
        f.write(b"CLTREF01")
        f.write(struct.pack("<I", len(entries)))
        for key, t in entries:
            t = t.detach().to(torch.float32).contiguous()
            kb = key.encode()
            f.write(struct.pack("<I", len(kb)))
            f.write(kb)
            f.write(struct.pack("<I", t.dim()))
            for d in t.shape:
                f.write(struct.pack("<I", d))
            f.write(struct.pack("<%df" % t.numel(), *t.flatten().tolist()))
    print("wrote", path, sum(t.numel() for _, t in entries), "values")


def layer_case(name, module, x, seed):
    """x, params, y, upstream gradient g, and the gradients of sum(y * g)."""
    rng = SplitMix(seed)
    x = x.clone().requires_grad_(True)
    y = module(x)
    g = rng.tensor(*y.shape)
    (y * g).sum().backward()
    entries = [("x", x), ("y", y), ("g", g), ("dx", x.grad)]
    for pname, p in module.named_parameters():
        entries.append((pname, p))
        entries.append(("d" + pname, p.grad))
    write(name, entries)


def layers():
    r = SplitMix(11)
    lin = nn.Linear(7, 5)
    with torch.no_grad():
        lin.weight.copy_(r.tensor(5, 7, scale=0.5))
        lin.bias.copy_(r.tensor(5, scale=0.5))
    layer_case("linear", lin, r.tensor(3, 7), 101)

    conv = nn.Conv2d(2, 3, 3, stride=2, padding=1)
    with torch.no_grad():
        conv.weight.copy_(r.tensor(3, 2, 3, 3, scale=0.5))
        conv.bias.copy_(r.tensor(3, scale=0.5))
    layer_case("conv2d_k3s2p1", conv, r.tensor(3, 2, 7, 6), 102)

    conv2 = nn.Conv2d(3, 4, 2, stride=1, padding=0, bias=False)
    with torch.no_grad():
        conv2.weight.copy_(r.tensor(4, 3, 2, 2, scale=0.5))
    layer_case("conv2d_k2s1p0_nobias", conv2, r.tensor(2, 3, 5, 5), 103)

    layer_case("maxpool_k2s2", nn.MaxPool2d(2, 2), r.tensor(3, 2, 6, 6), 104)
    layer_case("maxpool_k3s2", nn.MaxPool2d(3, 2), r.tensor(2, 2, 7, 7), 105)
    layer_case("avgpool_k2s2", nn.AvgPool2d(2, 2), r.tensor(3, 2, 6, 6), 106)
    layer_case("avgpool_k3s1", nn.AvgPool2d(3, 1), r.tensor(2, 2, 5, 5), 107)

    x = r.tensor(3, 10, scale=3.0)
    layer_case("relu", nn.ReLU(), x, 108)
    layer_case("leaky_relu", nn.LeakyReLU(0.1), x, 109)
    layer_case("gelu", nn.GELU(), x, 110)
    layer_case("tanh", nn.Tanh(), x, 111)
    layer_case("sigmoid", nn.Sigmoid(), x, 112)

    ln = nn.LayerNorm(12, eps=1e-5)
    with torch.no_grad():
        ln.weight.copy_(1.0 + r.tensor(12, scale=0.5))
        ln.bias.copy_(r.tensor(12, scale=0.5))
    layer_case("layernorm", ln, r.tensor(3, 12, scale=2.0), 113)

    ln3 = nn.LayerNorm([2, 3, 3], eps=1e-3)
    with torch.no_grad():
        ln3.weight.copy_(1.0 + r.tensor(2, 3, 3, scale=0.5))
        ln3.bias.copy_(r.tensor(2, 3, 3, scale=0.5))
    layer_case("layernorm_chw", ln3, r.tensor(2, 2, 3, 3, scale=2.0), 114)


def losses():
    r = SplitMix(21)
    z = r.tensor(4, 10, scale=4.0).requires_grad_(True)
    labels = torch.tensor([3, 0, 9, 3])
    loss = F.cross_entropy(z, labels)
    loss.backward()
    write("cross_entropy", [("z", z), ("labels", labels.float()), ("loss", loss.reshape(1)), ("dz", z.grad)])

    y = r.tensor(4, 6).requires_grad_(True)
    t = r.tensor(4, 6)
    loss = F.mse_loss(y, t)
    loss.backward()
    write("mse", [("y", y), ("t", t), ("loss", loss.reshape(1)), ("dy", y.grad)])


def optimizers():
    """A Linear(6, 4) classifier trained 4 steps per optimizer; weights after every step."""
    configs = {
        "sgd": lambda p: torch.optim.SGD(p, lr=0.1),
        "sgd_momentum_wd": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=0.01),
        "sgd_nesterov": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.8, nesterov=True),
        "adam": lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=0.001),
        "adamw": lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1),
        "sgd_clip": lambda p: torch.optim.SGD(p, lr=0.1),
    }
    for name, make in configs.items():
        r = SplitMix(31)
        lin = nn.Linear(6, 4)
        with torch.no_grad():
            lin.weight.copy_(r.tensor(4, 6))
            lin.bias.copy_(r.tensor(4))
        entries = [("w0", lin.weight.clone()), ("b0", lin.bias.clone())]
        opt = make(lin.parameters())
        for step in range(4):
            x = r.tensor(5, 6, scale=2.0)
            labels = torch.tensor([(step + i) % 4 for i in range(5)])
            opt.zero_grad()
            loss = F.cross_entropy(lin(x), labels)
            loss.backward()
            if name == "sgd_clip":
                torch.nn.utils.clip_grad_norm_(lin.parameters(), 0.5)
            opt.step()
            entries += [("x%d" % step, x), ("labels%d" % step, labels.float()),
                        ("loss%d" % step, loss.detach().reshape(1)),
                        ("w%d" % (step + 1), lin.weight.clone()), ("b%d" % (step + 1), lin.bias.clone())]
        write("optim_" + name, entries)


def seed_mlp():
    """The seed MLP 1024-512-256-128-10: weights and 5 batches of 16 from splitmix64 (seed 7),
    SGD lr 0.05 momentum 0.9. Stores the losses, fc3/fc4 and all biases in full, and every 101st
    element of fc1/fc2's weights (with its index)."""
    r = SplitMix(7)
    sizes = [1024, 512, 256, 128, 10]
    layers = []
    for i in range(4):
        lin = nn.Linear(sizes[i], sizes[i + 1])
        bound = 1.0 / sizes[i] ** 0.5
        with torch.no_grad():
            lin.weight.copy_(r.tensor(sizes[i + 1], sizes[i], scale=bound))
            lin.bias.copy_(r.tensor(sizes[i + 1], scale=bound))
        layers.append(lin)
    model = nn.Sequential(layers[0], nn.ReLU(), layers[1], nn.ReLU(), layers[2], nn.ReLU(), layers[3])
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    entries = []
    for step in range(5):
        x = r.tensor(16, 1024)
        labels = torch.tensor([(r.next() >> 33) % 10 for _ in range(16)])
        opt.zero_grad()
        loss = F.cross_entropy(model(x), labels)
        loss.backward()
        opt.step()
        entries.append(("loss%d" % step, loss.detach().reshape(1)))
    for i, lin in enumerate(layers):
        w = lin.weight.detach().flatten()
        if i < 2:
            idx = torch.arange(0, w.numel(), 101)
            entries.append(("fc%d.weight.index" % (i + 1), idx.float()))
            entries.append(("fc%d.weight.sample" % (i + 1), w[idx]))
        else:
            entries.append(("fc%d.weight" % (i + 1), lin.weight))
        entries.append(("fc%d.bias" % (i + 1), lin.bias))
    write("seed_mlp_sgd", entries)


def weight_decay():
    """nanoGPT's configure_optimizers: a Linear(5, 6), LayerNorm(6), Linear(6, 6), ReLU,
    Linear(6, 4) trained 4 steps on batches of 7, with the tensors of dim >= 2 (the Linear
    weights) in a param group with weight decay and the rest (biases, LayerNorm) in one with
    weight_decay 0. Initial parameters, each step's batch and loss, the parameters after."""
    configs = {
        "adamw": lambda groups: torch.optim.AdamW(groups, lr=0.02),
        "adam": lambda groups: torch.optim.Adam(groups, lr=0.02),
        "sgd": lambda groups: torch.optim.SGD(groups, lr=0.1, momentum=0.9),
    }
    decays = {"adamw": 0.1, "adam": 0.01, "sgd": 0.05}
    for name, make in configs.items():
        r = SplitMix(41)
        model = nn.Sequential(nn.Linear(5, 6), nn.LayerNorm(6), nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 4))
        params = dict(model.named_parameters())
        with torch.no_grad():
            for p in params.values():
                p.copy_(r.tensor(*p.shape))
        entries = [("init." + k, p.clone()) for k, p in params.items()]
        decayed = [p for p in params.values() if p.dim() >= 2]
        plain = [p for p in params.values() if p.dim() < 2]
        opt = make([{"params": decayed, "weight_decay": decays[name]},
                    {"params": plain, "weight_decay": 0.0}])
        for step in range(4):
            x = r.tensor(7, 5, scale=2.0)
            labels = torch.tensor([(3 * step + i) % 4 for i in range(7)])
            opt.zero_grad()
            loss = F.cross_entropy(model(x), labels)
            loss.backward()
            opt.step()
            entries += [("x%d" % step, x), ("labels%d" % step, labels.float()),
                        ("loss%d" % step, loss.detach().reshape(1))]
        entries += [("final." + k, p.clone()) for k, p in params.items()]
        write("decay_" + name, entries)


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    print("torch", torch.__version__, file=sys.stderr)
    layers()
    losses()
    optimizers()
    seed_mlp()
    weight_decay()
