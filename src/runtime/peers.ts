/**
 * The backends' runtimes are optional peer dependencies of the package (package.json): a project
 * installs the ones it uses. They are imported only when a backend starts, and a missing one is
 * reported as one line naming the package to install.
 */
import { fail } from '../errors.js';

/** The peer packages of each backend. */
export const BACKEND_PEERS = {
  cpu: ['onnxruntime-node'],
  webgpu: ['onnxruntime-web', 'webgpu'],
} as const;

/** The package a module-not-found error names, when it is one of `packages`. */
export function missingPackage(e: unknown, packages: readonly string[]): string | undefined {
  const err = e as NodeJS.ErrnoException | undefined;
  if (!err || (err.code !== 'ERR_MODULE_NOT_FOUND' && err.code !== 'MODULE_NOT_FOUND')) return undefined;
  return packages.find((p) => err.message.includes(`'${p}'`) || err.message.includes(`'${p}/`));
}

/**
 * Run `load` (which imports a backend's modules); a missing peer becomes a usage error:
 * "backend 'cpu' needs onnxruntime-node: npm install onnxruntime-node".
 */
export async function withPeers<T>(backend: keyof typeof BACKEND_PEERS, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (e) {
    const pkg = missingPackage(e, BACKEND_PEERS[backend]);
    if (pkg) {
      const all = BACKEND_PEERS[backend].join(' ');
      return fail('usage', `backend '${backend}' needs the package ${pkg}, which is not installed: npm install ${all}`, e);
    }
    throw e;
  }
}
