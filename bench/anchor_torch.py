#!/usr/bin/env python3
"""PyTorch fp32 anchor in the same call as ortfuse's runs: Qwen2-0.5B config (random init, sdpa,
tied), full training step (forward with labels, backward, fused AdamW), peak
torch.cuda.max_memory_allocated and tok/s over `--steps` timed steps after 2 warm-up steps, as the
ANCHORS figures of bench/train-step-webgpu.ts were measured. `--liger`: Liger-Kernel's
apply_liger_kernel_to_qwen2 (rope, rms_norm, swiglu, fused linear cross-entropy) before the model is
built (the GPU machine has no Liger package: put its source's src/ on PYTHONPATH, never committed).

  python3 bench/anchor_torch.py --shapes 1x128,8x256,8x512 [--steps 4] [--liger] [--amp]

`--amp`: the forward under torch.autocast(bfloat16) (fp32 master weights and AdamW), the
"bf16-amp" anchors of issue 12's mixed-precision acceptance.
"""
import argparse, json, time
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

ap = argparse.ArgumentParser()
ap.add_argument("--shapes", default="8x512")
ap.add_argument("--steps", type=int, default=4)
ap.add_argument("--liger", action="store_true")
ap.add_argument("--amp", action="store_true")
a = ap.parse_args()
if a.liger:
    from liger_kernel.transformers import apply_liger_kernel_to_qwen2
    apply_liger_kernel_to_qwen2(rope=True, rms_norm=True, swiglu=True, cross_entropy=False, fused_linear_cross_entropy=True)
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
cfg = Qwen2Config(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                  num_key_value_heads=2, max_position_embeddings=32768, rope_theta=1e6, rms_norm_eps=1e-6, tie_word_embeddings=True, use_cache=False)
cfg._attn_implementation = "sdpa"
for shape in a.shapes.split(","):
    B, T = map(int, shape.split("x"))
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(cfg).cuda().float().train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    ids = torch.randint(0, cfg.vocab_size, (B, T), device="cuda")
    torch.cuda.reset_peak_memory_stats()
    times = []
    for s in range(2 + a.steps):
        torch.cuda.synchronize(); t = time.time()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=a.amp):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize(); times.append(time.time() - t)
    ms = sum(times[2:]) / a.steps
    print(json.dumps({"anchor": ("liger" if a.liger else "pytorch") + (" bf16-amp" if a.amp else " fp32"), "mlp": type(model.model.layers[0].mlp).__name__, "step_ms_all": [t * 1000 for t in times], "shape": shape, "peak_gib": torch.cuda.max_memory_allocated() / 2**30, "tok_s": B * T / ms, "step_ms": ms * 1000}))
    del model, opt
    torch.cuda.empty_cache()
