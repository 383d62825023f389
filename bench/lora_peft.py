#!/usr/bin/env python3
"""PEFT LoRA anchor for bench/lora-0.5b.ts, in the same call: Qwen2-0.5B config (random init, sdpa,
tied), fp32 on the GPU (TF32 off), LoRA r/alpha on q k v o gate up down (dropout 0), AdamW on the
adapters only, `--steps` timed steps after 2 warm-up steps on random 8x512 ids. Peak memory:
torch.cuda.max_memory_allocated, and nvidia-smi sampled every 50 ms minus the idle reading (what
ortfuse's figure is). `--liger`: Liger-Kernel's apply_liger_kernel_to_qwen2 (rope, rms_norm, swiglu,
fused_linear_cross_entropy) patches transformers' Qwen2 classes before the model is built and wrapped
with PEFT (the GPU machine has no Liger package: put its src/ on PYTHONPATH; see lora-0.5b.md).

With --check DIR (bench/lora-0.5b.ts's adapter: adapter_* + ortfuse.json {loss, input_ids, batch,
seq}) it rebuilds the exported model (models/export/export_default.py's build: same seed, same
weights), loads the adapter with PeftModel.from_pretrained and prints PEFT's loss next to ortfuse's.

  python3 bench/lora_peft.py [--shape 8x512] [--r 16 --alpha 32] [--steps 4] [--liger] [--check DIR] [--out FILE]
"""
import argparse, json, os, subprocess, sys, threading, time

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import Qwen2Config, Qwen2ForCausalLM

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def smi_used():
    try:
        return int(subprocess.check_output(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"]).decode().split()[0])
    except Exception:  # noqa: BLE001
        return float("nan")


class Sampler:
    def __init__(self):
        self.idle = smi_used()
        self.peak = self.idle
        self.p = subprocess.Popen(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-lms", "50"], stdout=subprocess.PIPE, text=True)
        self.t = threading.Thread(target=self.read, daemon=True)
        self.t.start()

    def read(self):
        for line in self.p.stdout:
            if line.strip():
                self.peak = max(self.peak, int(line))

    def stop(self):
        self.p.terminate()
        return self.peak - self.idle


def bench(a):
    B, T = map(int, a.shape.split("x"))
    cfg = Qwen2Config(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                      num_key_value_heads=2, max_position_embeddings=32768, rope_theta=1e6, rms_norm_eps=1e-6, tie_word_embeddings=True, use_cache=False)
    cfg._attn_implementation = "sdpa"
    if a.liger:
        from liger_kernel.transformers import apply_liger_kernel_to_qwen2
        apply_liger_kernel_to_qwen2(rope=True, rms_norm=True, swiglu=True, cross_entropy=False, fused_linear_cross_entropy=True)
    s = Sampler()
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(cfg).cuda().float().train()
    model = get_peft_model(model, LoraConfig(r=a.r, lora_alpha=a.alpha, lora_dropout=0.0, target_modules=TARGETS, bias="none", task_type="CAUSAL_LM"))
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=1e-4, weight_decay=0.01, fused=True)
    ids = torch.randint(0, cfg.vocab_size, (B, T), device="cuda")
    torch.cuda.reset_peak_memory_stats()
    times, losses = [], []
    for _ in range(2 + a.steps):
        torch.cuda.synchronize(); t = time.time()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        losses.append(float(loss))
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step(); opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize(); times.append(time.time() - t)
    ms = sum(times[2:]) / a.steps
    r = {"what": "PEFT LoRA" + (" + Liger-Kernel" if a.liger else "") + ", torch fp32", "liger_mlp": type(model.base_model.model.model.layers[0].mlp).__name__, "shape": a.shape, "r": a.r, "alpha": a.alpha, "trained": sum(p.numel() for p in trainable),
         "max_memory_allocated_gib": torch.cuda.max_memory_allocated() / 2**30, "tok_s": B * T / ms, "step_ms": ms * 1000, "losses": losses}
    del model, opt, trainable
    torch.cuda.empty_cache()
    r["nvidia_smi_peak_gib"] = s.stop() / 1024
    return r


def check(d):
    sys.path[:0] = [os.path.dirname(os.path.abspath(__file__)), os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models", "export")]
    from export_default import Q05B, build  # noqa: E402
    m = json.load(open(os.path.join(d, "ortfuse.json")))
    config, exported = build(Q05B, "sdpa")
    base = Qwen2ForCausalLM(config).to(torch.float32)
    base.load_state_dict(exported.state_dict())
    del exported
    pm = PeftModel.from_pretrained(base.cuda(), d).eval()
    ids = torch.tensor(m["input_ids"], device="cuda").view(m["batch"], m["seq"])
    with torch.no_grad():
        got = float(pm(input_ids=ids, labels=ids, use_cache=False).loss)
    return {"what": "PeftModel.from_pretrained(ortfuse adapter)", "peft_loss": got, "ortfuse_loss": m["loss"], "abs_diff": abs(got - m["loss"])}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="8x512")
    ap.add_argument("--r", type=int, default=16)
    ap.add_argument("--alpha", type=int, default=32)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--check", default=None)
    ap.add_argument("--liger", action="store_true")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    rows = [bench(a)]
    print(json.dumps(rows[-1]), flush=True)
    if a.check:
        rows.append(check(a.check))
        print(json.dumps(rows[-1]), flush=True)
    if a.out:
        json.dump(rows, open(a.out, "w"), indent=1)


if __name__ == "__main__":
    main()
