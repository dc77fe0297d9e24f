// @ts-nocheck -- AssemblyScript (compiled by asc, see package.json build:wasm), not Node TypeScript.
// One-token matmul kernels (generation) that use a scratch slot (tile.ts): the activation row is
// widened to i16 once per call, in an element order that matches how the weights unpack most
// cheaply, with its per-block scale as f64 and its block sum, so the four-row loop does only the
// weight work. Half-float weight scales come from a 64K-entry f16 -> f32 table.
//
// Element order of a 32-element block (both operands): a 16-byte vector read as i16x8 holds in
// lane i the bytes 2i (low) and 2i+1 (high). For nibble weights (byte j: element j in the low
// nibble, j+16 in the high one) lane i's four nibbles are the elements 2i, 2i+16, 2i+1, 2i+17,
// taken by `q & 15`, `(q >> 4) & 15`, `(q >> 8) & 15` and `q >> 12`; the activation vectors
// A0..A3 hold those elements of the token in that lane order. Sums are exact (i32) and the float64
// accumulation is the reference's, term for term, so results are bit-identical.

import { hi64, hsum4, ihi64, ilo64, lo64 } from "./common";
import { f16Table } from "./tile";

const Q4_0: i32 = 2;

/** byte offsets in the prepared row of a 32-block activation (Q8_0) with nb blocks */
@inline function daOff(nb: i32): usize {
  return <usize>nb << 6;
}
@inline function biasOff(nb: i32): usize {
  return (<usize>nb << 6) + (<usize>nb << 3);
}

/** bytes prepOne32 writes for nb blocks */
export function prepBytes32(nb: i32): usize {
  return (<usize>nb << 6) + (<usize>nb << 3) + (<usize>nb << 2);
}

/**
 * A Q8_0 activation row at a (nb blocks) to dst: per block A0..A3 (i16x8 each), then d as f64
 * per block, then Σq per block (i32).
 */
export function prepOne32(a: usize, nb: i32, dst: usize): void {
  const dd = dst + daOff(nb), bd = dst + biasOff(nb);
  const tab = f16Table();
  for (let b = 0; b < nb; b++) {
    const v0 = v128.load(a, 2), v1 = v128.load(a, 18);
    const e0 = i16x8.shr_s(i16x8.shl(v0, 8), 8), o0 = i16x8.shr_s(v0, 8);
    const e1 = i16x8.shr_s(i16x8.shl(v1, 8), 8), o1 = i16x8.shr_s(v1, 8);
    const o = dst + (<usize>b << 6);
    v128.store(o, e0);
    v128.store(o, e1, 16);
    v128.store(o, o0, 32);
    v128.store(o, o1, 48);
    store<f64>(dd + (<usize>b << 3), <f64>load<f32>(tab + (<usize>load<u16>(a) << 2)));
    const s = i32x4.extadd_pairwise_i16x8_s(i16x8.add(i16x8.add(e0, e1), i16x8.add(o0, o1)));
    const t = i32x4.add(s, i32x4.shuffle(s, s, 2, 3, 0, 1));
    store<i32>(bd + (<usize>b << 2), i32x4.extract_lane(t, 0) + i32x4.extract_lane(t, 1));
    a += 34;
  }
}

/** the f16 scales at byte off of four rows as f32x4, via the table */
@inline function scales4(tab: usize, p0: usize, p1: usize, p2: usize, p3: usize, off: usize): v128 {
  let v = v128.load32_zero(tab + (<usize>load<u16>(p0 + off) << 2));
  v = v128.load32_lane(tab + (<usize>load<u16>(p1 + off) << 2), v, 1);
  v = v128.load32_lane(tab + (<usize>load<u16>(p2 + off) << 2), v, 2);
  v = v128.load32_lane(tab + (<usize>load<u16>(p3 + off) << 2), v, 3);
  return v;
}

/** store the nv (1..4) lanes of res at o */
@inline function store4(o: usize, res: v128, nv: i32): void {
  if (nv == 4) {
    v128.store(o, res);
  } else {
    store<f32>(o, f32x4.extract_lane(res, 0));
    if (nv > 1) store<f32>(o, f32x4.extract_lane(res, 1), 4);
    if (nv > 2) store<f32>(o, f32x4.extract_lane(res, 2), 8);
  }
}

// ---- Q4_0 ----

@inline function rowQ4_0(p: usize, a: usize, m: v128): v128 {
  const q = v128.load(p, 2);
  return i32x4.add(
    i32x4.add(i32x4.dot_i16x8_s(v128.and(q, m), v128.load(a)), i32x4.dot_i16x8_s(v128.and(i16x8.shr_u(q, 4), m), v128.load(a, 16))),
    i32x4.add(i32x4.dot_i16x8_s(v128.and(i16x8.shr_u(q, 8), m), v128.load(a, 32)), i32x4.dot_i16x8_s(i16x8.shr_u(q, 12), v128.load(a, 48))),
  );
}

function oneQ4_0(w: usize, rb: usize, nb: i32, r0: i32, r1: i32, s: usize, out: usize): void {
  const tab = f16Table();
  // a constant the optimizers cannot see through, so it is made once, not in every iteration
  const m = i16x8.splat(<i16>(15 | (nb >> 31)));
  const dd = s + daOff(nb), bd = s + biasOff(nb);
  for (let r = r0; r < r1; r += 4) {
    const nv = min(4, r1 - r);
    let p0 = w + <usize>r * rb;
    let p1 = nv > 1 ? p0 + rb : p0;
    let p2 = nv > 2 ? p1 + rb : p1;
    let p3 = nv > 3 ? p2 + rb : p2;
    let acc01 = f64x2.splat(0);
    let acc23 = f64x2.splat(0);
    let a = s;
    for (let b = 0; b < nb; b++) {
      // Σ(q-8)·a = Σq·a - 8·Σa
      const isum = i32x4.sub(
        hsum4(rowQ4_0(p0, a, m), rowQ4_0(p1, a, m), rowQ4_0(p2, a, m), rowQ4_0(p3, a, m)),
        i32x4.shl(v128.load32_splat(bd + (<usize>b << 2)), 3),
      );
      const dw = scales4(tab, p0, p1, p2, p3, 0);
      const da = v128.load64_splat(dd + (<usize>b << 3));
      acc01 = f64x2.add(acc01, f64x2.mul(ilo64(isum), f64x2.mul(lo64(dw), da)));
      acc23 = f64x2.add(acc23, f64x2.mul(ihi64(isum), f64x2.mul(hi64(dw), da)));
      p0 += 18; p1 += 18; p2 += 18; p3 += 18; a += 64;
    }
    store4(out + (<usize>r << 2), i32x4.shuffle(f32x4.demote_f64x2_zero(acc01), f32x4.demote_f64x2_zero(acc23), 0, 1, 4, 5), nv);
  }
}

/**
 * out[r] = W row r . the activation row at act, rows [r0, r1), with scratch slot `slot` (at least
 * prepBytes of the row free after `off`). Returns false (nothing written) for a type without a
 * kernel here.
 */
export function matmulOne(slot: usize, type: i32, w: usize, rowBytes: i32, nIn: i32, r0: i32, r1: i32, act: usize, out: usize): bool {
  switch (type) {
    case Q4_0: {
      const nb = nIn >> 5;
      prepOne32(act, nb, slot);
      oneQ4_0(w, <usize>rowBytes, nb, r0, r1, slot, out);
      return true;
    }
    default: return false;
  }
}

/** bytes matmulOne needs in its slot for a row of nIn */
export function oneBytes(type: i32, nIn: i32): usize {
  return prepBytes32(nIn >> 5);
}
