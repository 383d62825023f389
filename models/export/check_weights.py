#!/usr/bin/env python3
"""Load weights that ortfuse saved (--save-weights, safetensors under the torch names) into
transformers' Qwen2ForCausalLM, twice: `from_pretrained(dir)` (config.json + model.safetensors)
and `load_state_dict` on a fresh model; compute the causal-LM loss on given inputs and compare it
with the loss ortfuse reported and with onnxruntime running the model ortfuse saved (--save-model).

  python3 check_weights.py --config cfg.json --weights w.safetensors --inputs in.json
                           [--onnx m.onnx] [--expect LOSS] [--tol 1e-4]

cfg.json: a Qwen2Config dict (or a fixture .json with a "config" key); in.json: {"input_ids":
[[...]], "labels": [[...]]} (or a fixture .json with "inputs"). Prints one JSON line; exit 1 when a
loss differs from --expect by more than --tol.
"""
import argparse, json, os, shutil, sys, tempfile

import torch
from safetensors.torch import load_file
from transformers import Qwen2Config, Qwen2ForCausalLM

ap = argparse.ArgumentParser()
ap.add_argument("--config", required=True)
ap.add_argument("--weights", required=True)
ap.add_argument("--inputs", required=True)
ap.add_argument("--onnx")
ap.add_argument("--expect", type=float)
ap.add_argument("--tol", type=float, default=1e-4)
ap.add_argument("--attn", default="eager")
a = ap.parse_args()

cfg = json.load(open(a.config))
cfg = cfg.get("config", cfg)
inp = json.load(open(a.inputs))
inp = inp.get("inputs", inp)
ids = torch.tensor(inp["input_ids"], dtype=torch.int64)
labels = torch.tensor(inp["labels"], dtype=torch.int64)
config = Qwen2Config(**{k: v for k, v in cfg.items() if k not in ("architectures", "transformers_version")})
config._attn_implementation = a.attn

out = {}
with tempfile.TemporaryDirectory() as d:
    config.save_pretrained(d)
    shutil.copy(a.weights, os.path.join(d, "model.safetensors"))
    m = Qwen2ForCausalLM.from_pretrained(d, torch_dtype=torch.float32, attn_implementation=a.attn).eval()
    with torch.no_grad():
        out["from_pretrained"] = float(m(input_ids=ids, labels=labels).loss)

sd = load_file(a.weights)
m2 = Qwen2ForCausalLM(config).to(torch.float32).eval()
res = m2.load_state_dict(sd, strict=False)
tied = set(getattr(m2, "_tied_weights_keys", None) or []) | ({"lm_head.weight"} if config.tie_word_embeddings else set())
out["missing"] = [k for k in res.missing_keys if k not in tied]
out["unexpected"] = list(res.unexpected_keys)
with torch.no_grad():
    out["load_state_dict"] = float(m2(input_ids=ids, labels=labels).loss)
if a.onnx:
    import onnxruntime as ort
    s = ort.InferenceSession(a.onnx, providers=["CPUExecutionProvider"])
    names = [i.name for i in s.get_inputs()]
    out["onnxruntime"] = float(s.run(None, dict(zip(names, [ids.numpy(), labels.numpy()])))[0])
ok = not out["missing"] and not out["unexpected"]
if a.expect is None and "onnxruntime" in out:
    a.expect = out["onnxruntime"]  # the loss of the model ortfuse saved, run by onnxruntime
if a.expect is not None:
    out["expect"] = a.expect
    for k in ("from_pretrained", "load_state_dict", "onnxruntime"):
        if k in out:
            out[f"{k}_diff"] = abs(out[k] - a.expect)
            ok = ok and out[f"{k}_diff"] <= a.tol
out["ok"] = ok
print(json.dumps(out))
sys.exit(0 if ok else 1)
