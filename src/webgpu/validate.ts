/// <reference types="@webgpu/types" />
/** Input checks shared by the kernels: one-line errors naming the kernel, the input and the sizes. */
import { fail } from '../errors.js';

/** `buffer` must be a STORAGE buffer holding at least `elements` 4-byte elements. */
export function checkBuffer(kernel: string, name: string, buffer: GPUBuffer | undefined, elements: number): GPUBuffer {
  if (!buffer) return fail('usage', `${kernel}: missing buffer '${name}'`);
  if (!(buffer.usage & GPUBufferUsage.STORAGE)) fail('usage', `${kernel}: buffer '${name}' lacks STORAGE usage`);
  if (buffer.size < elements * 4) fail('usage', `${kernel}: buffer '${name}' has ${buffer.size} bytes, needs ${elements * 4} (${elements} x 4-byte elements)`);
  return buffer;
}

/** Each named value must be a positive integer (a dimension). */
export function checkDims(kernel: string, dims: Record<string, number>): void {
  for (const [name, d] of Object.entries(dims))
    if (!Number.isInteger(d) || d <= 0) fail('usage', `${kernel}: ${name}=${d} must be a positive integer`);
}

/** Indexes are u32 in WGSL: element counts must stay below 2^32. */
export function checkU32(kernel: string, what: string, n: number): void {
  if (n >= 2 ** 32) fail('usage', `${kernel}: ${what} has ${n} elements, more than a u32 index reaches`);
}
