#!/usr/bin/env python3
"""PEFT references for ortfuse's LoRA (src/params/lora.ts), on the tiny default-settings fixtures
(models/fixtures/default: the same models export_default.py builds, seed 1234, same weights):

  <stem>-lora/adapter_model.safetensors, adapter_config.json   PEFT's own save of the initial adapter
                                   (A kaiming-uniform as PEFT, B seeded normal * 0.02 so A's gradient is not 0)
  <stem>-lora.safetensors          grad.<PEFT key> (d loss / d A, B at the fixture's `inputs`), fp32
  <stem>-lora.json                 settings, torch loss at `inputs`, 50-step AdamW run on the fixture's
                                   run.batches (only A/B train; ortfuse's optimizer settings as
                                   export_default.py's run), its losses

With --check DIR (ortfuse-trained adapters: DIR/<name>/adapter_* + DIR/<name>/ortfuse.json {stem, loss})
it loads each with PeftModel.from_pretrained and prints |loss - ortfuse's loss| at `inputs`.

Usage: PYTHONUNBUFFERED=1 python3 models/export/peft_lora.py --fixtures models/fixtures/default --out DIR [--check DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import torch
import peft
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import save_file
from transformers import Qwen2ForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_default import FIXTURES, RUN, build, lr_at  # noqa: E402

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
R, ALPHA = 4, 8


def base_model(stem):
    cfg, attn, _, _ = FIXTURES[stem]
    config, m = build(cfg, attn)
    plain = Qwen2ForCausalLM(config).to(torch.float32)
    plain.load_state_dict(m.state_dict())
    return plain.eval()


def loss_of(model, b):
    ids = torch.tensor(b["input_ids"])
    lab = torch.tensor(b["labels"])
    return model(input_ids=ids, labels=lab, use_cache=False).loss


def reference(stem, fx_dir, out, log):
    fx = json.load(open(os.path.join(fx_dir, f"{stem}.json")))
    model = base_model(stem)
    with torch.no_grad():
        base = float(loss_of(model, fx["inputs"]))
    assert abs(base - fx["loss"]) < 1e-5, f"{stem}: base loss {base} != fixture {fx['loss']} (different weights?)"
    torch.manual_seed(4321)
    pm = get_peft_model(model, LoraConfig(r=R, lora_alpha=ALPHA, lora_dropout=0.0, target_modules=TARGETS,
                                          bias="none", task_type="CAUSAL_LM"))
    gen = torch.Generator().manual_seed(99)
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_B" in n:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
    d = os.path.join(out, f"{stem}-lora")
    pm.save_pretrained(d)
    trainable = [(n, p) for n, p in pm.named_parameters() if p.requires_grad]
    key = lambda n: n.replace(".default", "")  # PEFT's saved keys drop the adapter name
    pm.zero_grad(set_to_none=True)
    loss = loss_of(pm, fx["inputs"])
    loss.backward()
    grads = {f"grad.{key(n)}": p.grad.detach().clone().contiguous() for n, p in trainable}
    save_file(grads, os.path.join(out, f"{stem}-lora.safetensors"))
    r = RUN
    opt = torch.optim.AdamW([p for _, p in trainable], lr=r["lr"], betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=r["weight_decay"], foreach=False)
    losses, norms = [], []
    for t, b in enumerate(fx["run"]["batches"], start=1):
        for gp in opt.param_groups:
            gp["lr"] = lr_at(t, r)
        opt.zero_grad(set_to_none=True)
        l = loss_of(pm, b)
        l.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_([p for _, p in trainable], r["clip"])))
        opt.step()
        losses.append(float(l.detach()))
    info = {"fixture": stem, "peft": peft.__version__, "torch": torch.__version__,
            "lora": {"r": R, "alpha": ALPHA, "dropout": 0.0, "targets": TARGETS, "init": "PEFT A (torch.manual_seed(4321)), B = 0.02 * randn (seed 99)"},
            "base_loss": base, "loss": float(loss.detach()), "run": {"settings": r, "losses": losses, "grad_norms": norms}}
    json.dump(info, open(os.path.join(out, f"{stem}-lora.json"), "w"))
    log(f"[{stem}] {len(trainable)} lora tensors, loss {info['loss']:.8f} (base {base:.8f}), run {losses[0]:.5f} -> {losses[-1]:.5f}")


def check(dir_, fx_dir, log):
    rows = []
    for name in sorted(os.listdir(dir_)):
        d = os.path.join(dir_, name)
        meta = os.path.join(d, "ortfuse.json")
        if not os.path.isfile(meta):
            continue
        m = json.load(open(meta))
        fx = json.load(open(os.path.join(fx_dir, f"{m['stem']}.json")))
        pm = PeftModel.from_pretrained(base_model(m["stem"]), d).eval()
        with torch.no_grad():
            got = float(loss_of(pm, fx["inputs"]))
        rows.append({"adapter": name, "stem": m["stem"], "peft_loss": got, "ortfuse_loss": m["loss"], "abs_diff": abs(got - m["loss"])})
        log(f"[check {name}] PEFT loss {got:.8f} ortfuse {m['loss']:.8f} |diff| {abs(got - m['loss']):.2e}")
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixtures", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--check", default=None)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    torch.set_num_threads(min(8, os.cpu_count() or 1))
    log = lambda s: print(s, flush=True)
    log(f"torch {torch.__version__} peft {peft.__version__}")
    for stem in ["qwen2-default-tied", "qwen2-default-gqa"]:
        reference(stem, a.fixtures, a.out, log)
    if a.check:
        rows = check(a.check, a.fixtures, log)
        json.dump(rows, open(os.path.join(a.out, "peft-check.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
