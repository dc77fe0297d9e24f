/**
 * GGUF v2/v3 reader. Reads the header, metadata and tensor infos; tensor data is read lazily,
 * one tensor (or byte range) at a time. Every count, length and offset is checked against the
 * file size before anything is allocated, so a hostile file gives a FormatError, never a crash,
 * hang or out-of-memory.
 */
import { closeSync, fstatSync, openSync, read, readSync } from "node:fs";
import { basename } from "node:path";
import { FormatError, UnsupportedError } from "../../errors.js";
import { blockFormat, typeName, type GgmlType } from "../../quant/format.js";
import {
  GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GgufType,
  type GgufArray, type GgufEntry, type GgufTensorInfo, type GgufValue,
} from "./types.js";

const MAX_DIMS = 4;
const MAX_ARRAY_DEPTH = 8;
const CHUNK = 1 << 20;

/** Fixed byte width of scalar GGUF types; strings/arrays are variable. */
export function scalarSize(t: GgufType): number {
  switch (t) {
    case GgufType.UINT8: case GgufType.INT8: case GgufType.BOOL: return 1;
    case GgufType.UINT16: case GgufType.INT16: return 2;
    case GgufType.UINT32: case GgufType.INT32: case GgufType.FLOAT32: return 4;
    case GgufType.UINT64: case GgufType.INT64: case GgufType.FLOAT64: return 8;
    default: return 0;
  }
}

/** A forward-only cursor over a file descriptor that reads the header region in chunks. */
class Cursor {
  private buf = Buffer.alloc(0);
  private bufStart = 0; // file offset of buf[0]
  pos = 0;
  field = "header";
  constructor(private fd: number, readonly fileSize: number, readonly name: string) {}

  fail(msg: string): never {
    throw new FormatError(this.name, this.field, msg);
  }

  private ensure(n: number): void {
    if (this.pos + n > this.fileSize) {
      this.fail(`file is truncated: need ${n} bytes at offset ${this.pos}, file has ${this.fileSize} bytes`);
    }
    const end = this.pos + n;
    if (this.pos >= this.bufStart && end <= this.bufStart + this.buf.length) return;
    const want = Math.min(this.fileSize - this.pos, Math.max(n, CHUNK));
    const b = Buffer.allocUnsafe(want);
    let got = 0;
    while (got < want) {
      const r = readSync(this.fd, b, got, want - got, this.pos + got);
      if (r === 0) this.fail(`unexpected end of file at offset ${this.pos + got}`);
      got += r;
    }
    this.buf = b;
    this.bufStart = this.pos;
  }

  private at(n: number): number {
    this.ensure(n);
    const o = this.pos - this.bufStart;
    this.pos += n;
    return o;
  }

  u8(): number { const o = this.at(1); return this.buf.readUInt8(o); }
  i8(): number { const o = this.at(1); return this.buf.readInt8(o); }
  u16(): number { const o = this.at(2); return this.buf.readUInt16LE(o); }
  i16(): number { const o = this.at(2); return this.buf.readInt16LE(o); }
  u32(): number { const o = this.at(4); return this.buf.readUInt32LE(o); }
  i32(): number { const o = this.at(4); return this.buf.readInt32LE(o); }
  f32(): number { const o = this.at(4); return this.buf.readFloatLE(o); }
  f64(): number { const o = this.at(8); return this.buf.readDoubleLE(o); }
  u64(): bigint { const o = this.at(8); return this.buf.readBigUInt64LE(o); }
  i64(): bigint { const o = this.at(8); return this.buf.readBigInt64LE(o); }

  /** A u64 that must fit a safe integer and be <= limit (so it can size an allocation). */
  count(what: string, limit: number): number {
    const v = this.u64();
    if (v > BigInt(limit)) {
      this.fail(`${what} is ${v}, more than the ${Math.max(0, limit)} the remaining ${this.remaining()} bytes can hold: file is corrupt or truncated`);
    }
    return Number(v);
  }

  remaining(): number {
    return this.fileSize - this.pos;
  }

  str(): string {
    const n = this.count("string length", this.remaining() - 8);
    if (n === 0) return "";
    const o = this.at(n);
    return this.buf.toString("utf8", o, o + n);
  }

  /** Raw bytes copy (for typed arrays). */
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    let done = 0;
    while (done < n) {
      const step = Math.min(n - done, CHUNK * 16);
      const o = this.at(step);
      out.set(this.buf.subarray(o, o + step), done);
      done += step;
    }
    return out;
  }
}

export interface GgufFile {
  path: string;
  version: number;
  fileSize: number;
  alignment: number;
  /** absolute file offset of the tensor data section */
  dataOffset: number;
  metadata: Map<string, GgufEntry>;
  tensors: GgufTensorInfo[];
}

function typedArrayFor(t: GgufType, bytes: Uint8Array, n: number): GgufArray["items"] {
  const b = bytes.buffer;
  switch (t) {
    case GgufType.UINT8: return new Uint8Array(b, 0, n);
    case GgufType.INT8: return new Int8Array(b, 0, n);
    case GgufType.UINT16: return new Uint16Array(b, 0, n);
    case GgufType.INT16: return new Int16Array(b, 0, n);
    case GgufType.UINT32: return new Uint32Array(b, 0, n);
    case GgufType.INT32: return new Int32Array(b, 0, n);
    case GgufType.FLOAT32: return new Float32Array(b, 0, n);
    case GgufType.FLOAT64: return new Float64Array(b, 0, n);
    case GgufType.UINT64: return new BigUint64Array(b, 0, n);
    case GgufType.INT64: return new BigInt64Array(b, 0, n);
    default: throw new Error("unreachable");
  }
}

function readValue(c: Cursor, t: number, depth: number): GgufValue {
  switch (t) {
    case GgufType.UINT8: return c.u8();
    case GgufType.INT8: return c.i8();
    case GgufType.UINT16: return c.u16();
    case GgufType.INT16: return c.i16();
    case GgufType.UINT32: return c.u32();
    case GgufType.INT32: return c.i32();
    case GgufType.FLOAT32: return c.f32();
    case GgufType.FLOAT64: return c.f64();
    case GgufType.UINT64: return c.u64();
    case GgufType.INT64: return c.i64();
    case GgufType.BOOL: {
      const b = c.u8();
      if (b > 1) c.fail(`bool value is ${b}, expected 0 or 1`);
      return b === 1;
    }
    case GgufType.STRING: return c.str();
    case GgufType.ARRAY: {
      if (depth >= MAX_ARRAY_DEPTH) c.fail(`arrays nested deeper than ${MAX_ARRAY_DEPTH}`);
      const itemType = c.u32();
      if (itemType > GgufType.FLOAT64) c.fail(`array item type ${itemType} is not a GGUF type (0..12)`);
      const size = scalarSize(itemType);
      // strings take at least 8 bytes (their length), arrays at least 12 (type + count)
      const minItem = size || (itemType === GgufType.STRING ? 8 : 12);
      const n = c.count("array length", Math.floor((c.remaining() - 8) / minItem));
      if (size > 0 && itemType !== GgufType.BOOL) {
        return { itemType, items: typedArrayFor(itemType, c.bytes(n * size), n) };
      }
      const items: GgufValue[] = new Array(n);
      for (let i = 0; i < n; i++) items[i] = readValue(c, itemType, depth + 1);
      return { itemType, items: items as GgufArray["items"] };
    }
    default:
      return c.fail(`value type ${t} is not a GGUF type (0..12)`);
  }
}

/** Read the header, metadata and tensor infos of a GGUF file and validate them against its size. */
export function readGgufHeader(path: string): GgufFile {
  const name = basename(path);
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (e) {
    throw new FormatError(name, "file", `cannot open: ${(e as Error).message}`);
  }
  try {
    const fileSize = fstatSync(fd).size;
    const c = new Cursor(fd, fileSize, name);
    c.field = "magic";
    if (fileSize < 4) c.fail(`file is ${fileSize} bytes, too short to be GGUF`);
    const magic = c.u32();
    if (magic !== GGUF_MAGIC) {
      const got = Buffer.alloc(4);
      got.writeUInt32LE(magic);
      c.fail(`expected "GGUF", found ${JSON.stringify(got.toString("latin1"))} (0x${magic.toString(16).padStart(8, "0")}): not a GGUF file`);
    }
    c.field = "version";
    const version = c.u32();
    if (version === 1) throw new UnsupportedError(`${name}: GGUF version 1 is not supported (convert it with a newer llama.cpp); expected 2 or 3`);
    if ((version & 0xffff) === 0 && version !== 0) c.fail(`version 0x${version.toString(16)} looks big-endian; only little-endian GGUF is supported`);
    if (version !== 2 && version !== 3) c.fail(`expected 2 or 3, found ${version}`);
    c.field = "tensor_count";
    // each tensor info takes at least 8 (name len) + 4 (n_dims) + 8 (one dim) + 4 (type) + 8 (offset) bytes
    const nTensors = c.count("tensor_count", Math.floor((fileSize - c.pos) / 32));
    c.field = "metadata_kv_count";
    const nKv = c.count("metadata_kv_count", Math.floor((fileSize - c.pos) / 13));

    const metadata = new Map<string, GgufEntry>();
    for (let i = 0; i < nKv; i++) {
      c.field = `metadata[${i}].key`;
      const key = c.str();
      c.field = `metadata "${key}"`;
      if (metadata.has(key)) c.fail("duplicate key");
      const type = c.u32();
      const value = readValue(c, type, 0);
      metadata.set(key, { type, value });
    }

    let alignment = GGUF_DEFAULT_ALIGNMENT;
    const al = metadata.get("general.alignment");
    if (al) {
      c.field = 'metadata "general.alignment"';
      if (al.type !== GgufType.UINT32) c.fail(`expected a uint32, found type ${GgufType[al.type] ?? al.type}`);
      const a = al.value as number;
      if (a === 0 || (a & (a - 1)) !== 0) c.fail(`expected a power of two, found ${a}`);
      alignment = a;
    }

    const tensors: GgufTensorInfo[] = [];
    const seen = new Set<string>();
    for (let i = 0; i < nTensors; i++) {
      c.field = `tensor_info[${i}].name`;
      const tname = c.str();
      c.field = `tensor "${tname}"`;
      if (seen.has(tname)) c.fail("duplicate tensor name");
      seen.add(tname);
      const nDims = c.u32();
      if (nDims < 1 || nDims > MAX_DIMS) c.fail(`n_dims is ${nDims}, expected 1..${MAX_DIMS}`);
      const dims: number[] = [];
      let nElements = 1;
      for (let d = 0; d < nDims; d++) {
        const v = c.u64();
        if (v < 1n || v > BigInt(Number.MAX_SAFE_INTEGER)) c.fail(`dimension ${d} is ${v}, expected a positive size`);
        dims.push(Number(v));
        nElements *= Number(v);
        if (nElements > Number.MAX_SAFE_INTEGER) c.fail("element count overflows");
      }
      const type = c.u32() as GgmlType;
      const fmt = blockFormat(type);
      if (!fmt) throw new UnsupportedError(`${name}: tensor "${tname}": unknown tensor type ${type} (${typeName(type)}); this file needs a newer reader`);
      if (dims[0]! % fmt.blockSize !== 0) c.fail(`row length ${dims[0]} is not a multiple of the ${fmt.name} block size ${fmt.blockSize}`);
      const offset = c.u64();
      if (offset > BigInt(fileSize)) c.fail(`data offset ${offset} is past the end of the file (${fileSize} bytes): file is truncated or corrupt`);
      if (Number(offset) % alignment !== 0) c.fail(`data offset ${offset} is not a multiple of the alignment ${alignment}`);
      const nBytes = (nElements / fmt.blockSize) * fmt.typeSize;
      tensors.push({ name: tname, dims, type, offset: Number(offset), nBytes, nElements });
    }
    const dataOffset = Math.ceil(c.pos / alignment) * alignment;
    const dataSize = fileSize - dataOffset;
    for (const t of tensors) {
      if (t.offset + t.nBytes > dataSize) {
        throw new FormatError(name, `tensor "${t.name}"`,
          `data [${t.offset}, ${t.offset + t.nBytes}) runs past the end of the data section (${Math.max(0, dataSize)} bytes): file is truncated`);
      }
    }
    return { path, version, fileSize, alignment, dataOffset, metadata, tensors };
  } finally {
    closeSync(fd);
  }
}

/**
 * An open GGUF file: metadata plus lazy tensor access. Call close() when done.
 */
export class GgufReader {
  readonly info: GgufFile;
  private fd: number;
  private byName: Map<string, GgufTensorInfo>;

  constructor(path: string) {
    this.info = readGgufHeader(path);
    this.fd = openSync(path, "r");
    this.byName = new Map(this.info.tensors.map((t) => [t.name, t]));
  }

  get metadata(): Map<string, GgufEntry> { return this.info.metadata; }
  get tensors(): GgufTensorInfo[] { return this.info.tensors; }
  get path(): string { return this.info.path; }

  tensor(name: string): GgufTensorInfo | undefined {
    return this.byName.get(name);
  }

  private warming = 0;
  private warmBuf?: Uint8Array;

  /**
   * Ask the OS to bring a tensor's byte range into its page cache without waiting: a background
   * read (libuv's thread pool) into a throwaway buffer, so that a later readTensorBytes of the same
   * range is served from memory. At most `maxInFlight` such reads run at once; returns whether
   * this one was started.
   */
  warm(t: GgufTensorInfo, offset: number, length: number, maxInFlight = 4): boolean {
    if (this.fd < 0 || this.warming >= maxInFlight || offset < 0 || offset + length > t.nBytes) return false;
    this.warmBuf ??= new Uint8Array(1 << 20);
    const buf = this.warmBuf;
    const fd = this.fd;
    let pos = this.info.dataOffset + t.offset + offset;
    let left = length;
    this.warming++;
    const step = (): void => {
      if (left <= 0 || this.fd !== fd) { this.warming--; return; }
      const n = Math.min(left, buf.length);
      read(fd, buf, 0, n, pos, (err, got) => {
        if (err || got === 0) { this.warming--; return; }
        pos += got;
        left -= got;
        step();
      });
    };
    step();
    return true;
  }

  /** Read `length` bytes at `offset` within a tensor's data into a new (or given) buffer. */
  readTensorBytes(t: GgufTensorInfo, offset = 0, length = t.nBytes - offset, into?: Uint8Array): Uint8Array {
    if (offset < 0 || length < 0 || offset + length > t.nBytes) {
      throw new RangeError(`range [${offset}, ${offset + length}) outside tensor ${t.name} (${t.nBytes} bytes)`);
    }
    const out = into ?? new Uint8Array(length);
    let pos = this.info.dataOffset + t.offset + offset;
    let done = 0;
    while (done < length) {
      const r = readSync(this.fd, out, done, Math.min(length - done, 1 << 30), pos);
      if (r === 0) throw new FormatError(basename(this.info.path), `tensor "${t.name}"`, "file shrank while reading");
      done += r;
      pos += r;
    }
    return out;
  }

  readTensor(name: string): Uint8Array {
    const t = this.byName.get(name);
    if (!t) throw new FormatError(basename(this.info.path), `tensor "${name}"`, "missing");
    return this.readTensorBytes(t);
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}

export function metaValue(md: Map<string, GgufEntry>, key: string): GgufValue | undefined {
  return md.get(key)?.value;
}
