/**
 * Seeded pseudo-random numbers for sampling: xoshiro128** (Blackman & Vigna), a small, fast,
 * well-studied generator that needs only 32-bit integer arithmetic (Math.imul), so it runs at
 * full speed in JavaScript without BigInt. The 128-bit state is filled from the seed with
 * splitmix32, so nearby seeds (0, 1, 2, ...) give unrelated streams.
 *
 * This is for reproducible sampling, not for anything security-related.
 */
import { randomBytes } from "node:crypto";

/** A seed the RNG accepts: any finite number; it is reduced to a 64-bit integer pattern. */
export type Seed = number;

/** A fresh random 32-bit seed (used when the caller gives none, or -1 as llama.cpp does). */
export function randomSeed(): number {
  return randomBytes(4).readUInt32LE(0);
}

function splitmix32(state: { s: number }): number {
  state.s = (state.s + 0x9e3779b9) | 0;
  let z = state.s;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  /** The seed this generator was created with (report it so a run can be repeated). */
  readonly seed: number;

  constructor(seed: Seed) {
    if (!Number.isFinite(seed)) throw new RangeError(`RNG seed must be a finite number, got ${seed}`);
    this.seed = seed;
    const int = Math.trunc(seed);
    // Low and high 32 bits of the integer seed (exact for |seed| < 2^53), mixed in turn.
    const lo = int >>> 0;
    const hi = Math.floor(int / 4294967296) >>> 0;
    const st = { s: lo ^ Math.imul(hi, 0x27d4eb2d) };
    this.a = splitmix32(st);
    this.b = splitmix32(st);
    this.c = splitmix32(st);
    this.d = splitmix32(st);
    if ((this.a | this.b | this.c | this.d) === 0) this.a = 1; // the all-zero state is a fixed point
  }

  /** Next 32 random bits as an unsigned integer. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.b, 5), 7), 9);
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return result >>> 0;
  }

  /** Uniform double in [0, 1) with 53 random bits. */
  next(): number {
    const hi = this.nextU32() >>> 5; // 27 bits
    const lo = this.nextU32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
