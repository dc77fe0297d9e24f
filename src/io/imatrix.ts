/**
 * Importance-matrix files as llama.cpp's llama-imatrix writes them and llama-quantize --imatrix
 * reads them (tools/imatrix/imatrix.cpp: save_imatrix_legacy, save_imatrix, load_imatrix*):
 *
 * Legacy (.dat), little-endian, no header:
 *   int32 n_entries, then per entry (names sorted):
 *     int32 len, name[len], int32 ncall, int32 nval, float32 values[nval]
 *       values = (Σx² / count) * ncall per column (count = tokens seen by that matrix; a matrix
 *       that saw none stores 1), ncall = ceil(max count / chunk size); a reader divides by ncall
 *   int32 chunks processed, int32 len, dataset file name[len]          (both optional to readers)
 *
 * GGUF: general.type = "imatrix", imatrix.datasets (strings), imatrix.chunk_count and
 *   imatrix.chunk_size (u32); per entry <name>.in_sum2 F32 [nIn, nMat] (Σx² per column) and
 *   <name>.counts F32 [1, nMat] (tokens per matrix).
 *
 * Both hold, per weight (a stacked expert tensor has one matrix per expert), Σx² of the
 * activations that multiplied each column; the importance is its mean.
 */
import { readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { basename } from "node:path";
import { ArgumentError, FormatError } from "../errors.js";
import { GgmlType } from "../quant/format.js";
import { GgufReader } from "./gguf/reader.js";
import { GGUF_MAGIC, GgufType, isArray } from "./gguf/types.js";
import { gv, writeGguf, type GgufTensorSource } from "./gguf/writer.js";

export interface ImatrixEntry {
  /** Σx² per column: [nMat][nIn] flattened */
  sums: Float64Array;
  /** tokens seen per matrix ([nMat]; one value for all matrices when read from a legacy file) */
  counts: number[];
  nMat: number;
}

export interface Imatrix {
  /** by weight name, e.g. blk.0.ffn_down_exps.weight */
  entries: Map<string, ImatrixEntry>;
  /** chunks the statistics were collected over */
  chunkCount: number;
  /** tokens per chunk (0 when unknown: legacy files do not store it) */
  chunkSize: number;
  /** the text files collected over */
  datasets: string[];
}

export type ImatrixFormat = "dat" | "gguf";

// Parser limits (CWE-789: sizes from the file are checked before they size an allocation)
/** names are tensor names; llama.cpp's GGML_MAX_NAME is 64, leave room for longer ones */
const MAX_NAME_BYTES = 4096;
const MAX_ENTRIES = 1 << 20;

/** The per-column importance of matrix `mat` (or of all matrices concatenated): Σx²/count; 1 where a matrix saw no token (llama-quantize's rule). */
export function importanceOf(e: ImatrixEntry, mat?: number): Float32Array {
  const nIn = e.sums.length / e.nMat;
  const mats = mat === undefined ? Array.from({ length: e.nMat }, (_, m) => m) : [mat];
  const out = new Float32Array(mats.length * nIn);
  mats.forEach((m, i) => {
    const c = e.counts.length === 1 ? e.counts[0]! : e.counts[m]!;
    for (let j = 0; j < nIn; j++) out[i * nIn + j] = c > 0 ? e.sums[m * nIn + j]! / c : 1;
  });
  return out;
}

/** The format a path asks for: .gguf is GGUF, anything else the legacy binary format. */
export function imatrixFormatOf(path: string): ImatrixFormat {
  return /\.gguf$/i.test(path) ? "gguf" : "dat";
}

// ---- writing ----

/** Write atomically (temp file + rename) in the given format (default: from the extension). */
export function writeImatrix(path: string, m: Imatrix, format: ImatrixFormat = imatrixFormatOf(path)): { written: number; skipped: string[] } {
  if (format === "gguf") return writeImatrixGguf(path, m);
  return writeImatrixLegacy(path, m);
}

function sortedNames(m: Imatrix): string[] {
  return [...m.entries.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

function writeImatrixLegacy(path: string, m: Imatrix): { written: number; skipped: string[] } {
  if (!(m.chunkSize > 0)) throw new ArgumentError(`${path}: the legacy imatrix format needs the chunk size (tokens per chunk)`);
  const skipped: string[] = [];
  const names = sortedNames(m).filter((n) => {
    const e = m.entries.get(n)!;
    if (e.counts.every((c) => c === 0)) { skipped.push(n); return false; } // no data: llama.cpp skips it too
    return true;
  });
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [];
  const i32 = (v: number) => { const b = new Uint8Array(4); new DataView(b.buffer).setInt32(0, v, true); parts.push(b); };
  i32(names.length);
  for (const name of names) {
    const e = m.entries.get(name)!;
    const nb = enc.encode(name);
    i32(nb.length);
    parts.push(nb);
    const maxCount = Math.max(...e.counts);
    const ncall = Math.ceil(maxCount / m.chunkSize);
    i32(ncall);
    i32(e.sums.length);
    const nIn = e.sums.length / e.nMat;
    const vals = new Float32Array(e.sums.length);
    for (let i = 0; i < vals.length; i++) {
      let count = e.counts.length === 1 ? e.counts[0]! : e.counts[Math.floor(i / nIn)]!;
      let value = Math.fround(e.sums[i]!);
      if (count === 0) { value = 1; count = 1; } // partial data: 1, as llama.cpp stores it
      vals[i] = Math.fround(Math.fround(value / count) * ncall);
    }
    parts.push(new Uint8Array(vals.buffer));
  }
  i32(m.chunkCount);
  const ds = enc.encode(m.datasets[m.datasets.length - 1] ?? "");
  i32(ds.length);
  parts.push(ds);
  atomicWrite(path, Buffer.concat(parts));
  return { written: names.length, skipped };
}

function writeImatrixGguf(path: string, m: Imatrix): { written: number; skipped: string[] } {
  const tensors: GgufTensorSource[] = [];
  for (const name of sortedNames(m)) {
    const e = m.entries.get(name)!;
    const nIn = e.sums.length / e.nMat;
    const counts = new Float32Array(e.nMat);
    for (let i = 0; i < e.nMat; i++) counts[i] = e.counts.length === 1 ? e.counts[0]! : e.counts[i]!;
    tensors.push({ name: `${name}.in_sum2`, dims: [nIn, e.nMat], type: GgmlType.F32, data: new Uint8Array(Float32Array.from(e.sums).buffer) });
    tensors.push({ name: `${name}.counts`, dims: [1, e.nMat], type: GgmlType.F32, data: new Uint8Array(counts.buffer) });
  }
  writeGguf(path, {
    metadata: [
      ["general.type", gv.str("imatrix")],
      ["imatrix.datasets", gv.strs(m.datasets)],
      ["imatrix.chunk_count", gv.u32(m.chunkCount)],
      ["imatrix.chunk_size", gv.u32(m.chunkSize)],
    ],
    tensors,
  });
  return { written: m.entries.size, skipped: [] };
}

function atomicWrite(path: string, data: Uint8Array): void {
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, data);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

// ---- reading ----

/** Read either format (GGUF when the file starts with the GGUF magic). */
export function readImatrix(path: string): Imatrix {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (e) {
    throw new ArgumentError(`imatrix file ${path}: ${(e as Error).message}`);
  }
  if (buf.length >= 4 && buf.readUInt32LE(0) === GGUF_MAGIC) return readImatrixGguf(path);
  return readImatrixLegacy(path, buf);
}

function readImatrixLegacy(path: string, buf: Buffer): Imatrix {
  const file = basename(path);
  let p = 0;
  const need = (n: number, what: string) => {
    if (p + n > buf.length) throw new FormatError(file, what, `needs ${n} bytes at offset ${p}, the file has ${buf.length} (truncated, or not an imatrix file)`);
  };
  const i32 = (what: string) => { need(4, what); const v = buf.readInt32LE(p); p += 4; return v; };
  const n = i32("entry count");
  if (n < 1 || n > MAX_ENTRIES) throw new FormatError(file, "entry count", `expected 1..${MAX_ENTRIES}, got ${n} (not an imatrix file?)`);
  const entries = new Map<string, ImatrixEntry>();
  const dec = new TextDecoder("utf-8", { fatal: false });
  for (let i = 0; i < n; i++) {
    const len = i32(`entry ${i}: name length`);
    if (len < 1 || len > MAX_NAME_BYTES) throw new FormatError(file, `entry ${i}: name length`, `expected 1..${MAX_NAME_BYTES}, got ${len}`);
    need(len, `entry ${i}: name`);
    const name = dec.decode(buf.subarray(p, p + len));
    p += len;
    const ncall = i32(`entry "${name}": ncall`);
    const nval = i32(`entry "${name}": value count`);
    if (ncall < 0) throw new FormatError(file, `entry "${name}": ncall`, `expected >= 0, got ${ncall}`);
    if (nval < 1) throw new FormatError(file, `entry "${name}": value count`, `expected >= 1, got ${nval}`);
    need(nval * 4, `entry "${name}": ${nval} values`);
    const sums = new Float64Array(nval);
    for (let j = 0; j < nval; j++) sums[j] = buf.readFloatLE(p + 4 * j);
    p += nval * 4;
    if (entries.has(name)) throw new FormatError(file, `entry "${name}"`, "appears twice");
    // stored values are mean * ncall: counts = [ncall] gives the mean back (ncall 0: the values as they are)
    entries.set(name, { sums, counts: [ncall > 0 ? ncall : 1], nMat: 1 });
  }
  let chunkCount = 0;
  const datasets: string[] = [];
  if (p + 4 <= buf.length) chunkCount = i32("chunk count");
  if (p + 4 <= buf.length) {
    const len = i32("dataset name length");
    if (len < 0 || len > MAX_NAME_BYTES || p + len > buf.length) throw new FormatError(file, "dataset name", `length ${len} does not fit the file`);
    datasets.push(dec.decode(buf.subarray(p, p + len)));
    p += len;
  }
  return { entries, chunkCount, chunkSize: 0, datasets };
}

function readImatrixGguf(path: string): Imatrix {
  const file = basename(path);
  const r = new GgufReader(path);
  try {
    const md = r.metadata;
    const u32 = (key: string) => {
      const v = md.get(key)?.value;
      return typeof v === "number" ? v : typeof v === "bigint" ? Number(v) : 0;
    };
    const ds = md.get("imatrix.datasets")?.value;
    const datasets = ds !== undefined && isArray(ds) && ds.itemType === GgufType.STRING ? [...(ds.items as string[])] : [];
    const parts = new Map<string, { sum2?: Float32Array; counts?: Float32Array; nIn?: number; nMat?: number }>();
    const f32 = (name: string): Float32Array => {
      const t = r.tensor(name)!;
      if (t.type !== GgmlType.F32) throw new FormatError(file, `tensor "${name}"`, `expected F32, got type ${t.type}`);
      const b = r.readTensorBytes(t);
      return new Float32Array(b.buffer, b.byteOffset, b.length / 4);
    };
    for (const t of r.tensors) {
      const m = /^(.+)\.(in_sum2|counts|in_sum)$/.exec(t.name);
      if (!m) continue; // other tensors are not ours to read
      const p = parts.get(m[1]!) ?? {};
      parts.set(m[1]!, p);
      if (m[2] === "in_sum2") {
        p.sum2 = f32(t.name);
        p.nIn = t.dims[0]!;
        p.nMat = t.dims.slice(1).reduce((a, b) => a * b, 1);
      } else if (m[2] === "counts") p.counts = f32(t.name);
    }
    const entries = new Map<string, ImatrixEntry>();
    for (const [name, p] of parts) {
      if (!p.sum2 || !p.counts) throw new FormatError(file, `entry "${name}"`, `has ${p.sum2 ? "no .counts" : "no .in_sum2"} tensor`);
      if (p.counts.length !== p.nMat && p.counts.length !== 1) {
        throw new FormatError(file, `entry "${name}"`, `${p.counts.length} counts for ${p.nMat} matrices`);
      }
      entries.set(name, { sums: Float64Array.from(p.sum2), counts: [...p.counts].map((c) => Math.round(c)), nMat: p.nMat! });
    }
    if (!entries.size) throw new FormatError(file, "tensors", "no <name>.in_sum2 / <name>.counts pairs (not an imatrix file?)");
    return { entries, chunkCount: u32("imatrix.chunk_count"), chunkSize: u32("imatrix.chunk_size"), datasets };
  } finally {
    r.close();
  }
}
