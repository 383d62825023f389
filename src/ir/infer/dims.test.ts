import { describe, expect, it } from 'vitest';
import { canonDim, dimAdd, dimDiv, dimEq, dimMul, dimProduct, dimSub, evalDim } from './dims.js';
import { broadcastDim } from './context.js';
import { sliceLength } from './slice.js';

describe('symbolic dims', () => {
  it('has one canonical form', () => {
    expect(canonDim('S * B')).toBe('B*S');
    expect(canonDim('s53 - 1')).toBe('s53-1');
    expect(canonDim('(s + 1) * 2')).toBe('2*s+2');
    expect(canonDim('3')).toBe(3);
    expect(canonDim('batch')).toBe('batch');
    expect(canonDim('floor(s/2)')).toBe('floor(s/2)');
    expect(dimEq('B*S', 'S*B')).toBe(true);
    expect(dimEq('B', 'S')).toBe(false);
    expect(dimEq(null, null)).toBe(false);
  });

  it('multiplies, adds and subtracts exactly', () => {
    expect(dimMul('B', 'S')).toBe('B*S');
    expect(dimMul(2, 's')).toBe('2*s');
    expect(dimMul('B*S', 896)).toBe('896*B*S');
    expect(dimMul('s', 's')).toBe('s*s');
    expect(dimSub('seq', 1)).toBe('seq-1');
    expect(dimAdd('seq-1', 1)).toBe('seq');
    expect(dimAdd('past', 'seq')).toBe('past+seq');
    expect(dimSub('a', 'a')).toBe(0);
    expect(dimProduct(['B', 'S', 14, 64])).toBe('896*B*S');
    expect(dimMul(null, 'S')).toBeNull();
    expect(dimMul('floor(s/2)', 2)).toBeNull();
  });

  it('divides only when exact', () => {
    expect(dimDiv('896*B*S', 896)).toBe('B*S');
    expect(dimDiv('B*S', 'S')).toBe('B');
    expect(dimDiv('2*s', 2)).toBe('s');
    expect(dimDiv('2*s+4', 2)).toBe('s+2');
    expect(dimDiv('s', 2)).toBeNull();
    expect(dimDiv('s+1', 's')).toBeNull();
    expect(dimDiv('s+1', 's+1')).toBe(1);
    expect(dimDiv(7, 2)).toBeNull();
  });

  it('evaluates with bindings', () => {
    expect(evalDim('2*s+B*S', { s: 3, B: 2, S: 16 })).toBe(38);
    expect(evalDim('s-1', { s: 16 })).toBe(15);
    expect(evalDim('t', { s: 16 })).toBeNull();
  });

  it('broadcasts', () => {
    expect(broadcastDim(1, 'S')).toBe('S');
    expect(broadcastDim('S', 'S')).toBe('S');
    expect(broadcastDim('S', 4)).toBe(4);
    expect(broadcastDim('S', 'T')).toBeNull();
    expect(() => broadcastDim(3, 4)).toThrow(/broadcast/);
  });

  it('slices symbolic dims', () => {
    expect(sliceLength('S', 1, 2 ** 63, 1)).toBe('S-1');
    expect(sliceLength('S', 0, -1, 1)).toBe('S-1');
    expect(sliceLength('S', -2, 2 ** 63, 1)).toBe(2);
    expect(sliceLength('S', 0, 1, 1)).toBe(1); // symbolic dims are >= 2, as torch assumes
    expect(sliceLength('S', -3, -1, 1)).toBeNull(); // needs S >= 3
    expect(sliceLength(32768, 0, 'S', 1)).toBe('S');
    expect(sliceLength('S', 0, 5, 1)).toBeNull();
    expect(sliceLength('S', -1, -(2 ** 63), -1)).toBe('S');
    expect(sliceLength(10, -1, -100, -2)).toBe(5);
  });
});
