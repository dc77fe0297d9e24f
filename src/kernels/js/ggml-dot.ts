/**
 * Quantized dot products with ggml-cpu's float arithmetic (x86 AVX2 kernels, which llama.cpp's
 * AVX-512 builds also use for these types), the "llama.cpp-exact" counterpart of src/quant's
 * vecDot. The integer part is the same (exact); what differs is how the block results are summed.
 * ggml keeps 8 float lanes, lane i holding the integer sums of elements 4i..4i+3 of every 32
 * (one _mm256_madd_epi16 / dpbusd lane), and adds each block into them with a fused multiply-add
 * by the block's float scale; the lanes are summed at the end in hsum_float_8's order. K-quants
 * with mins add their min term either in 4 more lanes (Q4_K), into the same lanes (Q2_K) or in a
 * float scalar (Q5_K), as their AVX2 kernels do.
 *
 * gemm selects llamafile's sgemm where llama.cpp would use it (two or more activation rows); for
 * the types here that only changes IQ4_NL, whose vec_dot alternates two sets of lanes.
 */
import { GgmlType } from "../../quant/format.js";
import { ViewCache, readF16, readF32, readI16 } from "../../quant/bytes.js";
import { unpackK4Scales } from "../../quant/q4_k.js";
import { unpackQ3Scales } from "../../quant/q3_k.js";
import { hsum8 } from "./ggml.js";
import { fmaf } from "./libm.js";

const fr = Math.fround;
const wViews = new ViewCache();
const aViews = new ViewCache();
const IQ4NL = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];

/** integer weight factors of one block (value times sub-block scale), 32 or 256 of them */
const q = new Int32Array(256);
const lanes = new Float32Array(8);
const lanes2 = new Float32Array(8);
const isum = new Int32Array(8);
const sm = new Int32Array(16);

/** Whether ggmlDot has this weight type. */
export function ggmlDotSupported(type: GgmlType): boolean {
  switch (type) {
    case GgmlType.Q4_0: case GgmlType.Q4_1: case GgmlType.Q5_0: case GgmlType.Q5_1: case GgmlType.Q8_0: case GgmlType.IQ4_NL:
    case GgmlType.Q2_K: case GgmlType.Q3_K: case GgmlType.Q4_K: case GgmlType.Q5_K: case GgmlType.Q6_K:
      return true;
    default:
      return false;
  }
}

/** q[0..32) for a 32-element block at byte o; returns the block's f16 scale d */
function decode32(type: GgmlType, w: Uint8Array, w8: Int8Array, o: number): number {
  const wb = w.byteOffset;
  switch (type) {
    case GgmlType.Q4_0:
      for (let j = 0; j < 16; j++) { const v = w[o + 2 + j]!; q[j] = (v & 15) - 8; q[j + 16] = (v >> 4) - 8; }
      break;
    case GgmlType.IQ4_NL:
      for (let j = 0; j < 16; j++) { const v = w[o + 2 + j]!; q[j] = IQ4NL[v & 15]!; q[j + 16] = IQ4NL[v >> 4]!; }
      break;
    case GgmlType.Q8_0:
      for (let j = 0; j < 32; j++) q[j] = w8[wb + o + 2 + j]!;
      break;
    case GgmlType.Q5_0: {
      const qh = (w[o + 2]! | (w[o + 3]! << 8) | (w[o + 4]! << 16) | (w[o + 5]! << 24)) >>> 0;
      for (let j = 0; j < 16; j++) {
        const v = w[o + 6 + j]!;
        q[j] = ((v & 15) | (((qh >>> j) << 4) & 0x10)) - 16;
        q[j + 16] = ((v >> 4) | ((qh >>> (j + 12)) & 0x10)) - 16;
      }
      break;
    }
    case GgmlType.Q4_1:
      for (let j = 0; j < 16; j++) { const v = w[o + 4 + j]!; q[j] = v & 15; q[j + 16] = v >> 4; }
      break;
    case GgmlType.Q5_1: {
      const qh = (w[o + 4]! | (w[o + 5]! << 8) | (w[o + 6]! << 16) | (w[o + 7]! << 24)) >>> 0;
      for (let j = 0; j < 16; j++) {
        const v = w[o + 8 + j]!;
        q[j] = (v & 15) | (((qh >>> j) << 4) & 0x10);
        q[j + 16] = (v >> 4) | ((qh >>> (j + 12)) & 0x10);
      }
      break;
    }
    default:
      throw new Error(`internal: decode32 of type ${type}`);
  }
  return readF16(w, o);
}

/** isum[i] = Σ q[4i + 32g .. 4i + 32g + 3] * a[..] over the 32-element groups g < nGroups */
function laneSums(a8: Int8Array, a: number, nGroups: number): void {
  isum.fill(0);
  for (let g = 0; g < nGroups; g++) {
    const e0 = 32 * g;
    for (let i = 0; i < 8; i++) {
      const e = e0 + 4 * i;
      isum[i] = isum[i]! + q[e]! * a8[a + e]! + q[e + 1]! * a8[a + e + 1]! + q[e + 2]! * a8[a + e + 2]! + q[e + 3]! * a8[a + e + 3]!;
    }
  }
}

const BLOCK_BYTES: Partial<Record<GgmlType, number>> = {
  [GgmlType.Q4_0]: 18, [GgmlType.IQ4_NL]: 18, [GgmlType.Q8_0]: 34, [GgmlType.Q5_0]: 22, [GgmlType.Q4_1]: 20, [GgmlType.Q5_1]: 24,
};

/** Q4_0, Q5_0, Q8_0, IQ4_NL with Q8_0 activations (34-byte blocks) */
function dotQ8Blocks(type: GgmlType, n: number, w: Uint8Array, wOff: number, act: Uint8Array, aOff: number, gemm: boolean): number {
  const w8 = wViews.i8(w), a8 = aViews.i8(act);
  const bs = BLOCK_BYTES[type]!, nb = n / 32;
  lanes.fill(0);
  if (type === GgmlType.IQ4_NL && !gemm) {
    // ggml_vec_dot_iq4_nl_q8_0: blocks in pairs into two sets of lanes, an odd last block in float
    lanes2.fill(0);
    let ib = 0;
    for (; ib + 1 < nb; ib += 2) {
      for (let h = 0; h < 2; h++) {
        const o = wOff + (ib + h) * bs, ao = aOff + (ib + h) * 34;
        const d = fr(readF16(act, ao) * decode32(type, w, w8, o));
        laneSums(a8, act.byteOffset + ao + 2, 1);
        const l = h === 0 ? lanes : lanes2;
        for (let i = 0; i < 8; i++) l[i] = fmaf(d, isum[i]!, l[i]!);
      }
    }
    for (let i = 0; i < 8; i++) lanes[i] = fr(lanes[i]! + lanes2[i]!);
    let sum = hsum8(lanes);
    for (; ib < nb; ib++) {
      const o = wOff + ib * bs, ao = aOff + ib * 34;
      const d = fr(readF16(act, ao) * decode32(type, w, w8, o));
      laneSums(a8, act.byteOffset + ao + 2, 1);
      let s = 0;
      for (let i = 0; i < 8; i++) s += isum[i]!;
      sum = fr(sum + fr(d * s));
    }
    return sum;
  }
  for (let b = 0; b < nb; b++) {
    const o = wOff + b * bs, ao = aOff + b * 34;
    const d = fr(decode32(type, w, w8, o) * readF16(act, ao));
    laneSums(a8, act.byteOffset + ao + 2, 1);
    for (let i = 0; i < 8; i++) lanes[i] = fmaf(d, isum[i]!, lanes[i]!);
  }
  return hsum8(lanes);
}

/** Q4_1, Q5_1 with Q8_1 activations (36-byte blocks: f16 d, f16 s = d * Σq, i8[32]) */
function dotQ8_1Blocks(type: GgmlType, n: number, w: Uint8Array, wOff: number, act: Uint8Array, aOff: number): number {
  const w8 = wViews.i8(w), a8 = aViews.i8(act);
  const bs = BLOCK_BYTES[type]!, nb = n / 32;
  lanes.fill(0);
  let summs = 0;
  for (let b = 0; b < nb; b++) {
    const o = wOff + b * bs, ao = aOff + b * 36;
    const dx = decode32(type, w, w8, o);
    summs = fr(summs + readF16(w, o + 2) * readF16(act, ao + 2));
    const d = fr(dx * readF16(act, ao));
    laneSums(a8, act.byteOffset + ao + 4, 1);
    for (let i = 0; i < 8; i++) lanes[i] = fmaf(isum[i]!, d, lanes[i]!);
  }
  return fr(hsum8(lanes) + summs);
}

// ---- K-quants with Q8_K activations (292-byte blocks: f32 d, i8 qs[256], i16 bsums[16]) ----

function dotQ2_K(n: number, w: Uint8Array, wOff: number, act: Uint8Array, aOff: number): number {
  const a8 = aViews.i8(act);
  lanes.fill(0);
  for (let b = 0; b < n / 256; b++) {
    const o = wOff + b * 84, ao = aOff + b * 292;
    const yd = readF32(act, ao);
    const d = fr(yd * readF16(w, o + 80)), dmin = fr(-yd * readF16(w, o + 82));
    for (let i = 0; i < 8; i++) {
      const p = (w[o + 2 * i]! >> 4) * readI16(act, ao + 260 + 4 * i) + (w[o + 2 * i + 1]! >> 4) * readI16(act, ao + 262 + 4 * i);
      lanes[i] = fmaf(dmin, p, lanes[i]!);
    }
    for (let j = 0; j < 2; j++) {
      for (let s = 0; s < 4; s++) {
        for (let l = 0; l < 32; l++) {
          const e = 128 * j + 32 * s + l;
          q[e] = ((w[o + 16 + 32 * j + l]! >> (2 * s)) & 3) * (w[o + (e >> 4)]! & 15);
        }
      }
    }
    laneSums(a8, act.byteOffset + ao + 4, 8);
    for (let i = 0; i < 8; i++) lanes[i] = fmaf(d, fr(isum[i]!), lanes[i]!);
  }
  return hsum8(lanes);
}

function dotQ3_K(n: number, w: Uint8Array, wOff: number, act: Uint8Array, aOff: number): number {
  const a8 = aViews.i8(act);
  lanes.fill(0);
  for (let b = 0; b < n / 256; b++) {
    const o = wOff + b * 110, ao = aOff + b * 292;
    const d = fr(readF32(act, ao) * readF16(w, o + 108));
    unpackQ3Scales(w, o + 96, sm);
    for (let j = 0; j < 2; j++) {
      for (let s = 0; s < 4; s++) {
        const m = 1 << (4 * j + s);
        for (let l = 0; l < 32; l++) {
          const e = 128 * j + 32 * s + l;
          q[e] = (((w[o + 32 + 32 * j + l]! >> (2 * s)) & 3) - (w[o + l]! & m ? 0 : 4)) * sm[e >> 4]!;
        }
      }
    }
    laneSums(a8, act.byteOffset + ao + 4, 8);
    for (let i = 0; i < 8; i++) lanes[i] = fmaf(d, fr(isum[i]!), lanes[i]!);
  }
  return hsum8(lanes);
}

const mlanes = new Float32Array(4);

function dotQ4_K(n: number, w: Uint8Array, wOff: number, act: Uint8Array, aOff: number): number {
  const a8 = aViews.i8(act);
  lanes.fill(0);
  mlanes.fill(0);
  for (let b = 0; b < n / 256; b++) {
    const o = wOff + b * 144, ao = aOff + b * 292;
    const yd = readF32(act, ao);
    const d = fr(yd * readF16(w, o)), dmin = fr(-yd * readF16(w, o + 2));
    unpackK4Scales(w, o + 4, sm);
    for (let k = 0; k < 4; k++) {
      const s0 = readI16(act, ao + 260 + 8 * k) + readI16(act, ao + 262 + 8 * k);
      const s1 = readI16(act, ao + 264 + 8 * k) + readI16(act, ao + 266 + 8 * k);
      mlanes[k] = fmaf(dmin, sm[4 * k + 1]! * s0 + sm[4 * k + 3]! * s1, mlanes[k]!);
    }
    for (let j = 0; j < 4; j++) {
      for (let l = 0; l < 32; l++) {
        const v = w[o + 16 + 32 * j + l]!;
        q[64 * j + l] = (v & 15) * sm[4 * j]!;
        q[64 * j + 32 + l] = (v >> 4) * sm[4 * j + 2]!;
      }
    }
    laneSums(a8, act.byteOffset + ao + 4, 8);
    for (let i = 0; i < 8; i++) lanes[i] = fmaf(d, fr(isum[i]!), lanes[i]!);
  }
  const m = fr(fr(mlanes[0]! + mlanes[2]!) + fr(mlanes[1]! + mlanes[3]!));
  return fr(hsum8(lanes) + m);
}

function dotQ5_K(n: number, w: Uint8Array, wOff: number, act: Uint8Array, aOff: number): number {
  const a8 = aViews.i8(act);
  lanes.fill(0);
  let summs = 0;
  for (let b = 0; b < n / 256; b++) {
    const o = wOff + b * 176, ao = aOff + b * 292;
    const yd = readF32(act, ao);
    const d = fr(yd * readF16(w, o)), dmin = fr(-yd * readF16(w, o + 2));
    unpackK4Scales(w, o + 4, sm);
    let ms = 0;
    for (let k = 0; k < 8; k++) ms += sm[2 * k + 1]! * (readI16(act, ao + 260 + 4 * k) + readI16(act, ao + 262 + 4 * k));
    summs = fr(summs + fr(dmin * ms));
    for (let j = 0; j < 4; j++) {
      for (let l = 0; l < 32; l++) {
        const v = w[o + 48 + 32 * j + l]!, h = w[o + 16 + l]!;
        q[64 * j + l] = ((v & 15) | (((h >> (2 * j)) & 1) << 4)) * sm[4 * j]!;
        q[64 * j + 32 + l] = ((v >> 4) | (((h >> (2 * j + 1)) & 1) << 4)) * sm[4 * j + 2]!;
      }
    }
    laneSums(a8, act.byteOffset + ao + 4, 8);
    for (let i = 0; i < 8; i++) lanes[i] = fmaf(d, fr(isum[i]!), lanes[i]!);
  }
  return fr(hsum8(lanes) + summs);
}

function dotQ6_K(n: number, w: Uint8Array, wOff: number, act: Uint8Array, aOff: number): number {
  const w8 = wViews.i8(w), a8 = aViews.i8(act);
  lanes.fill(0);
  for (let b = 0; b < n / 256; b++) {
    const o = wOff + b * 210, ao = aOff + b * 292;
    const d = fr(readF32(act, ao) * readF16(w, o + 208));
    const sc = w.byteOffset + o + 192;
    for (let j = 0; j < 2; j++) {
      const ql = o + 64 * j, qh = o + 128 + 32 * j, e0 = 128 * j;
      for (let l = 0; l < 32; l++) {
        const lo = w[ql + l]!, hi = w[ql + l + 32]!, h = w[qh + l]!;
        q[e0 + l] = ((lo & 15) | ((h & 3) << 4)) - 32;
        q[e0 + l + 32] = ((hi & 15) | (((h >> 2) & 3) << 4)) - 32;
        q[e0 + l + 64] = ((lo >> 4) | (((h >> 4) & 3) << 4)) - 32;
        q[e0 + l + 96] = ((hi >> 4) | (((h >> 6) & 3) << 4)) - 32;
      }
    }
    for (let e = 0; e < 256; e++) q[e] = q[e]! * w8[sc + (e >> 4)]!;
    laneSums(a8, act.byteOffset + ao + 4, 8);
    for (let i = 0; i < 8; i++) lanes[i] = fmaf(d, fr(isum[i]!), lanes[i]!);
  }
  return hsum8(lanes);
}

/**
 * One weight row (n elements of `type` at byte wOff of w) times one activation row already
 * quantized to the type's vec_dot type (at byte aOff of act), with ggml-cpu's arithmetic.
 */
export function ggmlDot(type: GgmlType, n: number, w: Uint8Array, wOff: number, act: Uint8Array, aOff: number, gemm: boolean): number {
  switch (type) {
    case GgmlType.Q4_0: case GgmlType.Q5_0: case GgmlType.Q8_0: case GgmlType.IQ4_NL:
      return dotQ8Blocks(type, n, w, wOff, act, aOff, gemm);
    case GgmlType.Q4_1: case GgmlType.Q5_1:
      return dotQ8_1Blocks(type, n, w, wOff, act, aOff);
    case GgmlType.Q2_K: return dotQ2_K(n, w, wOff, act, aOff);
    case GgmlType.Q3_K: return dotQ3_K(n, w, wOff, act, aOff);
    case GgmlType.Q4_K: return dotQ4_K(n, w, wOff, act, aOff);
    case GgmlType.Q5_K: return dotQ5_K(n, w, wOff, act, aOff);
    case GgmlType.Q6_K: return dotQ6_K(n, w, wOff, act, aOff);
    default:
      throw new Error(`internal: no ggml-exact dot product for type ${type}`);
  }
}
