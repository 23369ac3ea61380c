#!/usr/bin/env python3
"""The PyTorch side of tests/test_safetensors.c: weights move between cltrain and torch.nn.

    safetensors_torch.py DIR NAME TOL

DIR/NAME.ours.safetensors holds cltrain's parameters (its __metadata__ describes the model as
torch.nn modules, or as nanoGPT's GPTConfig), DIR/NAME.io.safetensors an input "x" (for a GPT,
token ids as floats) and cltrain's predictions "y" for it (a GPT's: the logits of every
position). This script rebuilds the nn.Sequential, or nanoGPT's GPT (tools/gpt_torch.py's,
nanoGPT's model.py written out), from the metadata, loads our file into it with
load_state_dict(strict=True) and checks that its predictions are ours within TOL (absolute);
then it gives a fresh model random weights, writes them to DIR/NAME.torch.safetensors and
its predictions for x to DIR/NAME.torch_io.safetensors ("y"), for the C test to load and compare.
Exit status 0 when the check passed, 1 with a message otherwise.

The files are read and written with the `safetensors` package (safetensors.torch.load_file and
save_file) when it is installed, else with plain struct + json code (the reader is
tools/gpt_torch.py's, the writer below): the format is an
8-byte little-endian header length, the JSON header, then the raw little-endian data.
"""
import json
import os
import struct
import sys

import torch
import torch.nn as nn

# nanoGPT's GPT and the plain safetensors reader: those of the GPT's PyTorch baseline, so this
# test checks the very model tools/gpt_torch.py trains
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from gpt_torch import gpt_of, read_safetensors as read_plain  # noqa: E402

torch.set_num_threads(1)

try:
    import safetensors.torch as st_torch
except ImportError:
    st_torch = None


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


def build(meta):
    """The model that cltrain.model describes: nanoGPT's GPT of its config, or the nn.Sequential
    of each layer's class and arguments. The input shape per sample, and whether it is tokens."""
    gpt = gpt_of(meta)
    if gpt is not None:
        return gpt, [gpt.config.block_size], True
    desc = json.loads(meta["cltrain.model"])
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
