"""Torch side of bench/matmul-webgpu.ts: TFLOP/s of torch.matmul at the step's GEMM shapes.

Reads the cases as JSON on stdin ([{"form": "NT"|"NN"|"TN", "m", "n", "k"}]), prints one JSON
object per line: {"form", "m", "n", "k", "dtype", "ms"}; dtypes fp32 (TF32 off), tf32 (fp32
tensors, allow_tf32 on), fp16, bf16. CUDA events, 3 warm-up and `reps` timed calls each.
"""
import json
import sys

import torch

reps = int(sys.argv[1]) if len(sys.argv) > 1 else 20
cases = json.load(sys.stdin)
dev = torch.device("cuda")
for c in cases:
    m, n, k, form = c["m"], c["n"], c["k"], c["form"]
    for name, dtype, tf32 in [("fp32", torch.float32, False), ("tf32", torch.float32, True), ("fp16", torch.float16, False), ("bf16", torch.bfloat16, False)]:
        torch.backends.cuda.matmul.allow_tf32 = tf32
        a = torch.randn((k, m) if form == "TN" else (m, k), device=dev, dtype=dtype)
        b = torch.randn((n, k) if form == "NT" else (k, n), device=dev, dtype=dtype)
        op_a = a.t() if form == "TN" else a
        op_b = b.t() if form == "NT" else b
        for _ in range(3):
            torch.matmul(op_a, op_b)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(reps):
            torch.matmul(op_a, op_b)
        end.record()
        torch.cuda.synchronize()
        print(json.dumps({"form": form, "m": m, "n": n, "k": k, "dtype": name, "ms": start.elapsed_time(end) / reps}), flush=True)
torch.backends.cuda.matmul.allow_tf32 = False
print(json.dumps({"torch": torch.__version__, "gpu": torch.cuda.get_device_name(0)}), flush=True)
