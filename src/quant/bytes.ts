// Small helpers shared by the block formats: typed views over a Uint8Array's buffer without a
// per-call allocation, little-endian scalar reads, and ggml's two rounding rules.
// Not a general binary reader (that is io/); only what the quant kernels need in their loops.

import { F16_TABLE } from "./f16.js";

// ---- views ----

/**
 * A view cache slot: remembers the last ArrayBuffer it wrapped so that a matmul calling a kernel
 * once per row builds its Int8Array / Float32Array / Uint16Array views once, not once per row.
 * Index the returned views with `u8.byteOffset + off` (the views start at byte 0 of the buffer).
 */
export class ViewCache {
  private buf: ArrayBufferLike | null = null;
  private i8v: Int8Array | null = null;
  private f32v: Float32Array | null = null;
  private u16v: Uint16Array | null = null;

  private reset(buf: ArrayBufferLike): void {
    this.buf = buf;
    this.i8v = null;
    this.f32v = null;
    this.u16v = null;
  }

  i8(u8: Uint8Array): Int8Array {
    if (this.buf !== u8.buffer) this.reset(u8.buffer);
    return (this.i8v ??= new Int8Array(u8.buffer, 0, u8.buffer.byteLength));
  }

  /** Float32 view of the whole buffer; only usable for 4-byte aligned absolute offsets. */
  f32(u8: Uint8Array): Float32Array {
    if (this.buf !== u8.buffer) this.reset(u8.buffer);
    return (this.f32v ??= new Float32Array(u8.buffer, 0, u8.buffer.byteLength >>> 2));
  }

  /** Uint16 view of the whole buffer; only usable for 2-byte aligned absolute offsets. */
  u16(u8: Uint8Array): Uint16Array {
    if (this.buf !== u8.buffer) this.reset(u8.buffer);
    return (this.u16v ??= new Uint16Array(u8.buffer, 0, u8.buffer.byteLength >>> 1));
  }
}

// ---- scalar reads and writes (little endian) ----

/** f16 at byte o of b, as float32 (via the 64K table). */
export function readF16(b: Uint8Array, o: number): number {
  return F16_TABLE[b[o]! | (b[o + 1]! << 8)]!;
}

export function writeU16(b: Uint8Array, o: number, v: number): void {
  b[o] = v & 0xff;
  b[o + 1] = (v >>> 8) & 0xff;
}

export function readI16(b: Uint8Array, o: number): number {
  return ((b[o]! | (b[o + 1]! << 8)) << 16) >> 16;
}

export function readU32(b: Uint8Array, o: number): number {
  return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
}

export function writeU32(b: Uint8Array, o: number, v: number): void {
  b[o] = v & 0xff;
  b[o + 1] = (v >>> 8) & 0xff;
  b[o + 2] = (v >>> 16) & 0xff;
  b[o + 3] = (v >>> 24) & 0xff;
}

const scratchF32 = new Float32Array(1);
const scratchU8 = new Uint8Array(scratchF32.buffer);

export function readF32(b: Uint8Array, o: number): number {
  scratchU8[0] = b[o]!;
  scratchU8[1] = b[o + 1]!;
  scratchU8[2] = b[o + 2]!;
  scratchU8[3] = b[o + 3]!;
  return scratchF32[0]!;
}

export function writeF32(b: Uint8Array, o: number, v: number): void {
  scratchF32[0] = v;
  b[o] = scratchU8[0]!;
  b[o + 1] = scratchU8[1]!;
  b[o + 2] = scratchU8[2]!;
  b[o + 3] = scratchU8[3]!;
}

// ---- rounding ----

/** Round half to even (what _mm256_round_ps(_MM_ROUND_NEAREST) and ggml's nearest_int do). */
export function roundHalfEven(v: number): number {
  const r = Math.round(v); // ties toward +inf
  return r - v === 0.5 && (r & 1) !== 0 ? r - 1 : r;
}

/** C roundf: half away from zero. */
export function roundHalfAway(v: number): number {
  return v < 0 ? -Math.round(-v) : Math.round(v);
}

/**
 * ggml nearest_int(fval): adds 1.5*2^23 in float32 and reads the mantissa, i.e. round half to
 * even of the float32 value (valid for |fval| <= 4194303).
 */
export function nearestInt(fval: number): number {
  return roundHalfEven(Math.fround(fval));
}

/** C (int) / (int8_t) conversion of a float: truncation toward zero. */
export function truncInt(v: number): number {
  return Math.trunc(v);
}
