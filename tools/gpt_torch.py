#!/usr/bin/env python3
"""The PyTorch quality baseline of `cltrain train --model gpt`: nanoGPT's GPT, trained from the
same initial weights on the same batches with the same hyper-parameters, so the two loss curves
lie side by side and differ only by what the two implementations compute differently.

    tools/cltrain train --model gpt --steps 50 --eval-every 10 --save-init init.safetensors
    /usr/bin/python3 tools/gpt_torch.py --init init.safetensors --steps 50 --eval-every 10

- the weights: --init, the file `--save-init` writes (nanoGPT's state_dict names); the model's
  configuration is the one its metadata holds;
- the data: libcltrain itself, through ctypes (--lib, default the build tree's .libs/ then the
  system's): the same text (--text FILE, else Debian's fortunes, else the generated text), the
  batch of step s from clt_text_batch with the command's seed batch_seed(seed, s), and the
  measurements on the command's fixed windows (eval-batches x batch of them, seeds 0x51ED for
  the training part and 0x7A1 for the validation part);
- the optimizer: AdamW (betas 0.9 and --beta2, eps 1e-8) with decay on the tensors of rank >= 2
  only (nanoGPT's configure_optimizers), clip_grad_norm_ --clip, and cltrain's schedule (its
  lib/trainer.c schedule_lr): a linear warm-up lr (k + 1) / warmup for step k < warmup, then a
  cosine from lr to min-lr over the remaining steps.

It prints one JSON line per measurement ({"step", "train_loss", "val_loss", "val_accuracy"}),
at the command's steps (every --eval-every and the last), then a summary line with the keys of
the command's --json line. --metrics writes the command's CSV columns. Dropout (a model saved
with dropout > 0) draws other masks than cltrain's: the curves then agree in distribution only.

The module also holds nanoGPT's GPT class (model.py, with the attention of its slow path, since
torch 1.13 has no scaled_dot_product_attention), which tools/bench_torch.py and
tests/safetensors_torch.py use.
"""
import argparse
import ctypes
import json
import math
import os
import struct
import sys
import time

if __name__ == "__main__":
    # Debian's PyTorch calls the system BLAS, whose own threads torch.set_num_threads does not
    # bound: fix them to --threads before torch loads it (as tools/bench_torch.py does)
    _threads = "1"
    for _i, _arg in enumerate(sys.argv):
        if _arg == "--threads" and _i + 1 < len(sys.argv):
            _threads = sys.argv[_i + 1]
    os.environ.setdefault("OPENBLAS_NUM_THREADS", _threads)

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402


# ---- nanoGPT's model (github.com/karpathy/nanoGPT, model.py) ------------------------------------

class GPTConfig:
    """GPTConfig's fields as cltrain's safetensors metadata names them ("cltrain.model"), with
    the two nanoGPT fixes: tied (it always ties) and eps (its LayerNorm's 1e-5)."""

    def __init__(self, vocab_size, block_size, n_layer=4, n_head=4, n_embd=128, dropout=0.0,
                 bias=True, tied=True, eps=1e-5):
        self.vocab_size, self.block_size, self.n_layer = vocab_size, block_size, n_layer
        self.n_head, self.n_embd, self.dropout, self.bias = n_head, n_embd, dropout, bias
        self.tied, self.eps = tied, eps


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
        # the causal mask: a buffer outside the state_dict, so that cltrain's files (which hold
        # parameters only) load with strict=True
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
        """The logits of every position (B, T, vocab_size)."""
        t = idx.size(1)
        pos = torch.arange(0, t, dtype=torch.long, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))


def adamw(model, lr, weight_decay, beta2):
    """nanoGPT's configure_optimizers: decay on the tensors of rank >= 2 (embeddings and Linear
    weights), none on biases and LayerNorms; a tied weight counts once."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, beta2), eps=1e-8)


# ---- safetensors, with struct and json ------------------------------------------------------------

def read_safetensors(path):
    """(tensors by name, metadata) of an F32 safetensors file: an 8-byte little-endian header
    length, the JSON header, the raw little-endian data."""
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


def gpt_of(meta):
    """nanoGPT's GPT of a file's "cltrain.model" (a GPT's), or None for another model."""
    desc = json.loads(meta.get("cltrain.model", "{}"))
    if desc.get("type") != "gpt":
        return None
    desc = dict(desc)
    desc.pop("type")
    return GPT(GPTConfig(**desc))


# ---- the data, from libcltrain ------------------------------------------------------------------

TEXT_TRAIN, TEXT_VAL = 0, 1
CLT_ERR_IO = -2004
MEASURE_SEEDS = {TEXT_TRAIN: 0x51ED, TEXT_VAL: 0x7A1}   # tools/cmd_gpt.c's measure()


def batch_seed(seed, step):
    """tools/cmd_gpt.c's batch_seed: the seed of step `step`'s batch (1-based), modulo 2^64."""
    return (seed * 0x9E3779B97F4A7C15 + step * 0xD1B54A32D192ED03) & 0xFFFFFFFFFFFFFFFF


class Text:
    """A clt_text of libcltrain: the command's text, tokens and batches."""

    def __init__(self, lib_path, path):
        self.lib = lib = ctypes.CDLL(lib_path)
        vp, pp = ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)
        ip = ctypes.POINTER(ctypes.c_int32)
        for name, res, args in (
                ("clt_text_load", ctypes.c_int, [pp, ctypes.c_char_p, vp]),
                ("clt_text_load_fortunes", ctypes.c_int, [pp, ctypes.c_char_p, vp]),
                ("clt_text_synthetic", ctypes.c_int, [pp, ctypes.c_size_t, ctypes.c_uint64]),
                ("clt_text_destroy", None, [vp]),
                ("clt_text_vocab_size", ctypes.c_int, [vp]),
                ("clt_text_tokens", ctypes.c_size_t, [vp, ctypes.c_int]),
                ("clt_text_batch", ctypes.c_int, [vp, ctypes.c_int, ctypes.c_size_t, ctypes.c_int,
                                                  ctypes.c_uint64, ip, ip]),
                ("clt_last_error", ctypes.c_char_p, [])):
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = res, args
        self.t = vp()
        if path:
            self._check(lib.clt_text_load(ctypes.byref(self.t), path.encode(), None), "loading " + path)
            self.source = path
            return
        st = lib.clt_text_load_fortunes(ctypes.byref(self.t), None, None)
        if st == 0:
            self.source = "fortunes"
        else:   # as the command: no fortunes (CLT_ERR_IO) is the generated text, said loudly
            self._check(0 if st == CLT_ERR_IO else st, "loading the fortunes")
            sys.stderr.write("gpt_torch: *** no fortunes (%s): the GENERATED text, as cltrain\n"
                             % lib.clt_last_error().decode())
            self._check(lib.clt_text_synthetic(ctypes.byref(self.t), 4 << 20, 1), "generating a text")
            self.source = "generated"

    @property
    def vocab(self):
        return self.lib.clt_text_vocab_size(self.t)

    def _check(self, status, what):
        if status != 0:
            raise SystemExit("gpt_torch: %s: %s" % (what, self.lib.clt_last_error().decode()))

    def tokens(self, part):
        return self.lib.clt_text_tokens(self.t, part)

    def batch(self, part, n, block, seed):
        """x, y (n, block) as int64 tensors: clt_text_batch's windows and their next tokens."""
        x, y = (ctypes.c_int32 * (n * block))(), (ctypes.c_int32 * (n * block))()
        self._check(self.lib.clt_text_batch(self.t, part, n, block, seed, x, y), "drawing a batch")
        as_tensor = lambda b: torch.frombuffer(bytearray(b), dtype=torch.int32).long().view(n, block)  # noqa: E731
        return as_tensor(x), as_tensor(y)

    def close(self):
        self.lib.clt_text_destroy(self.t)


def default_library():
    here = os.path.dirname(os.path.abspath(__file__))
    for cand in (os.path.join(here, "..", ".libs", "libcltrain.so"), os.path.join(here, ".libs", "libcltrain.so")):
        if os.path.exists(cand):
            return cand
    return "libcltrain.so.1"


# ---- training -------------------------------------------------------------------------------------

def f32(v):
    """v rounded to float32, as cltrain hands its learning rate to the kernels."""
    return struct.unpack("<f", struct.pack("<f", v))[0]


def schedule_lr(step, lr, min_lr, warmup, total):
    """lib/trainer.c's schedule_lr for the cosine schedule at 0-based step `step`."""
    if warmup > 0 and step < warmup:
        return f32(lr * (step + 1) / warmup)
    T = total - warmup
    t = min(step - warmup, T)
    return f32(min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * t / T)))


def measure(model, text, part, n, block, chunk):
    """Mean loss and per-position accuracy over the command's n fixed windows of a part."""
    x, y = text.batch(part, n, block, MEASURE_SEEDS[part])
    model.eval()
    loss, right = 0.0, 0
    with torch.no_grad():
        for i in range(0, n, chunk):
            logits = model(x[i:i + chunk])
            v = logits.size(-1)
            loss += F.cross_entropy(logits.view(-1, v), y[i:i + chunk].reshape(-1), reduction="sum").item()
            right += (logits.argmax(-1) == y[i:i + chunk]).sum().item()
    model.train()
    return loss / (n * block), right / (n * block)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--init", required=True, help="the initial weights: `cltrain train --model gpt --save-init FILE`")
    ap.add_argument("--text", help="the text the command learnt (default: fortunes, else the generated one)")
    ap.add_argument("--lib", default=default_library(), help="libcltrain.so (default: the build tree's)")
    ap.add_argument("--batch", type=int, default=12)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--min-lr", type=float, default=1e-4)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--beta2", type=float, default=0.99)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--eval-batches", type=int, default=20)
    ap.add_argument("--metrics", help="FILE.csv: every step's loss and learning rate, as the command's")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    if a.warmup >= a.steps:
        raise SystemExit("gpt_torch: --warmup must be below --steps (as the command's)")
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)   # dropout's masks only: the weights come from --init

    weights, meta = read_safetensors(a.init)
    model = gpt_of(meta)
    if model is None:
        raise SystemExit("gpt_torch: %s is not a GPT's file (its cltrain.model: %s)"
                         % (a.init, meta.get("cltrain.model", "none")))
    model.load_state_dict(weights, strict=True)
    c = model.config
    text = Text(a.lib, a.text)
    if text.vocab != c.vocab_size:
        raise SystemExit("gpt_torch: the text has %d tokens in its vocabulary, the model %d: not the "
                         "command's text (--text)" % (text.vocab, c.vocab_size))
    if c.dropout > 0:
        sys.stderr.write("gpt_torch: dropout %g draws other masks than cltrain's: the curves agree in "
                         "distribution only\n" % c.dropout)
    opt = adamw(model, a.lr, a.weight_decay, a.beta2)
    csv = open(a.metrics, "w") if a.metrics else None
    if csv:
        csv.write("step,loss,lr,tokens_per_s,train_loss,val_loss,val_accuracy\n")
    T, V, en = c.block_size, c.vocab_size, a.eval_batches * a.batch
    model.train()
    busy, t_start = 0.0, time.perf_counter()
    train_loss = val_loss = val_acc = float("nan")
    for s in range(1, a.steps + 1):
        lr = schedule_lr(s - 1, a.lr, a.min_lr, a.warmup, a.steps)
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = text.batch(TEXT_TRAIN, a.batch, T, batch_seed(a.seed, s))
        t0 = time.perf_counter()
        loss = F.cross_entropy(model(x).view(-1, V), y.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if a.clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), a.clip)
        opt.step()
        busy += time.perf_counter() - t0
        tps = s * a.batch * T / busy
        if csv:
            csv.write("%d,%.6f,%.6g,%.0f" % (s, loss.item(), lr, tps))
        if s % a.eval_every == 0 or s == a.steps:
            train_loss, _ = measure(model, text, TEXT_TRAIN, en, T, a.batch)
            val_loss, val_acc = measure(model, text, TEXT_VAL, en, T, a.batch)
            print(json.dumps({"step": s, "loss": round(loss.item(), 6), "train_loss": round(train_loss, 6),
                              "val_loss": round(val_loss, 6), "val_accuracy": round(val_acc, 4)}), flush=True)
            if csv:
                csv.write(",%.6f,%.6f,%.4f\n" % (train_loss, val_loss, val_acc))
        elif csv:
            csv.write(",,,\n")
    if csv:
        csv.close()
    print(json.dumps({"model": "gpt", "framework": "pytorch " + torch.__version__, "text": text.source if not a.text else "file",
                      "train_loss": round(train_loss, 4), "val_loss": round(val_loss, 4),
                      "val_accuracy": round(val_acc, 4), "tokens_per_s": round(a.steps * a.batch * T / busy, 1),
                      "steps": a.steps, "batch": a.batch, "block": T, "threads": a.threads,
                      "seconds": round(time.perf_counter() - t_start, 1)}))
    text.close()


if __name__ == "__main__":
    main()
