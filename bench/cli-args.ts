/** Shared by the WebGPU benches: `--name value` flags (a bare `--flag` reads 'true') and whether a GPU device node exists. */
import fs from 'node:fs';

export function benchArgs(argv = process.argv.slice(2)): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) if (argv[i].startsWith('--')) out[argv[i].slice(2)] = argv[i + 1]?.startsWith('--') || argv[i + 1] === undefined ? 'true' : argv[++i];
  return out;
}

/** A GPU device node (NVIDIA or a DRM render node): else the benches use SwiftShader. */
export function hasGpuDevice(): boolean {
  return fs.existsSync('/dev/nvidiactl') || (fs.existsSync('/dev/dri') && fs.readdirSync('/dev/dri').some((f) => f.startsWith('renderD')));
}
