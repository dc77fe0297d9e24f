/**
 * Key/value cache: for each layer, K and V rows [nCtx, nHeadKv * headDim], stored as float32 or as
 * IEEE half (llama.cpp's default cache type). Values are rounded on write.
 */
import { F16_TABLE, f32ToF16 } from "../quant/f16.js";

export type KvType = "f32" | "f16";

export class KvCache {
  readonly k: (Float32Array | Uint16Array)[] = [];
  readonly v: (Float32Array | Uint16Array)[] = [];
  readonly rowSize: number;

  constructor(readonly nLayer: number, readonly nCtx: number, nHeadKv: number, headDim: number, readonly type: KvType,
    alloc?: (n: number, f16: boolean) => Float32Array | Uint16Array) {
    this.rowSize = nHeadKv * headDim;
    const make = alloc ?? ((n: number, f16: boolean) => (f16 ? new Uint16Array(n) : new Float32Array(n)));
    for (let l = 0; l < nLayer; l++) {
      const n = nCtx * this.rowSize;
      this.k.push(make(n, type === "f16"));
      this.v.push(make(n, type === "f16"));
    }
  }

  get bytes(): number {
    return 2 * this.nLayer * this.nCtx * this.rowSize * (this.type === "f32" ? 4 : 2);
  }

  /** Store one row of K and V for a position. */
  write(layer: number, pos: number, k: Float32Array, kOff: number, v: Float32Array, vOff: number): void {
    const o = pos * this.rowSize, n = this.rowSize;
    const K = this.k[layer]!, V = this.v[layer]!;
    if (K instanceof Float32Array) {
      K.set(k.subarray(kOff, kOff + n), o);
      (V as Float32Array).set(v.subarray(vOff, vOff + n), o);
    } else {
      for (let i = 0; i < n; i++) {
        K[o + i] = f32ToF16(k[kOff + i]!);
        (V as Uint16Array)[o + i] = f32ToF16(v[vOff + i]!);
      }
    }
  }

  /** Read element i of row pos as float. */
  static at(buf: Float32Array | Uint16Array, idx: number): number {
    return buf instanceof Float32Array ? buf[idx]! : F16_TABLE[buf[idx]!]!;
  }
}
