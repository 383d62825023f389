#!/usr/bin/env bash
# Issue 12's measurements on the device machine, in parts that each fit one `run` call (600 s):
#
#   here:   npm run build && bash ../shared/gpu/pack.sh && bash bench/gpu/pack-webgpu.sh
#           (Liger-Kernel fetched into .scratch/liger, ignored: github:linkedin/Liger-Kernel)
#   device: bash bench/gpu/issue12-call.sh PART      (carry .gpu and .scratch)
#
# replay:  the step tape's effect at the acceptance shapes (replayed vs recorded every step).
# final:   ours with `train`'s defaults at the acceptance shapes and the anchors in the same call.
# s15:     session 14's defaults (gemm_f16's tile and K-split rule) at the acceptance shapes, beside
#          robustness off, range-analysis toggles and gemm_f16's per-subgroup blocks; Liger bf16-amp
#          and fp32 in the same call; default vs blocks GEMMs; a profiled step.
# s15b:    fp32 8x256 and 1x128 (mixed too) with their anchors, then the `export` part.
# cli:     `ortfuse train` itself on a default-settings full-size export, mixed and fp32 at 8x512.
# gc:      12 steps of mixed and fp32 8x512, with and without the ReadbackPacer, V8's GC pauses per step beside the step times.
# s14a:    session 14's call (bench/results/step-speed-h200-s14.md).
# plan:    session 13's gemm_f16 plan (src/webgpu/gemm-f16-plan.ts f16Plan: the vec4 kernel with K split
#          wherever its grid fills the GPU — the lm_head's input gradient, the q/o products) against
#          the plan before it, and the experimental kernel without workgroup memory
#          (gemm-f16-direct.ts): every step GEMM shape and the lm_head's (--only-f16 --flce), the
#          FLCE op at f16 on both plans, and attention at f16 with the 64x64 vec4 tile ('vec64') or not.
# planstep: the mixed 8x512 step on f16Plan and the legacy plan, with and without
#          --stack-projections (q, k, v as one GEMM), and Liger / PyTorch bf16-amp in the same call.
# plankern: the mixed 8x512 step with its f16 GEMMs on the experimental kernels (staged, direct)
#          and the vec64 rule beside the default; the fp32 step stacked beside the default.
# mixed:   acceptance 2's next lead: a profiled mixed 8x512 step (GPU ms per op) with the current
#          defaults, then gemm_f16's tile sweep; each run's output kept as it comes (tee).
# steps:   the 0.5B builder step at the acceptance shapes, ours with the step tape replayed (the
#          default) and recorded every step (no-replay), fp32 and mixed, with dispatch profiles.
# more:    fp32 8x512 with the MLP's gate/up kept (no recompute: two GEMMs fewer a layer), and a
#          profiled step (GPU ms per op) of each precision at 8x512.
# anchors: PyTorch and Liger-Kernel, fp32 and bf16-amp, the same shapes (bench/anchor_torch.py).
# sweep:   our GEMM variants at the step's shapes: gemm_f16's tiles (--f16-sweep: mixed precision's
#          GEMMs on the tensor cores, acceptance 2) and gemm_f32's (--f32-sweep, acceptance 1).
# export:  a default-settings torch export of the 0.5B config (dynamo=True), trained as exported
#          and beside the builder graph.
# Results go to $OUT (the run tool's folder), one table printed at the end of each part.
set -uo pipefail
part=${1:?s15, s15b, cli, gc, s14a, plan, planstep, plankern, replay, final, mixed, steps, more, anchors, sweep or export}
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
bash .gpu/unpack.sh >/dev/null && tar -xJf .gpu/extra.txz -C .gpu 2>/dev/null
export PATH=$PWD/.gpu/bin:$PATH
# shellcheck disable=SC1091
source .gpu/env.sh
step() { node --liftoff-only dist/bench/train-step-webgpu.js "$@" --steps 6 --dispatch-profile; }  # the first --steps wins
case "$part" in
  steps)
    step --runs fused-mlp-attn-linear-mixed:8x512,fused-mlp-attn-linear:8x512,fused-mlp-attn-linear:8x256,fused-mlp-attn-linear-mixed:1x128,fused-mlp-attn-linear:1x128 \
      --settings default,no-replay --out "$OUT/steps"
    cat "$OUT"/steps/*.table.md ;;
  replay)
    # The step tape's effect at the acceptance shapes, each run's JSON line kept as it comes (tee).
    { step --steps 8 --runs fused-mlp-attn-linear:1x128 --settings default,no-replay --out "$OUT/r1"
      step --steps 8 --runs fused-mlp-attn-linear-mixed:1x128 --out "$OUT/r2"
      step --runs fused-mlp-attn-linear:8x512,fused-mlp-attn-linear-mixed:8x512,fused-mlp-attn-linear:8x256 --out "$OUT/r3"
      step --runs fused-mlp-attn-linear-mixed:8x512 --settings no-replay --out "$OUT/r4"; } 2>&1 | grep -v '^\s*$' | tee "$OUT/replay.log" | grep '^|'
    cat "$OUT"/r*/*.table.md ;;
  final)
    # Ours at the acceptance shapes with the defaults of `train` (fp32: the MLP's gate/up kept; mixed:
    # recomputed, and kept beside it), the anchors in the same call (acceptance 5), then the lm_head
    # kernel with 512-row chunks. At most 8 files come back: JSON and logs only.
    { step --runs fused-mlp-attn-linear:8x512,fused-mlp-attn-linear:8x256,fused-mlp-attn-linear-mixed:8x512,fused-mlp-attn-linear-mlpkeep-mixed:8x512 --out /tmp/f1
      step --steps 8 --runs fused-mlp-attn-linear:1x128 --out /tmp/f2; } 2>&1 | grep -v '^\s*$' | tee "$OUT/final.log" | grep '^|'
    for flags in "" "--liger"; do
      # shellcheck disable=SC2086
      PYTHONPATH=$PWD/.scratch/liger/src python3 bench/anchor_torch.py --shapes 1x128,8x256,8x512 $flags | tee -a "$OUT/anchors.jsonl"
    done
    for flags in "--amp" "--liger --amp"; do
      # shellcheck disable=SC2086
      PYTHONPATH=$PWD/.scratch/liger/src python3 bench/anchor_torch.py --shapes 8x512 $flags | tee -a "$OUT/anchors.jsonl"
    done
    step --flce-chunk 512 --runs fused-mlp-attn-linear:8x512,fused-mlp-attn-linear-mixed:8x512 --out /tmp/f3 2>&1 | grep -v '^\s*$' | tee "$OUT/chunk512.log" | grep '^|'
    for f in f1 f2 f3; do cp /tmp/$f/train-step-webgpu.json "$OUT/$f.json" 2>/dev/null; done ;;
  plan)
    { timeout 300 node --liftoff-only dist/bench/matmul-webgpu.js --only-f16 --flce --reps 20 --out "$OUT/gemm"
      timeout 120 node --liftoff-only dist/bench/flce-webgpu.js --preset qwen2-0.5b --chunk 1024 --f16 --json "$OUT/flce-f16.json"
      for rule in fill vec64; do
        ORTFUSE_GEMM_F16=$rule timeout 60 node --liftoff-only dist/bench/attention-webgpu.js --preset qwen2-0.5b --precision f16 --json "$OUT/attn-f16-$rule.json"
      done; } 2>&1 | grep -v '^\s*$' | tee "$OUT/plan.log" | grep '^|' ;;
  s14a)
    # Session 14's first call, most telling first: the mixed 8x512 step on f16Plan and the legacy
    # plan; gemm_f16's tiles, double buffering and timing probes at the step's shapes; the step
    # double-buffered and with stacked q/k/v; Liger bf16-amp; the plans and experimental kernels at
    # the step's and the lm_head's shapes. Each part's lines kept as they come (tee).
    nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.draw,power.limit --format=csv 2>&1 | tee "$OUT/gpu.txt"
    step --runs fused-mlp-attn-linear-mixed:8x512 --settings default,gemm-f16-legacy --out /tmp/a1 2>&1 | grep -v '^\s*$' | tee "$OUT/s14a.log" | grep '^|'
    cp /tmp/a1/train-step-webgpu.json "$OUT/s14a-1.json" 2>/dev/null
    timeout 200 node --liftoff-only dist/bench/matmul-webgpu.js --f16-sweep --reps 20 --out /tmp/sw 2>&1 | grep -v '^\s*$' | tee "$OUT/sweep.log" | grep '^|'
    { step --runs fused-mlp-attn-linear-mixed:8x512 --settings gemm-f16-double,no-robustness --out /tmp/a2
      step --runs fused-mlp-attn-linear-stack-mixed:8x512 --out /tmp/a3; } 2>&1 | grep -v '^\s*$' | tee -a "$OUT/s14a.log" | grep '^|'
    PYTHONPATH=$PWD/.scratch/liger/src timeout 120 python3 bench/anchor_torch.py --shapes 8x512 --liger --amp | tee -a "$OUT/anchors.jsonl"
    timeout 150 node --liftoff-only dist/bench/matmul-webgpu.js --only-f16 --flce --reps 20 --out /tmp/g 2>&1 | grep -v '^\s*$' | tee "$OUT/gemm.log" | grep '^|' ;;
  s15)
    # Session 14's defaults (gemm_f16's 2x2-of-64x64 tile, no K split below 512 where the tiles fill
    # the GPU) at the acceptance shapes; beside them robustness off, robustness with its provably
    # needless checks cut (range: Tint's integer range analysis, robustBufferAccess2), gemm_f16's
    # per-subgroup blocks (constant matrix-load offsets) alone and with range; the anchors (Liger
    # bf16-amp and fp32) in the same call; a profiled step; the GEMMs default vs blocks.
    nvidia-smi --query-gpu=name,clocks.max.sm,power.limit --format=csv 2>&1 | tee "$OUT/gpu.txt"
    { step --runs fused-mlp-attn-linear-mixed:8x512 --settings default,range,gemm-f16-blocks,blocks-range,no-robustness --out /tmp/c1
      step --runs fused-mlp-attn-linear:8x512 --settings default,range --out /tmp/c2; } 2>&1 | grep -v '^\s*$' | tee "$OUT/s15.log" | grep '^|'
    for flags in "--liger --amp" "--liger"; do
      # shellcheck disable=SC2086
      PYTHONPATH=$PWD/.scratch/liger/src timeout 150 python3 bench/anchor_torch.py --shapes 8x512 $flags | tee -a "$OUT/anchors.jsonl"
    done
    cp /tmp/c1/train-step-webgpu.json "$OUT/s15-mixed.json" 2>/dev/null; cp /tmp/c2/train-step-webgpu.json "$OUT/s15-fp32.json" 2>/dev/null
    # The GEMMs (default vs blocks, checked) with robustness as is and with range; where the mixed step's GPU time goes.
    { timeout 90 node --liftoff-only dist/bench/matmul-webgpu.js --only-f16 --f16-lean --reps 20 --out /tmp/g1
      ORTFUSE_DAWN_FLAGS="enable-dawn-features=enable_integer_range_analysis_in_robustness,vulkan_use_buffer_robust_access_2" timeout 90 node --liftoff-only dist/bench/matmul-webgpu.js --only-f16 --f16-lean --reps 20 --out /tmp/g2; } 2>&1 | grep -v '^\s*$' | tee "$OUT/gemm.log" | grep '^|'
    timeout 120 node --liftoff-only dist/bench/train-step-webgpu.js --steps 3 --profile --runs fused-mlp-attn-linear-mixed:8x512 --out /tmp/c3 2>&1 | grep -v '^\s*$' | tee "$OUT/profile.log" | grep '^|' ;;
  s15b)
    # Acceptance 1's 8x256 and acceptance 3's 1x128 with their anchors (same call), then the
    # default-settings full-size torch export trained as exported (the `export` part).
    { step --runs fused-mlp-attn-linear:8x256 --out /tmp/d1
      step --steps 8 --runs fused-mlp-attn-linear:1x128,fused-mlp-attn-linear-mixed:1x128 --out /tmp/d2; } 2>&1 | grep -v '^\s*$' | tee "$OUT/s15b.log" | grep '^|'
    for flags in "" "--liger"; do
      # shellcheck disable=SC2086
      PYTHONPATH=$PWD/.scratch/liger/src timeout 120 python3 bench/anchor_torch.py --shapes 1x128,8x256 $flags | tee -a "$OUT/anchors.jsonl"
    done
    timeout 300 bash "$0" export 2>&1 | grep -v '^\s*$' | tee "$OUT/export.log" | grep '^|' ;;
  cli)
    # The user's path: `ortfuse train` (the CLI, defaults) on a default-settings full-size torch
    # export, mixed and fp32 at 8x512, one JSON line a step (bytes tokenizer: the pack has no Qwen one).
    python3 models/export/export_default.py --out /tmp/x --only none --big /tmp/big 2>&1 | grep '^\[0.5b\]' | tee "$OUT/cli.log"
    for p in mixed fp32; do
      timeout 200 node --liftoff-only dist/src/cli/main.js train /tmp/big/full/qwen2-0.5b-default.onnx --backend webgpu --precision $p \
        --batch 8 --seq 512 --steps 12 --tokenizer bytes --text README.md --lr 1e-4 --json "$OUT/cli-$p.jsonl" 2>&1 | tail -12 | tee -a "$OUT/cli.log"
    done ;;
  gc)
    # The occasional slow step: V8's GC pauses per step (gcMs) beside the step times, 12 steps, with the
    # trainer's ReadbackPacer (default) and without it (no-pacer).
    step --steps 12 --runs fused-mlp-attn-linear-mixed:8x512,fused-mlp-attn-linear:8x512 --settings default,no-pacer --out /tmp/gc 2>&1 | grep '^|'
    cp /tmp/gc/train-step-webgpu.json "$OUT/gc.json"
    python3 -c "import json,sys; d=json.load(open(sys.argv[1])); [print(r['variant'], r.get('setting'), [round(x) for x in r['stepMs']], [round(x) for x in r.get('gcMs', [])]) for r in (d if isinstance(d, list) else [d])]" "$OUT/gc.json" | tee "$OUT/gc.txt" ;;
  planstep)
    step --runs fused-mlp-attn-linear-mixed:8x512,fused-mlp-attn-linear-stack-mixed:8x512 --settings default,gemm-f16-legacy --out /tmp/p1 2>&1 | grep -v '^\s*$' | tee "$OUT/planstep.log" | grep '^|'
    cp /tmp/p1/train-step-webgpu.json "$OUT/planstep.json" 2>/dev/null
    for flags in "--liger --amp" "--amp"; do
      # shellcheck disable=SC2086
      PYTHONPATH=$PWD/.scratch/liger/src python3 bench/anchor_torch.py --shapes 8x512 $flags | tee -a "$OUT/anchors.jsonl"
    done ;;
  plankern)
    # The f16 GEMMs on the experimental kernels (gemm-f16-direct.ts), vec64, and the fp32 step stacked,
    # beside the default mixed step (same call).
    { step --runs fused-mlp-attn-linear-mixed:8x512 --settings default,gemm-f16-staged,gemm-f16-direct,gemm-f16-vec64 --out /tmp/k1
      step --runs fused-mlp-attn-linear-stack:8x512,fused-mlp-attn-linear:8x512 --out /tmp/k2; } 2>&1 | grep -v '^\s*$' | tee "$OUT/plankern.log" | grep '^|'
    cp /tmp/k1/train-step-webgpu.json "$OUT/plankern-mixed.json" 2>/dev/null; cp /tmp/k2/train-step-webgpu.json "$OUT/plankern-fp32.json" 2>/dev/null ;;
  mixed)
    { node --liftoff-only dist/bench/train-step-webgpu.js --steps 3 --profile --runs fused-mlp-attn-linear-mixed:8x512 --out /tmp/m1
      timeout 400 node --liftoff-only dist/bench/matmul-webgpu.js --f16-sweep --reps 20 --out "$OUT/sweep"; } 2>&1 | grep -v '^\s*$' | tee "$OUT/mixed.log" | grep '^|'
    cp /tmp/m1/train-step-webgpu.json "$OUT/mixed-profile.json" 2>/dev/null ;;
  more)
    step --runs fused-mlp-attn-linear-mlpkeep:8x512 --out "$OUT/steps-mlp-keep"
    # Where the GPU time goes: one extra step with timestamp queries per op (not in tok/s).
    node --liftoff-only dist/bench/train-step-webgpu.js --steps 3 --profile --runs fused-mlp-attn-linear-mixed:8x512,fused-mlp-attn-linear:8x512 --out "$OUT/steps-profile"
    cat "$OUT"/steps-mlp-keep/*.table.md "$OUT"/steps-profile/*.table.md ;;
  anchors)
    for flags in "" "--liger" "--amp" "--liger --amp"; do
      # shellcheck disable=SC2086
      PYTHONPATH=$PWD/.scratch/liger/src python3 bench/anchor_torch.py --shapes 1x128,8x256,8x512 $flags | tee -a "$OUT/anchors.jsonl"
    done ;;
  sweep)
    node --liftoff-only dist/bench/matmul-webgpu.js --f16-sweep --reps 30 --out "$OUT/sweep" | tail -30
    node --liftoff-only dist/bench/matmul-webgpu.js --f32-sweep --reps 30 --out "$OUT/sweep" | tail -30 ;;
  export)
    python3 models/export/export_default.py --out /tmp/x --only none --big /tmp/big &&
      step --model /tmp/big/full/qwen2-0.5b-default.onnx --runs fused-mlp-attn-linear-mixed:8x512:all:export,fused-mlp-attn-linear-mixed:8x512:all,fused-mlp-attn-linear:8x512:all:export \
        --out "$OUT/export" && cat "$OUT"/export/*.table.md ;;
  *) echo "unknown part '$part'" >&2; exit 2 ;;
esac
