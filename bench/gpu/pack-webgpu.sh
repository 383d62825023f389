#!/usr/bin/env bash
# After ../shared/gpu/pack.sh: what the GPU benches and `ortfuse train --backend webgpu` need on the
# device machine beyond the production packages (pack.sh leaves out dev and peer dependencies):
# dawn.node (webgpu, linux-x64 only), onnxruntime-web's WebGPU bundle and onnxruntime-common, as
# .gpu/extra.txz (~9 MB); and dist/ built from tsconfig.json (benches included, tests not).
# On the device machine, after `bash .gpu/unpack.sh`: `tar -xJf .gpu/extra.txz -C .gpu`.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
[ -d .gpu ] || { echo "run ../shared/gpu/pack.sh first" >&2; exit 1; }
w=node_modules/onnxruntime-web
tar -cf - --exclude='*.map' --exclude='*.d.ts' --exclude='webgpu/dist/darwin-*' --exclude='webgpu/dist/win32-*' \
  --exclude='webgpu/dist/linux-arm64' node_modules/webgpu node_modules/onnxruntime-common "$w/package.json" \
  "$w/dist/ort.webgpu.bundle.min.mjs" "$w/dist/ort.webgpu.min.mjs" "$w/dist/ort-wasm-simd-threaded.asyncify.mjs" \
  "$w/dist/ort-wasm-simd-threaded.asyncify.wasm" | xz -T2 -6 > .gpu/extra.txz
rm -rf .gpu/dist && npx tsc -p tsconfig.json --outDir .gpu/dist && find .gpu/dist -name '*.test.js' -delete
du -sh .gpu
echo "device machine: bash .gpu/unpack.sh >/dev/null && tar -xJf .gpu/extra.txz -C .gpu && export PATH=\$PWD/.gpu/bin:\$PATH && source .gpu/env.sh && node --liftoff-only dist/bench/..."
