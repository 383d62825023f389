#!/usr/bin/env python3
"""Export small, randomly initialised Qwen2 causal-LM training graphs to ONNX with torch's
dynamo exporter, and record torch reference loss + parameter gradients next to each model.

Usage (on a machine with torch, transformers, onnx, onnxscript, onnxruntime):

    PYTHONUNBUFFERED=1 python3 models/export/export_qwen2.py --out models/fixtures

Writes, for each fixture stem S:  S.onnx (all initializers embedded) and S.json
(exporter info, config, inputs, torch loss, torch grads per ONNX initializer, op histogram,
onnxruntime CPU loss).  No downloads: the models are built from a Qwen2Config with
torch.manual_seed.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

import onnx
import onnxruntime as ort
import transformers
from transformers import Qwen2Config, Qwen2ForCausalLM

SEED = 1234
BATCH, SEQ = 2, 16
ATTN_IMPL = "eager"

BASE_CONFIG = dict(
    vocab_size=512,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=128,
    rope_theta=10000.0,
    rms_norm_eps=1e-6,
    tie_word_embeddings=True,
    hidden_act="silu",
    attention_dropout=0.0,
    use_cache=False,
)

# stem -> (config overrides, loss kind, opset or None for exporter default)
FIXTURES = {
    "qwen2-tiny": (dict(), "hf", None),
    "qwen2-tiny-untied": (dict(tie_word_embeddings=False), "hf", None),
    "qwen2-tiny-nll": (dict(), "nll", None),
    # Same model as qwen2-tiny at opset 23, where the exporter's fusions emit the ONNX
    # RMSNormalization-23 and RotaryEmbedding-23 ops (the loss stays SoftmaxCrossEntropyLoss).
    "qwen2-tiny-op23": (dict(), "hf", 23),
}


class Qwen2LossHF(Qwen2ForCausalLM):
    """Qwen2ForCausalLM whose forward(input_ids, labels) returns (loss, logits), the loss being
    transformers' own causal-LM loss (shift inside, ignore_index=-100, mean over kept tokens).
    Subclassing (rather than wrapping) keeps parameter names as in the HF checkpoint."""

    def forward(self, input_ids, labels):  # type: ignore[override]
        out = super().forward(input_ids=input_ids, labels=labels, use_cache=False)
        return out.loss, out.logits


class Qwen2LossNLL(Qwen2ForCausalLM):
    """Same outputs, the loss written out as log_softmax + nll_loss with the usual shift."""

    def forward(self, input_ids, labels):  # type: ignore[override]
        logits = super().forward(input_ids=input_ids, use_cache=False).logits
        V = logits.shape[-1]
        shift_logits = logits[:, :-1, :].float()
        shift_labels = labels[:, 1:]
        logp = F.log_softmax(shift_logits, dim=-1)
        loss = F.nll_loss(logp.reshape(-1, V), shift_labels.reshape(-1), ignore_index=-100)
        return loss, logits


def make_config(overrides):
    cfg = dict(BASE_CONFIG)
    cfg.update(overrides)
    config = Qwen2Config(**cfg)
    config._attn_implementation = ATTN_IMPL
    return config


def build_model(stem, overrides, kind):
    torch.manual_seed(SEED)
    config = make_config(overrides)
    cls = Qwen2LossHF if kind == "hf" else Qwen2LossNLL
    model = cls(config).to(torch.float32)
    # HF init leaves every RMSNorm weight at 1 and every bias at 0. Identical initial values would
    # let the exporter's optimizer merge those initializers (DeduplicateInitializersPass), and they
    # are unlike a trained checkpoint, so give each of them its own seeded random values.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            elif name.endswith(".bias"):
                p.copy_(0.02 * torch.randn_like(p))
    model.eval()  # dropout is 0 anyway; eval() only makes that explicit
    return config, model


def make_inputs(vocab, batch=BATCH, seq=SEQ, seed=SEED + 1):
    g = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(0, vocab, (batch, seq), generator=g, dtype=torch.int64)
    labels = input_ids.clone()
    # a few ignored targets (positions >= 1 matter: position 0 is dropped by the shift)
    if seq >= 12:
        labels[0, 3] = -100
        labels[0, seq - 1] = -100
        if batch > 1:
            labels[1, 9] = -100
            labels[1, 10] = -100
    return input_ids, labels


def round8(a):
    return [float("%.8g" % v) for v in np.asarray(a, dtype=np.float32).reshape(-1).tolist()]


def op_histogram(model_proto):
    h = collections.Counter()

    def walk(graph):
        for n in graph.node:
            key = n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}::{n.op_type}"
            h[key] += 1
            for a in n.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    walk(a.g)
                elif a.type == onnx.AttributeProto.GRAPHS:
                    for g in a.graphs:
                        walk(g)

    walk(model_proto.graph)
    return dict(sorted(h.items()))


def value_info_desc(vi):
    t = vi.type.tensor_type
    dims = []
    for d in t.shape.dim:
        dims.append(d.dim_param if d.HasField("dim_param") else (d.dim_value if d.HasField("dim_value") else "?"))
    return {"name": vi.name, "elem_type": onnx.TensorProto.DataType.Name(t.elem_type), "shape": dims}


def optimize_like_default(ir_model, param_names):
    """What torch.onnx.export(optimize=True) runs (onnxscript's torch_2_8+ optimize():
    optimizer.optimize_ir + rewriter.onnx_fusions.fuse), except that no node reading a model
    parameter is constant-folded. The default folds nodes whose inputs have <= 8192 elements, so
    in these tiny models it would pre-transpose every Linear weight into an anonymous initializer
    (val_95, ...) and the parameter names would be lost; in a full-size Qwen2 the weights are far
    over that limit and stay as named initializers feeding Transpose/MatMul, which is what we want
    the fixtures to look like."""
    import onnxscript.optimizer
    import onnxscript.rewriter.onnx_fusions

    def should_fold(node):
        for v in node.inputs:
            if v is not None and v.name in param_names:
                return False
        return None

    onnxscript.optimizer.optimize_ir(ir_model, should_fold=should_fold)
    fused = onnxscript.rewriter.onnx_fusions.fuse(ir_model)
    return fused


def export_one(stem, overrides, kind, opset, out_dir, log):
    config, model = build_model(stem, overrides, kind)
    input_ids, labels = make_inputs(config.vocab_size)

    # ---- torch reference: fp32, CPU (deterministic, no TF32) ----
    model.zero_grad(set_to_none=True)
    loss, logits = model(input_ids, labels)
    loss.backward()
    torch_loss = float(loss.detach())
    log(f"[{stem}] torch loss = {torch_loss:.9g}  logits {tuple(logits.shape)}")

    # ---- export ----
    batch = torch.export.Dim("batch", min=1, max=64)
    seq = torch.export.Dim("seq", min=2, max=config.max_position_embeddings)
    dyn = {"input_ids": {0: batch, 1: seq}, "labels": {0: batch, 1: seq}}
    kwargs = dict(
        dynamo=True,
        input_names=["input_ids", "labels"],
        output_names=["loss", "logits"],
        dynamic_shapes=dyn,
        external_data=False,
        optimize=False,  # run below, with parameters protected from constant folding
        verify=False,
        report=False,
    )
    if opset is not None:
        kwargs["opset_version"] = opset
    onnx_path = os.path.join(out_dir, f"{stem}.onnx")
    t0 = time.time()
    with torch.no_grad():
        prog = torch.onnx.export(model, (input_ids, labels), **kwargs)
    optimize_like_default(prog.model, {n for n, _ in model.named_parameters()} | set(model.state_dict()))
    prog.save(onnx_path, external_data=False)
    log(f"[{stem}] exported in {time.time() - t0:.1f}s -> {onnx_path} ({os.path.getsize(onnx_path)} bytes)")

    mp = onnx.load(onnx_path)
    opsets = {(o.domain or "ai.onnx"): o.version for o in mp.opset_import}
    inits = {i.name: i for i in mp.graph.initializer}
    init_arrays = {name: onnx.numpy_helper.to_array(t) for name, t in inits.items()}

    # ---- map torch parameters -> ONNX initializers ----
    grads = {}
    param_map = {}
    unmapped = []
    for pname, p in model.named_parameters():  # tied weights appear once
        pdata = p.detach().cpu().numpy()
        cand = None
        if pname in inits and tuple(init_arrays[pname].shape) == pdata.shape:
            cand = pname
        else:
            for iname, arr in init_arrays.items():
                if arr.shape == pdata.shape and arr.dtype == pdata.dtype and np.array_equal(arr, pdata):
                    cand = iname
                    break
        if cand is None:
            unmapped.append(pname)
            continue
        param_map[pname] = cand
        grads[cand] = {"shape": list(pdata.shape), "data": round8(p.grad.detach().cpu().numpy())}
    if unmapped:
        log(f"[{stem}] WARNING: parameters without an initializer of the same name/value: {unmapped}")
    other_inits = {
        n: {"shape": list(a.shape), "dtype": str(a.dtype)}
        for n, a in init_arrays.items()
        if n not in grads
    }

    # ---- onnxruntime CPU check ----
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
    ort_loss, ort_error, logits_maxdiff = None, None, None
    try:
        ort_out = sess.run(None, {"input_ids": input_ids.numpy(), "labels": labels.numpy()})
        ort_res = dict(zip([o.name for o in sess.get_outputs()], ort_out))
        ort_loss = float(ort_res["loss"])
        logits_maxdiff = float(np.max(np.abs(ort_res["logits"] - logits.detach().numpy())))
        log(f"[{stem}] ORT loss = {ort_loss:.9g}  |diff| = {abs(ort_loss - torch_loss):.3g}  "
            f"logits max|diff| = {logits_maxdiff:.3g}")
    except Exception as e:
        ort_error = f"{type(e).__name__}: {e}"
        log(f"[{stem}] ORT FAILED at [{BATCH},{SEQ}]: {ort_error}")

    # other shapes, to check the dynamic dims really are dynamic (and batch 1 separately)
    checks = []
    for (b, t, sd) in [(3, 7, SEED + 7), (1, SEQ, SEED + 1)]:
        ids2, lab2 = make_inputs(config.vocab_size, batch=b, seq=t, seed=sd)
        with torch.no_grad():
            tl2 = float(model(ids2, lab2)[0])
        try:
            ol2 = float(sess.run(["loss"], {"input_ids": ids2.numpy(), "labels": lab2.numpy()})[0])
            err2 = None
        except Exception as e:
            ol2, err2 = None, f"{type(e).__name__}: {e}"
        checks.append({"shape": [b, t], "torch_loss": tl2, "ort_loss": ol2, "ort_error": err2})
        log(f"[{stem}] shape check [{b},{t}]: torch {tl2:.9g} ORT {ol2 if ol2 is None else format(ol2, '.9g')}"
            + (f" ({err2[:200]})" if err2 else ""))

    hist = op_histogram(mp)
    info = {
        "fixture": stem,
        "exporter": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": ort.__version__,
            "onnxscript": getattr(__import__("onnxscript"), "__version__", None),
            "python": sys.version.split()[0],
            "dynamo": True,
            "opset": opsets.get("ai.onnx"),
            "opset_imports": opsets,
            "opset_requested": opset,
            "optimize": "optimize=False, then onnxscript optimize_ir (parameters not folded) + onnx_fusions.fuse",
            "attn_implementation": ATTN_IMPL,
            "loss": "transformers ForCausalLMLoss (F.cross_entropy, mean)" if kind == "hf"
            else "F.log_softmax + F.nll_loss(ignore_index=-100, mean) in the wrapper",
            "seed": SEED,
            "ir_version": mp.ir_version,
        },
        "config": make_config(overrides).to_dict(),
        "graph": {
            "inputs": [value_info_desc(v) for v in mp.graph.input],
            "outputs": [value_info_desc(v) for v in mp.graph.output],
            "initializers": {n: list(a.shape) for n, a in init_arrays.items()},
        },
        "inputs": {"input_ids": input_ids.tolist(), "labels": labels.tolist()},
        "loss": torch_loss,
        "ort_loss": ort_loss,
        "ort_error": ort_error,
        "ort_loss_abs_diff": None if ort_loss is None else abs(ort_loss - torch_loss),
        "ort_logits_max_abs_diff": logits_maxdiff,
        "shape_checks": checks,
        "param_to_initializer": param_map,
        "non_parameter_initializers": other_inits,
        "op_histogram": hist,
        "grads": grads,
    }
    with open(os.path.join(out_dir, f"{stem}.json"), "w") as f:
        json.dump(info, f, separators=(",", ":"))
    log(f"[{stem}] opset {opsets} ops {sum(hist.values())}: {hist}")
    if unmapped:
        raise RuntimeError(f"{stem}: parameters with no initializer: {unmapped}")
    return info


def describe_graph(path, log):
    """Print every node (op, inputs, outputs) of the first layer region, for pattern writers."""
    mp = onnx.load(path)
    small = {}
    for t in mp.graph.initializer:
        if int(np.prod(t.dims)) <= 8:
            small[t.name] = onnx.numpy_helper.to_array(t).tolist()
    log(f"# {os.path.basename(path)}  opsets {[(o.domain or 'ai.onnx', o.version) for o in mp.opset_import]}")
    log("# inputs  " + str([value_info_desc(v) for v in mp.graph.input]))
    log("# outputs " + str([value_info_desc(v) for v in mp.graph.output]))
    for t in mp.graph.initializer:
        log(f"# init {t.name} {list(t.dims)} {onnx.TensorProto.DataType.Name(t.data_type)}"
            + (f" = {small[t.name]}" if t.name in small else ""))
    for i, n in enumerate(mp.graph.node):
        attrs = []
        for a in n.attribute:
            v = onnx.helper.get_attribute_value(a)
            if isinstance(v, onnx.TensorProto):
                v = onnx.numpy_helper.to_array(v).tolist() if np.prod(v.dims) <= 8 else f"tensor{list(v.dims)}"
            elif isinstance(v, bytes):
                v = v.decode()
            attrs.append(f"{a.name}={v}")
        ins = [f"{x}={small[x]}" if x in small else x for x in n.input]
        log(f"  {i:4d} {n.op_type:<24} {ins} -> {list(n.output)} {' '.join(attrs)}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "fixtures"))
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--dump", default=None, help="write node listings of every fixture into this folder")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    log = lambda s: print(s, flush=True)
    log(f"torch {torch.__version__} transformers {transformers.__version__} onnx {onnx.__version__} ort {ort.__version__}")
    results = {}
    for stem, (overrides, kind, opset) in FIXTURES.items():
        if args.only and stem not in args.only:
            continue
        try:
            results[stem] = export_one(stem, overrides, kind, opset, args.out, log)
        except Exception as e:  # keep going: other fixtures may still export
            import traceback
            traceback.print_exc()
            log(f"[{stem}] FAILED: {type(e).__name__}: {e}")
    if args.dump:
        os.makedirs(args.dump, exist_ok=True)
        for stem in results:
            lines = []
            describe_graph(os.path.join(args.out, f"{stem}.onnx"), lines.append)
            with open(os.path.join(args.dump, f"{stem}.nodes.txt"), "w") as f:
                f.write("\n".join(lines) + "\n")
    log("\nsummary:")
    log(f"{'fixture':<20} {'opset':>5} {'torch loss':>14} {'ort loss':>14} {'|diff|':>9} {'nodes':>6}")
    for stem, r in results.items():
        ol = "FAILED" if r["ort_loss"] is None else format(r["ort_loss"], ".9g")
        dl = "-" if r["ort_loss_abs_diff"] is None else format(r["ort_loss_abs_diff"], ".2g")
        log(f"{stem:<20} {r['exporter']['opset']:>5} {r['loss']:>14.9g} {ol:>14} {dl:>9} "
            f"{sum(r['op_histogram'].values()):>6}")
    if len(results) != len([s for s in FIXTURES if not args.only or s in args.only]):
        sys.exit(1)


if __name__ == "__main__":
    main()
