/** IEEE half and bfloat16 conversions, as ggml does them (round to nearest even). */
import { ModelError } from "../errors.js";

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

/** Lookup table: all 65536 half values as float32. */
export const F16_TABLE: Float32Array = (() => {
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) t[h] = f16ToF32Slow(h);
  return t;
})();

function f16ToF32Slow(h: number): number {
  const s = (h & 0x8000) ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

export function f16ToF32(h: number): number {
  return F16_TABLE[h & 0xffff]!;
}

/** float32 -> half bits, round to nearest even (matches F16C / ggml_compute_fp32_to_fp16). */
export function f32ToF16(x: number): number {
  f32buf[0] = x;
  const f = u32buf[0]!;
  const sign = (f >>> 16) & 0x8000;
  const exp = (f >>> 23) & 0xff;
  let mant = f & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1))) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++;
  return sign | h;
}

export function bf16ToF32(b: number): number {
  u32buf[0] = (b & 0xffff) << 16;
  return f32buf[0]!;
}

/** float32 -> bfloat16 bits, round to nearest even; NaN stays a quiet NaN (as ggml_compute_fp32_to_bf16). */
export function f32ToBf16(x: number): number {
  f32buf[0] = x;
  const u = u32buf[0]!;
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) | 64) & 0xffff;
  return ((u + (0x7fff + ((u >>> 16) & 1))) >>> 16) & 0xffff;
}

/** Round a float32 through half precision (what storing in an F16 KV cache does). */
export function roundF16(x: number): number {
  return F16_TABLE[f32ToF16(x)]!;
}

/**
 * Throw a ModelError naming `what` if the halves in `data` hold an infinity or a NaN (a damaged
 * file: the fast F16 kernels are exact for finite weights only).
 */
export function checkFiniteF16(data: Uint8Array, what: string): void {
  const n = data.length >>> 1;
  const h = (data.byteOffset & 1) === 0 ? new Uint16Array(data.buffer, data.byteOffset, n) : new Uint16Array(data.slice().buffer, 0, n);
  for (let i = 0; i < n; i++) {
    if ((h[i]! & 0x7c00) === 0x7c00) {
      throw new ModelError(`${what} holds a non-finite F16 value (${h[i]! & 0x3ff ? "NaN" : "infinity"}, bits 0x${h[i]!.toString(16)}) at element ${i}; the file is damaged`);
    }
  }
}
