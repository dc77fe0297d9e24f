/**
 * Test helpers: PEFT adapter folders and PyTorch (torch.save ZIP) checkpoints written from
 * float32 arrays, following the formats' specifications (pickle protocol 2 opcodes, the ZIP
 * local/central/end records), so the readers can be tested without Python.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as zlib from "node:zlib";
import { fromF32, type FloatDtype } from "../io/safetensors/format.js";
import { writeSafetensors } from "../io/safetensors/writer.js";
import type { PeftConfig } from "./adapter.js";

export interface TestTensor {
  name: string;
  shape: number[];
  data: Float32Array;
  dtype?: FloatDtype;
}

/** A tiny pickle writer (protocol 2) for what torch.save emits. */
export class Pickler {
  private out: number[] = [];
  private memo = 0;
  op(...b: number[]): this { this.out.push(...b); return this; }
  put(): this { return this.op(0x71, this.memo++ & 0xff); } // BINPUT (memo indices are not reused here)
  str(s: string): this {
    const b = Buffer.from(s, "utf8");
    const n = Buffer.alloc(4);
    n.writeUInt32LE(b.length);
    return this.op(0x58, ...n, ...b).put(); // BINUNICODE
  }
  int(v: number): this {
    if (v >= 0 && v < 256) return this.op(0x4b, v);
    if (v >= 0 && v < 65536) return this.op(0x4d, v & 0xff, v >> 8);
    const b = Buffer.alloc(4);
    b.writeInt32LE(v);
    return this.op(0x4a, ...b);
  }
  global(module: string, name: string): this {
    return this.op(0x63, ...Buffer.from(`${module}\n${name}\n`, "latin1")).put();
  }
  tuple(items: (() => void)[]): this {
    if (items.length === 0) return this.op(0x29);
    if (items.length <= 3) { items.forEach((f) => f()); return this.op([0x85, 0x86, 0x87][items.length - 1]!).put(); }
    this.op(0x28);
    items.forEach((f) => f());
    return this.op(0x74).put();
  }
  bytes(): Uint8Array { return Uint8Array.from(this.out); }
}

const STORAGE: Record<FloatDtype, string> = { F32: "FloatStorage", F16: "HalfStorage", BF16: "BFloat16Storage" };

/** data.pkl for {name: tensor}: _rebuild_tensor_v2 over one storage per tensor ("0", "1", ...). */
export function torchStateDictPickle(tensors: { name: string; shape: number[]; stride?: number[]; offset?: number; dtype: FloatDtype; storageKey: string; storageNumel: number }[]): Uint8Array {
  const p = new Pickler();
  p.op(0x80, 2); // PROTO 2
  p.op(0x7d).put(); // EMPTY_DICT
  p.op(0x28); // MARK
  for (const t of tensors) {
    p.str(t.name);
    p.global("torch._utils", "_rebuild_tensor_v2");
    const stride = t.stride ?? t.shape.map((_, i) => t.shape.slice(i + 1).reduce((a, b) => a * b, 1));
    p.tuple([
      () => {
        p.tuple([() => p.str("storage"), () => p.global("torch", STORAGE[t.dtype]), () => p.str(t.storageKey), () => p.str("cpu"), () => p.int(t.storageNumel)]);
        p.op(0x51); // BINPERSID
      },
      () => p.int(t.offset ?? 0),
      () => p.tuple(t.shape.map((d) => () => p.int(d))),
      () => p.tuple(stride.map((d) => () => p.int(d))),
      () => p.op(0x89), // False
      () => { p.global("collections", "OrderedDict"); p.op(0x29, 0x52).put(); }, // OrderedDict()
    ]);
    p.op(0x52).put(); // REDUCE
  }
  p.op(0x75); // SETITEMS
  p.op(0x2e); // STOP
  return p.bytes();
}

/** A ZIP archive of stored (uncompressed) entries. */
export function zipStored(entries: { name: string; data: Uint8Array }[]): Uint8Array {
  const crc32 = (zlib as unknown as { crc32: (d: Uint8Array) => number }).crc32;
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let off = 0;
  for (const e of entries) {
    const name = Buffer.from(e.name, "utf8");
    const crc = crc32(e.data) >>> 0;
    const lh = Buffer.alloc(30);
    lh.writeUInt32LE(0x04034b50, 0);
    lh.writeUInt16LE(20, 4);
    lh.writeUInt32LE(crc, 14);
    lh.writeUInt32LE(e.data.length, 18);
    lh.writeUInt32LE(e.data.length, 22);
    lh.writeUInt16LE(name.length, 26);
    const cd = Buffer.alloc(46);
    cd.writeUInt32LE(0x02014b50, 0);
    cd.writeUInt16LE(20, 4);
    cd.writeUInt16LE(20, 6);
    cd.writeUInt32LE(crc, 16);
    cd.writeUInt32LE(e.data.length, 20);
    cd.writeUInt32LE(e.data.length, 24);
    cd.writeUInt16LE(name.length, 28);
    cd.writeUInt32LE(off, 42);
    central.push(cd, name);
    parts.push(lh, name, Buffer.from(e.data));
    off += 30 + name.length + e.data.length;
  }
  const cdBuf = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cdBuf.length, 12);
  end.writeUInt32LE(off, 16);
  return Buffer.concat([...parts, cdBuf, end]);
}

/** A torch.save-style checkpoint of float tensors (contiguous, one storage each). */
export function writeTorchCheckpoint(path: string, tensors: TestTensor[], archive = "archive"): void {
  const infos = tensors.map((t, i) => ({ name: t.name, shape: t.shape, dtype: t.dtype ?? "F32", storageKey: String(i), storageNumel: t.data.length }));
  const entries = [
    { name: `${archive}/data.pkl`, data: torchStateDictPickle(infos) },
    { name: `${archive}/byteorder`, data: Buffer.from("little") },
    ...tensors.map((t, i) => ({ name: `${archive}/data/${i}`, data: fromF32(t.dtype ?? "F32", t.data) })),
    { name: `${archive}/version`, data: Buffer.from("3\n") },
  ];
  writeFileSync(path, zipStored(entries));
}

/** A PEFT adapter folder: adapter_config.json + adapter_model.safetensors (or .bin). */
export function writePeftAdapter(dir: string, config: Partial<PeftConfig> & { r: number; lora_alpha: number }, tensors: TestTensor[], format: "safetensors" | "bin" = "safetensors"): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "adapter_config.json"), JSON.stringify({ peft_type: "LORA", task_type: "CAUSAL_LM", bias: "none", fan_in_fan_out: false, ...config }, null, 2));
  if (format === "bin") writeTorchCheckpoint(join(dir, "adapter_model.bin"), tensors, "adapter_model");
  else writeSafetensors(join(dir, "adapter_model.safetensors"), tensors.map((t) => ({ name: t.name, dtype: t.dtype ?? "F32", shape: t.shape, data: fromF32(t.dtype ?? "F32", t.data) })), { metadata: { format: "pt" } });
}

/** Deterministic pseudo-random values in [-s, s). */
export function randomArray(n: number, seed: number, s = 0.1): Float32Array {
  let x = seed >>> 0 || 1;
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    a[i] = ((x / 4294967296) * 2 - 1) * s;
  }
  return a;
}
