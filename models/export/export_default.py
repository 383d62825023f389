#!/usr/bin/env python3
"""Export Qwen2 causal-LM training graphs the way users do: torch.onnx.export(..., dynamo=True) with
the exporter's DEFAULT settings (its optimizer on: transposed weights folded into val_N initializers,
equal initializers merged), HF's own init (unit norm weights, zero biases), and record torch's
reference per parameter, by torch name:

  <stem>.onnx            the export (all tensors embedded)
  <stem>.json            exporter versions, export call, config, inputs, torch loss, per-step losses
                         of a 50-step AdamW run (when `steps`), op histogram
  <stem>.safetensors     grad.<torch name> (d loss / d p at `inputs`), float32

The 50-step run uses ortfuse's optimizer settings (src/runtime/optimizer.ts): AdamW betas
(0.9, 0.999), eps 1e-8, weight decay 0.01 on parameters with >= 2 dims only, global-norm clipping
at 1.0 (torch.nn.utils.clip_grad_norm_), learning rate linear warm-up for `warmup` steps then
cosine to 0.1 x peak at `steps`. The batches are in the JSON (`run.batches`).

With --big DIR it also exports the Qwen2-0.5B config (random init, default settings, external
data) and writes DIR/qwen2-0.5b-default.onnx WITHOUT its weights (the external-data references
stay) plus DIR/qwen2-0.5b-default.stats.json (per initializer: shape, mean, std, all-equal value),
so a machine without torch can rebuild a same-shaped weights file (models/export/fill-weights.ts).

Usage: PYTHONUNBUFFERED=1 python3 models/export/export_default.py --out DIR [--only STEM...] [--big DIR [--big-dtype bfloat16]]
"""
from __future__ import annotations

import argparse
import collections
import json
import math
import os
import sys
import time

import numpy as np
import torch
import onnx
import onnxruntime as ort
import transformers
from safetensors.torch import save_file
from transformers import Qwen2Config, Qwen2ForCausalLM

SEED = 1234

TINY = dict(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
            rope_theta=10000.0, rms_norm_eps=1e-6, tie_word_embeddings=True, use_cache=False)
# GQA 7:1, untied, 3 layers; small so that the fixtures stay small (head_dim 8)
GQA = dict(TINY, vocab_size=256, hidden_size=56, intermediate_size=128, num_hidden_layers=3, num_attention_heads=7,
           num_key_value_heads=1, tie_word_embeddings=False)
Q05B = dict(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
            num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768,
            rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True, use_cache=False)

# stem -> (config, attn, export kwargs beyond dynamo=True, 50-step run?)
DYN = "dynamic"  # marker: dynamic_shapes batch/seq on both inputs
FIXTURES = {
    # what the users ran, plus dynamic batch/seq
    "qwen2-default-tied": (TINY, "sdpa", {"dynamic_shapes": DYN}, True),
    "qwen2-default-gqa": (GQA, "eager", {"dynamic_shapes": DYN}, True),
    # nothing but dynamo=True: static [2, 16] shapes, unnamed outputs
    "qwen2-default-static": (TINY, "sdpa", {}, False),
    "qwen2-noopt-tied": (TINY, "sdpa", {"dynamic_shapes": DYN, "optimize": False}, False),
    "qwen2-op18-gqa": (GQA, "sdpa", {"dynamic_shapes": DYN, "opset_version": 18}, False),
    "qwen2-op23-tied": (TINY, "eager", {"dynamic_shapes": DYN, "opset_version": 23}, False),
    # a model loaded with torch_dtype=bfloat16 and exported as it is (bf16 weights and activations);
    # its references are those of the fp32 upcast of the same (bf16-rounded) weights
    "qwen2-default-bf16": (TINY, "sdpa", {"dynamic_shapes": DYN}, True),
}
DTYPE = {"qwen2-default-bf16": torch.bfloat16}
RUN = dict(steps=50, warmup=5, lr=3e-3, batch=4, seq=32, weight_decay=0.01, clip=1.0, min_ratio=0.1)


class Qwen2WithLoss(Qwen2ForCausalLM):
    """forward(input_ids, labels) -> (loss, logits) with transformers' own causal-LM loss."""

    def forward(self, input_ids, labels):  # type: ignore[override]
        out = super().forward(input_ids=input_ids, labels=labels, use_cache=False)
        return out.loss, out.logits


def build(cfg, attn):
    torch.manual_seed(SEED)
    config = Qwen2Config(**cfg)
    config._attn_implementation = attn
    return config, Qwen2WithLoss(config).to(torch.float32).eval()


def make_batch(vocab, batch, seq, gen):
    ids = torch.randint(0, vocab, (batch, seq), generator=gen, dtype=torch.int64)
    labels = ids.clone()
    # a few ignored targets (ignore_index -100)
    labels[0, seq // 3] = -100
    labels[batch - 1, seq - 2] = -100
    return ids, labels


def lr_at(t, r):
    lo = r["min_ratio"] * r["lr"]
    if r["warmup"] > 0 and t <= r["warmup"]:
        return r["lr"] * t / r["warmup"]
    p = min(1.0, (t - r["warmup"]) / max(1, r["steps"] - r["warmup"]))
    return lo + 0.5 * (r["lr"] - lo) * (1 + math.cos(math.pi * p))


def learnable_batch(batch, seq, gen):
    """Rows (a + b*t) mod 64: something a tiny model learns within 50 steps, so the losses move."""
    a = torch.randint(0, 64, (batch, 1), generator=gen)
    b = torch.randint(1, 8, (batch, 1), generator=gen)
    ids = (a + b * torch.arange(seq).unsqueeze(0)) % 64
    labels = ids.clone()
    labels[0, seq // 3] = -100
    return ids, labels


def adamw_run(model, vocab, r):
    gen = torch.Generator().manual_seed(SEED + 2)
    batches = [learnable_batch(r["batch"], r["seq"], gen) for _ in range(r["steps"])]
    decay = [p for _, p in model.named_parameters() if p.dim() >= 2]
    nodecay = [p for _, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": r["weight_decay"]},
                             {"params": nodecay, "weight_decay": 0.0}],
                            lr=r["lr"], betas=(0.9, 0.999), eps=1e-8, foreach=False)
    losses, norms = [], []
    for t, (ids, lab) in enumerate(batches, start=1):
        for gp in opt.param_groups:
            gp["lr"] = lr_at(t, r)
        opt.zero_grad(set_to_none=True)
        loss, _ = model(ids, lab)
        loss.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), r["clip"])))
        opt.step()
        losses.append(float(loss.detach()))
    return {"settings": r, "losses": losses, "grad_norms": norms,
            "batches": [{"input_ids": i.tolist(), "labels": l.tolist()} for i, l in batches]}


def histogram(mp):
    h = collections.Counter(n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}::{n.op_type}" for n in mp.graph.node)
    return dict(sorted(h.items()))


def export(model, args, kw, path, external=False):
    kw = dict(kw)
    if kw.get("dynamic_shapes") == DYN:
        b = torch.export.Dim("batch", min=1, max=64)
        s = torch.export.Dim("seq", min=2, max=model.config.max_position_embeddings)
        kw["dynamic_shapes"] = ({0: b, 1: s}, {0: b, 1: s})
    t0 = time.time()
    with torch.no_grad():
        prog = torch.onnx.export(model, args, dynamo=True, **kw)
    prog.save(path, external_data=external)
    return time.time() - t0


def one(stem, cfg, attn, kw, run, out, log):
    config, model = build(cfg, attn)
    gen = torch.Generator().manual_seed(SEED + 1)
    ids, labels = make_batch(config.vocab_size, 2, 16, gen)
    path = os.path.join(out, f"{stem}.onnx")
    dtype = DTYPE.get(stem, torch.float32)
    secs = export(model.to(dtype), (ids, labels), kw, path)
    # references in fp32 (for a bf16 export: the upcast of its rounded weights)
    model = model.to(torch.float32)
    tensors = {}
    model.zero_grad(set_to_none=True)
    loss, _ = model(ids, labels)
    loss.backward()
    for n, p in model.named_parameters():
        tensors[f"grad.{n}"] = p.grad.detach().clone().contiguous()
    mp = onnx.load(path)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        feeds = dict(zip([i.name for i in sess.get_inputs()], [ids.numpy(), labels.numpy()]))
        ort_loss, ort_error = float(sess.run(None, feeds)[0]), None
    except Exception as e:  # noqa: BLE001
        ort_loss, ort_error = None, f"{type(e).__name__}: {str(e)[:300]}"
    info = {
        "fixture": stem,
        "exporter": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "onnx": onnx.__version__, "onnxscript": getattr(__import__("onnxscript"), "__version__", None),
                     "call": "torch.onnx.export(model, (input_ids, labels), dynamo=True"
                             + "".join(f", {k}={v if k != 'dynamic_shapes' else '(batch, seq) on both inputs'}" for k, v in kw.items()) + ")",
                     "attn_implementation": attn, "seed": SEED,
                     "opset": {(o.domain or "ai.onnx"): o.version for o in mp.opset_import}},
        "config": {k: v for k, v in cfg.items()},
        "dtype": str(dtype).replace("torch.", ""),
        "reference": "fp32" if dtype == torch.float32 else f"fp32 upcast of the {str(dtype).replace('torch.', '')} weights",
        "graph": {"inputs": [i.name for i in mp.graph.input], "outputs": [o.name for o in mp.graph.output],
                  "initializers": len(mp.graph.initializer)},
        "parameters": {n: list(p.shape) for n, p in model.named_parameters()},
        "inputs": {"input_ids": ids.tolist(), "labels": labels.tolist()},
        "loss": float(loss.detach()), "ort_loss": ort_loss, "ort_error": ort_error,
        "op_histogram": histogram(mp),
    }
    if run:
        info["run"] = adamw_run(model, config.vocab_size, RUN)
    save_file(tensors, os.path.join(out, f"{stem}.safetensors"))
    with open(os.path.join(out, f"{stem}.json"), "w") as f:
        json.dump(info, f, separators=(",", ":"))
    log(f"[{stem}] export {secs:.1f}s, {len(mp.graph.initializer)} initializers, "
        f"{sum(p.numel() for p in model.parameters())} params, loss torch {info['loss']:.8g} ort {ort_loss} {ort_error or ''}"
        + (f", run {info['run']['losses'][0]:.5f} -> {info['run']['losses'][-1]:.5f}" if run else ""))


def big(out, log, dtype=torch.float32):
    config, model = build(Q05B, "sdpa")
    ids = torch.randint(0, config.vocab_size, (2, 16), dtype=torch.int64)
    d = os.path.join(out, "full")
    os.makedirs(d, exist_ok=True)
    if dtype != torch.float32:
        # torch_dtype=bfloat16 at full size: the export only, for a same-call run (no stats file)
        path = os.path.join(d, "qwen2-0.5b-bf16.onnx")
        secs = export(model.to(dtype), (ids, ids.clone()), {"dynamic_shapes": DYN}, path, external=True)
        log(f"[0.5b bf16] export {secs:.1f}s -> {path}")
        return
    path = os.path.join(d, "qwen2-0.5b-default.onnx")
    secs = export(model, (ids, ids.clone()), {"dynamic_shapes": DYN}, path, external=True)
    mp = onnx.load(path, load_external_data=False)
    stats = {}
    from onnx import numpy_helper
    full = onnx.load(path)
    for t in full.graph.initializer:
        a = numpy_helper.to_array(t)
        if a.dtype.kind != "f":
            continue
        stats[t.name] = {"shape": list(a.shape), "mean": float(a.mean()), "std": float(a.std()),
                         "const": float(a.flat[0]) if a.size and np.all(a == a.flat[0]) else None}
    onnx.save(mp, os.path.join(out, "qwen2-0.5b-default.onnx"))
    with open(os.path.join(out, "qwen2-0.5b-default.stats.json"), "w") as f:
        json.dump({"config": Q05B, "export_seconds": secs, "params": sum(p.numel() for p in model.parameters()),
                   "initializers": stats}, f)
    log(f"[0.5b] export {secs:.1f}s, graph-only file {os.path.getsize(os.path.join(out, 'qwen2-0.5b-default.onnx'))} bytes,"
        f" {len(stats)} float initializers, {sum(int(np.prod(s['shape'])) for s in stats.values())} floats")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--big", default=None)
    ap.add_argument("--big-dtype", default="float32", choices=["float32", "bfloat16"])
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    torch.set_num_threads(min(8, os.cpu_count() or 1))
    log = lambda s: print(s, flush=True)
    log(f"torch {torch.__version__} transformers {transformers.__version__} onnx {onnx.__version__} ort {ort.__version__}")
    failed = []
    for stem, (cfg, attn, kw, run) in FIXTURES.items():
        if a.only and stem not in a.only:
            continue
        try:
            one(stem, cfg, attn, kw, run, a.out, log)
        except Exception as e:  # noqa: BLE001
            import traceback
            traceback.print_exc()
            failed.append(stem)
            log(f"[{stem}] FAILED: {e}")
    if a.big:
        os.makedirs(a.big, exist_ok=True)
        big(a.big, log, getattr(torch, a.big_dtype))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
