/**
 * GGUF v3 (or v2) writer. Metadata is written in insertion order, tensors in the order given,
 * each tensor's data aligned to general.alignment. Output goes to a temporary file that is
 * renamed over the destination only when complete, so a failure never leaves half a file.
 */
import { closeSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
import { ArgumentError } from "../../errors.js";
import { blockFormat, typeName, type GgmlType } from "../../quant/format.js";
import { scalarSize } from "./reader.js";
import { GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GgufType, type GgufArray, type GgufEntry, type GgufValue } from "./types.js";

export interface GgufTensorSource {
  name: string;
  dims: number[];
  type: GgmlType;
  /** the tensor's bytes, or a function producing them when the writer reaches this tensor */
  data: Uint8Array | (() => Uint8Array);
}

export interface GgufWriteOptions {
  version?: 2 | 3;
  metadata: Map<string, GgufEntry> | Iterable<[string, GgufEntry]>;
  tensors: GgufTensorSource[];
  /** called after each tensor is written */
  onProgress?: (done: number, total: number, name: string) => void;
}

class ByteSink {
  private chunks: Buffer[] = [];
  private cur = Buffer.alloc(1 << 16);
  private n = 0;
  length = 0;

  private room(k: number): void {
    if (this.n + k <= this.cur.length) return;
    this.chunks.push(this.cur.subarray(0, this.n));
    this.cur = Buffer.alloc(Math.max(1 << 16, k));
    this.n = 0;
  }
  u8(v: number) { this.room(1); this.cur.writeUInt8(v, this.n); this.n += 1; this.length += 1; }
  i8(v: number) { this.room(1); this.cur.writeInt8(v, this.n); this.n += 1; this.length += 1; }
  u16(v: number) { this.room(2); this.cur.writeUInt16LE(v, this.n); this.n += 2; this.length += 2; }
  i16(v: number) { this.room(2); this.cur.writeInt16LE(v, this.n); this.n += 2; this.length += 2; }
  u32(v: number) { this.room(4); this.cur.writeUInt32LE(v, this.n); this.n += 4; this.length += 4; }
  i32(v: number) { this.room(4); this.cur.writeInt32LE(v, this.n); this.n += 4; this.length += 4; }
  f32(v: number) { this.room(4); this.cur.writeFloatLE(v, this.n); this.n += 4; this.length += 4; }
  f64(v: number) { this.room(8); this.cur.writeDoubleLE(v, this.n); this.n += 8; this.length += 8; }
  u64(v: bigint | number) { this.room(8); this.cur.writeBigUInt64LE(BigInt(v), this.n); this.n += 8; this.length += 8; }
  i64(v: bigint | number) { this.room(8); this.cur.writeBigInt64LE(BigInt(v), this.n); this.n += 8; this.length += 8; }
  bytes(b: Uint8Array) {
    this.room(b.length);
    this.cur.set(b, this.n);
    this.n += b.length;
    this.length += b.length;
  }
  str(s: string) {
    const b = Buffer.from(s, "utf8");
    this.u64(b.length);
    this.bytes(b);
  }
  toBuffer(): Buffer {
    return Buffer.concat([...this.chunks, this.cur.subarray(0, this.n)]);
  }
}

function writeValue(s: ByteSink, t: GgufType, v: GgufValue, key: string): void {
  const bad = (): never => { throw new ArgumentError(`GGUF metadata "${key}": value ${String(v)} does not fit type ${GgufType[t] ?? t}`); };
  switch (t) {
    case GgufType.UINT8: return s.u8(v as number);
    case GgufType.INT8: return s.i8(v as number);
    case GgufType.UINT16: return s.u16(v as number);
    case GgufType.INT16: return s.i16(v as number);
    case GgufType.UINT32: return s.u32(v as number);
    case GgufType.INT32: return s.i32(v as number);
    case GgufType.FLOAT32: return s.f32(v as number);
    case GgufType.FLOAT64: return s.f64(v as number);
    case GgufType.UINT64: return s.u64(v as bigint);
    case GgufType.INT64: return s.i64(v as bigint);
    case GgufType.BOOL: return s.u8(v ? 1 : 0);
    case GgufType.STRING: if (typeof v !== "string") bad(); return s.str(v as string);
    case GgufType.ARRAY: {
      const a = v as GgufArray;
      if (typeof a !== "object" || !("items" in a)) bad();
      s.u32(a.itemType);
      s.u64(a.items.length);
      const size = scalarSize(a.itemType);
      if (size > 0 && a.itemType !== GgufType.BOOL && ArrayBuffer.isView(a.items)) {
        const ta = a.items as Uint8Array;
        s.bytes(new Uint8Array(ta.buffer, ta.byteOffset, ta.byteLength));
        return;
      }
      for (const item of a.items as GgufValue[]) writeValue(s, a.itemType, item, key);
      return;
    }
    default: bad();
  }
}

/** Convenience constructors for metadata entries. */
export const gv = {
  u32: (v: number): GgufEntry => ({ type: GgufType.UINT32, value: v }),
  i32: (v: number): GgufEntry => ({ type: GgufType.INT32, value: v }),
  f32: (v: number): GgufEntry => ({ type: GgufType.FLOAT32, value: v }),
  bool: (v: boolean): GgufEntry => ({ type: GgufType.BOOL, value: v }),
  str: (v: string): GgufEntry => ({ type: GgufType.STRING, value: v }),
  strs: (v: string[]): GgufEntry => ({ type: GgufType.ARRAY, value: { itemType: GgufType.STRING, items: v } }),
  f32s: (v: Float32Array): GgufEntry => ({ type: GgufType.ARRAY, value: { itemType: GgufType.FLOAT32, items: v } }),
  i32s: (v: Int32Array): GgufEntry => ({ type: GgufType.ARRAY, value: { itemType: GgufType.INT32, items: v } }),
};

export function tensorBytes(type: GgmlType, dims: number[]): number {
  const f = blockFormat(type);
  if (!f) throw new ArgumentError(`unknown tensor type ${type}`);
  if (dims[0]! % f.blockSize !== 0) throw new ArgumentError(`row length ${dims[0]} is not a multiple of the ${f.name} block size ${f.blockSize}`);
  const n = dims.reduce((a, b) => a * b, 1);
  return (n / f.blockSize) * f.typeSize;
}

function buildHeader(opts: GgufWriteOptions): { header: Buffer; alignment: number } {
  const md = opts.metadata instanceof Map ? opts.metadata : new Map(opts.metadata);
  let alignment = GGUF_DEFAULT_ALIGNMENT;
  const al = md.get("general.alignment");
  if (al) alignment = al.value as number;
  const s = new ByteSink();
  s.u32(GGUF_MAGIC);
  s.u32(opts.version ?? 3);
  s.u64(opts.tensors.length);
  s.u64(md.size);
  for (const [k, e] of md) {
    s.str(k);
    s.u32(e.type);
    writeValue(s, e.type, e.value, k);
  }
  let off = 0;
  for (const t of opts.tensors) {
    const nb = tensorBytes(t.type, t.dims);
    s.str(t.name);
    s.u32(t.dims.length);
    for (const d of t.dims) s.u64(d);
    s.u32(t.type);
    s.u64(off);
    off += Math.ceil(nb / alignment) * alignment;
  }
  const pad = (Math.ceil(s.length / alignment) * alignment) - s.length;
  s.bytes(new Uint8Array(pad));
  return { header: s.toBuffer(), alignment };
}

function checkSize(t: GgufTensorSource, data: Uint8Array): number {
  const nb = tensorBytes(t.type, t.dims);
  if (data.length !== nb) {
    throw new ArgumentError(`tensor "${t.name}": ${typeName(t.type)} [${t.dims.join(", ")}] needs ${nb} bytes, got ${data.length}`);
  }
  return nb;
}

/** Write a GGUF file atomically (temp file + rename). */
export function writeGguf(path: string, opts: GgufWriteOptions): void {
  const { header, alignment } = buildHeader(opts);
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, "w");
  let ok = false;
  try {
    writeAll(fd, header);
    const zeros = new Uint8Array(alignment);
    opts.tensors.forEach((t, i) => {
      const data = typeof t.data === "function" ? t.data() : t.data;
      const nb = checkSize(t, data);
      writeAll(fd, data);
      const p = Math.ceil(nb / alignment) * alignment - nb;
      if (p > 0) writeAll(fd, zeros.subarray(0, p));
      opts.onProgress?.(i + 1, opts.tensors.length, t.name);
    });
    ok = true;
  } finally {
    closeSync(fd);
    if (ok) renameSync(tmp, path);
    else rmSync(tmp, { force: true });
  }
}

/** As writeGguf, for tensors whose bytes are produced asynchronously (e.g. by worker threads). */
export async function writeGgufAsync(path: string, opts: Omit<GgufWriteOptions, "tensors"> & {
  tensors: (Omit<GgufTensorSource, "data"> & { data: Uint8Array | (() => Uint8Array | Promise<Uint8Array>) })[];
}): Promise<void> {
  const { header, alignment } = buildHeader(opts as GgufWriteOptions);
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, "w");
  let ok = false;
  try {
    writeAll(fd, header);
    const zeros = new Uint8Array(alignment);
    for (let i = 0; i < opts.tensors.length; i++) {
      const t = opts.tensors[i]!;
      const data = typeof t.data === "function" ? await t.data() : t.data;
      const nb = checkSize(t as GgufTensorSource, data);
      writeAll(fd, data);
      const p = Math.ceil(nb / alignment) * alignment - nb;
      if (p > 0) writeAll(fd, zeros.subarray(0, p));
      opts.onProgress?.(i + 1, opts.tensors.length, t.name);
    }
    ok = true;
  } finally {
    closeSync(fd);
    if (ok) renameSync(tmp, path);
    else rmSync(tmp, { force: true });
  }
}

function writeAll(fd: number, b: Uint8Array): void {
  let done = 0;
  while (done < b.length) done += writeSync(fd, b, done, Math.min(b.length - done, 1 << 30));
}
