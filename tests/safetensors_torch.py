#!/usr/bin/env python3
"""The PyTorch side of tests/test_safetensors.c: weights move between cltrain and torch.nn.

    safetensors_torch.py DIR NAME TOL

DIR/NAME.ours.safetensors holds cltrain's parameters (its __metadata__ describes the model as
torch.nn modules, or as nanoGPT's GPTConfig), DIR/NAME.io.safetensors an input "x" (for a GPT,
token ids as floats) and cltrain's predictions "y" for it (a GPT's: the logits of every
position). This script rebuilds the nn.Sequential, or nanoGPT's GPT (written out below, as
nanoGPT's model.py has it), from the metadata, loads our file into it with
load_state_dict(strict=True) and checks that its predictions are ours within TOL (absolute);
then it gives a fresh model random weights, writes them to DIR/NAME.torch.safetensors and
its predictions for x to DIR/NAME.torch_io.safetensors ("y"), for the C test to load and compare.
Exit status 0 when the check passed, 1 with a message otherwise.

The files are read and written with the `safetensors` package (safetensors.torch.load_file and
save_file) when it is installed, else with the plain struct + json code below: the format is an
8-byte little-endian header length, the JSON header, then the raw little-endian data.
"""
import json
import math
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(1)

try:
    import safetensors.torch as st_torch
except ImportError:
    st_torch = None


def read_plain(path):
    """(tensors by name, metadata) with struct and json only."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    data = blob[8 + n:]
    out = {}
    for name, t in header.items():
        if t["dtype"] != "F32":
            raise ValueError("%s: dtype %s, this reader takes F32" % (name, t["dtype"]))
        b, e = t["data_offsets"]
        count = (e - b) // 4
        vals = struct.unpack("<%df" % count, data[b:e])
        out[name] = torch.tensor(vals, dtype=torch.float32).reshape(t["shape"])
    return out, meta


def write_plain(path, tensors, meta):
    header = {"__metadata__": meta} if meta else {}
    chunks, at = [], 0
    for name, t in tensors.items():
        t = t.detach().to(torch.float32).contiguous()
        raw = struct.pack("<%df" % t.numel(), *t.flatten().tolist())
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [at, at + len(raw)]}
        chunks.append(raw)
        at += len(raw)
    text = json.dumps(header).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))


def metadata(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n).decode("utf-8")).get("__metadata__", {})


def load(path):
    if st_torch is not None:
        return st_torch.load_file(path), metadata(path)
    return read_plain(path)


def save(path, tensors, meta):
    if st_torch is not None:   # clone: a tied GPT's two names share one tensor, which save_file refuses
        st_torch.save_file({k: v.detach().clone().contiguous() for k, v in tensors.items()}, path, metadata=meta)
    else:
        write_plain(path, tensors, meta)


# nanoGPT's model.py (github.com/karpathy/nanoGPT), with the attention of its slow path (torch
# 1.13 has no scaled_dot_product_attention) and the causal mask a buffer outside the state_dict.

class CausalSelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        assert config.n_embd % config.n_head == 0
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        t = config.block_size
        self.register_buffer("bias", torch.tril(torch.ones(t, t)).view(1, 1, t, t), persistent=False)

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
        att = self.attn_dropout(F.softmax(att, dim=-1))
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU(approximate="tanh")
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.eps)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.eps)
        self.mlp = MLP(config)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPTConfig:
    def __init__(self, vocab_size, block_size, n_layer, n_head, n_embd, dropout, bias, tied, eps):
        self.vocab_size, self.block_size, self.n_layer = vocab_size, block_size, n_layer
        self.n_head, self.n_embd, self.dropout, self.bias = n_head, n_embd, dropout, bias
        self.tied, self.eps = tied, eps


class GPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd, eps=config.eps),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tied:
            self.transformer.wte.weight = self.lm_head.weight
        self.apply(self._init_weights)
        for pn, p in self.named_parameters():
            if pn.endswith("c_proj.weight"):
                torch.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx):
        t = idx.size(1)
        pos = torch.arange(0, t, dtype=torch.long, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))


def build(meta):
    """The model that cltrain.model describes: nanoGPT's GPT of its config, or the nn.Sequential
    of each layer's class and arguments. The input shape per sample, and whether it is tokens."""
    desc = json.loads(meta["cltrain.model"])
    if desc.get("type") == "gpt":
        desc = dict(desc)
        desc.pop("type")
        return GPT(GPTConfig(**desc)), [desc["block_size"]], True
    layers = []
    for d in desc["layers"]:
        d = dict(d)
        layers.append(getattr(nn, d.pop("type"))(**d))
    return nn.Sequential(*layers), desc["input"], False


def main():
    folder, name, tol = sys.argv[1], sys.argv[2], float(sys.argv[3])
    base = "%s/%s" % (folder, name)
    ours, meta = load(base + ".ours.safetensors")
    io, _ = load(base + ".io.safetensors")
    if meta.get("format") != "pt":
        print("# %s: __metadata__ format is %r, not 'pt'" % (name, meta.get("format")))
        return 1
    net, shape, tokens = build(meta)
    net.load_state_dict(ours, strict=True)
    net.eval()
    x, y = io["x"], io["y"]
    if list(x.shape[1:]) != shape:
        print("# %s: x is %s, the model takes %s" % (name, list(x.shape), shape))
        return 1
    if tokens:
        x = x.long()
    with torch.no_grad():
        got = net(x).reshape(y.shape)
    diff = (got - y).abs().max().item()
    print("# %s: %s" % (name, "nanoGPT's GPT of %s" % meta["cltrain.model"] if tokens else net))
    print("# %s: torch's predictions from our file differ from ours by at most %.3g (tolerance %g)"
          % (name, diff, tol))
    if not diff <= tol:
        return 1

    # torch's own weights: its default (random) initialisation, and noise on the LayerNorm
    # parameters so they are not all ones and zeros
    torch.manual_seed(1234)
    fresh, _, _ = build(meta)
    with torch.no_grad():
        for mod in fresh.modules():
            if isinstance(mod, nn.LayerNorm):
                mod.weight.add_(0.2 * torch.randn_like(mod.weight))
                mod.bias.add_(0.2 * torch.randn_like(mod.bias))
    fresh.eval()
    with torch.no_grad():
        ty = fresh(x).reshape(y.shape)
    save(base + ".torch.safetensors", fresh.state_dict(), {"format": "pt"})
    save(base + ".torch_io.safetensors", {"y": ty}, {"format": "pt"})
    print("# %s: wrote torch's weights (%s)" % (name, "safetensors package" if st_torch else "struct + json"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
