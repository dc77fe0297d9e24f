/**
 * safetensors reader. The header is read and checked against the file size before anything else
 * is allocated (its length, the JSON, every dtype, shape and byte range, no overlaps or holes);
 * tensor data is read lazily, one tensor (or byte range) at a time. Every problem is a
 * FormatError naming the file and the tensor.
 */
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { basename } from "node:path";
import { FormatError, UnsupportedError } from "../../errors.js";
import { DTYPE_SIZE, MAX_HEADER_BYTES, isDtype, numel, toF32, type StTensorInfo } from "./format.js";

export interface StHeader {
  /** "__metadata__" (string -> string), empty when absent */
  metadata: Record<string, string>;
  /** tensors in header order */
  tensors: StTensorInfo[];
  /** absolute file offset of the data section (8 + header length) */
  dataOffset: number;
  fileSize: number;
}

function readExact(fd: number, buf: Uint8Array, pos: number, file: string, field: string): void {
  let done = 0;
  while (done < buf.length) {
    const r = readSync(fd, buf, done, Math.min(buf.length - done, 1 << 30), pos + done);
    if (r === 0) throw new FormatError(file, field, `unexpected end of file at offset ${pos + done}: file is truncated`);
    done += r;
  }
}

/** Parse and validate a header given the file's size; `read(pos, n)` supplies bytes. */
export function parseHeader(file: string, fileSize: number, read: (pos: number, n: number) => Uint8Array): StHeader {
  const fail = (field: string, msg: string): never => { throw new FormatError(file, field, msg); };
  if (fileSize < 8) fail("header length", `file is ${fileSize} bytes, too short for the 8-byte header length: not a safetensors file, or truncated`);
  const lenBytes = read(0, 8);
  const n64 = new DataView(lenBytes.buffer, lenBytes.byteOffset, 8).getBigUint64(0, true);
  if (n64 > BigInt(fileSize - 8)) {
    fail("header length", `header length is ${n64} bytes but only ${fileSize - 8} bytes follow: file is truncated or not safetensors`);
  }
  const n = Number(n64);
  if (n > MAX_HEADER_BYTES) fail("header length", `header length ${n} is above the ${MAX_HEADER_BYTES}-byte limit`);
  if (n < 2) fail("header", `header length is ${n}; expected a JSON object`);
  const text = Buffer.from(read(8, n)).toString("utf8");
  if (text[0] !== "{") fail("header", `expected a JSON object starting with "{", found ${JSON.stringify(text.slice(0, 16))}`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    return fail("header", `invalid JSON: ${(e as Error).message}`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) return fail("header", "not a JSON object");
  const dataOffset = 8 + n;
  const dataSize = fileSize - dataOffset;
  const metadata: Record<string, string> = {};
  const tensors: StTensorInfo[] = [];
  for (const [name, v] of Object.entries(json as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (typeof v !== "object" || v === null || Array.isArray(v)) fail("__metadata__", "expected an object of strings");
      for (const [k, s] of Object.entries(v as Record<string, unknown>)) {
        if (typeof s !== "string") fail(`__metadata__.${k}`, `expected a string, found ${JSON.stringify(s)}`);
        metadata[k] = s as string;
      }
      continue;
    }
    const field = `tensor "${name}"`;
    if (typeof v !== "object" || v === null || Array.isArray(v)) return fail(field, "expected an object with dtype, shape and data_offsets");
    const t = v as Record<string, unknown>;
    if (typeof t.dtype !== "string") fail(field, "dtype is missing");
    if (!isDtype(t.dtype)) throw new UnsupportedError(`${file}: ${field}: dtype ${JSON.stringify(t.dtype)} is not supported (F64, F32, F16, BF16, I64..I8, U64..U8, BOOL, F8_E4M3, F8_E5M2)`);
    const shape = t.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      return fail(field, `shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
    }
    const offs = t.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      return fail(field, `data_offsets ${JSON.stringify(offs)} is not [begin, end]`);
    }
    const [begin, end] = offs as [number, number];
    if (end < begin) fail(field, `data_offsets [${begin}, ${end}]: end is before begin`);
    const count = numel(shape as number[]);
    const want = count * DTYPE_SIZE[t.dtype];
    if (!Number.isSafeInteger(want)) fail(field, `shape [${shape.join(", ")}] is too large`);
    if (end - begin !== want) {
      fail(field, `${t.dtype} [${shape.join(", ")}] needs ${want} bytes but data_offsets [${begin}, ${end}] hold ${end - begin}`);
    }
    if (end > dataSize) {
      fail(field, `data [${begin}, ${end}) runs past the end of the data (${dataSize} bytes): file is truncated`);
    }
    tensors.push({ name, dtype: t.dtype, shape: shape as number[], begin, end });
  }
  // the data must be covered exactly: no overlaps, no holes
  const byStart = [...tensors].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let pos = 0;
  for (const t of byStart) {
    if (t.begin < pos) fail(`tensor "${t.name}"`, `data [${t.begin}, ${t.end}) overlaps the previous tensor (which ends at ${pos})`);
    if (t.begin > pos) fail(`tensor "${t.name}"`, `bytes [${pos}, ${t.begin}) before this tensor belong to no tensor`);
    pos = t.end;
  }
  if (pos !== dataSize) fail("data", `${dataSize - pos} bytes after the last tensor belong to no tensor`);
  return { metadata, tensors, dataOffset, fileSize };
}

/** An open safetensors file: header plus lazy tensor reads. Call close() when done. */
export class SafetensorsFile {
  readonly path: string;
  readonly name: string;
  readonly header: StHeader;
  private fd: number;
  private byName: Map<string, StTensorInfo>;

  constructor(path: string) {
    this.path = path;
    this.name = basename(path);
    let fd: number;
    try {
      fd = openSync(path, "r");
    } catch (e) {
      throw new FormatError(this.name, "file", `cannot open: ${(e as Error).message}`);
    }
    this.fd = fd;
    try {
      const size = fstatSync(fd).size;
      this.header = parseHeader(this.name, size, (pos, n) => {
        const b = new Uint8Array(n);
        readExact(fd, b, pos, this.name, pos === 0 ? "header length" : "header");
        return b;
      });
    } catch (e) {
      closeSync(fd);
      this.fd = -1;
      throw e;
    }
    this.byName = new Map(this.header.tensors.map((t) => [t.name, t]));
  }

  get tensors(): StTensorInfo[] { return this.header.tensors; }
  get metadata(): Record<string, string> { return this.header.metadata; }

  tensor(name: string): StTensorInfo | undefined {
    return this.byName.get(name);
  }

  private need(name: string): StTensorInfo {
    const t = this.byName.get(name);
    if (!t) throw new FormatError(this.name, `tensor "${name}"`, "missing");
    return t;
  }

  /** Raw little-endian bytes of a tensor, or of [offset, offset + length) within it. */
  readBytes(name: string, offset = 0, length?: number, into?: Uint8Array): Uint8Array {
    if (this.fd < 0) throw new Error(`${this.name} is closed`);
    const t = this.need(name);
    const size = t.end - t.begin;
    const len = length ?? size - offset;
    if (offset < 0 || len < 0 || offset + len > size) throw new RangeError(`range [${offset}, ${offset + len}) outside tensor ${name} (${size} bytes)`);
    const out = into ?? new Uint8Array(len);
    readExact(this.fd, out.subarray(0, len), this.header.dataOffset + t.begin + offset, this.name, `tensor "${name}"`);
    return out;
  }

  /** A float tensor (F32, F16, BF16 or F64) as float32. */
  readF32(name: string, out?: Float32Array, outOff = 0): Float32Array {
    const t = this.need(name);
    const n = numel(t.shape);
    if (t.dtype === "F32") {
      // little-endian F32 straight into the float array, no intermediate copy
      const dst = out ?? new Float32Array(n);
      this.readBytes(name, 0, n * 4, new Uint8Array(dst.buffer, dst.byteOffset + outOff * 4, n * 4));
      return dst;
    }
    return toF32(t.dtype, this.readBytes(name), n, `${this.name}: tensor "${name}"`, out ?? new Float32Array(n), outOff);
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}
