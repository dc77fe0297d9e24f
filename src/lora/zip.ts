/**
 * A minimal ZIP reader (PKWARE APPNOTE): the end of central directory record (and its ZIP64
 * form), central directory entries, local headers; stored and deflated entries; CRC-32 checked
 * for whole-entry reads. Entries are read lazily from the file. Enough for PyTorch's checkpoint
 * archives (torch.save since 1.6), which store entries uncompressed.
 */
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { basename } from "node:path";
import * as zlib from "node:zlib";
import { FormatError, UnsupportedError } from "../errors.js";

export interface ZipEntry {
  name: string;
  method: number;
  compSize: number;
  size: number;
  crc: number;
  /** absolute offset of the entry's data (after its local header) */
  dataOffset: number;
}

const EOCD = 0x06054b50, EOCD64 = 0x06064b50, EOCD64_LOC = 0x07064b50, CDH = 0x02014b50, LFH = 0x04034b50;

export class ZipFile {
  readonly name: string;
  readonly entries = new Map<string, ZipEntry>();
  private fd: number;
  readonly size: number;

  constructor(readonly path: string) {
    this.name = basename(path);
    try {
      this.fd = openSync(path, "r");
    } catch (e) {
      throw new FormatError(this.name, "file", `cannot open: ${(e as Error).message}`);
    }
    this.size = fstatSync(this.fd).size;
    try {
      this.readDirectory();
    } catch (e) {
      this.close();
      throw e;
    }
  }

  private fail(field: string, msg: string): never {
    throw new FormatError(this.name, field, msg);
  }

  private read(pos: number, n: number, field: string): Buffer {
    if (pos < 0 || n < 0 || pos + n > this.size) this.fail(field, `needs bytes [${pos}, ${pos + n}) but the file has ${this.size}: truncated or not a ZIP archive`);
    const b = Buffer.alloc(n);
    let done = 0;
    while (done < n) {
      const r = readSync(this.fd, b, done, Math.min(n - done, 1 << 30), pos + done);
      if (r === 0) this.fail(field, "unexpected end of file");
      done += r;
    }
    return b;
  }

  private readDirectory(): void {
    const tailLen = Math.min(this.size, 22 + 65535);
    if (this.size < 22) this.fail("end of central directory", `file is ${this.size} bytes, too short for a ZIP archive`);
    const tail = this.read(this.size - tailLen, tailLen, "end of central directory");
    let at = -1;
    for (let i = tailLen - 22; i >= 0; i--) {
      if (tail.readUInt32LE(i) === EOCD) { at = i; break; }
    }
    if (at < 0) this.fail("end of central directory", "not found: not a ZIP archive, or truncated");
    const eocdPos = this.size - tailLen + at;
    let nEntries = tail.readUInt16LE(at + 10);
    let cdSize = tail.readUInt32LE(at + 12);
    let cdOff = tail.readUInt32LE(at + 16);
    if (nEntries === 0xffff || cdSize === 0xffffffff || cdOff === 0xffffffff) {
      const loc = this.read(eocdPos - 20, 20, "zip64 locator");
      if (loc.readUInt32LE(0) !== EOCD64_LOC) this.fail("zip64 locator", "missing");
      const e64Pos = Number(loc.readBigUInt64LE(8));
      const e64 = this.read(e64Pos, 56, "zip64 end of central directory");
      if (e64.readUInt32LE(0) !== EOCD64) this.fail("zip64 end of central directory", "bad signature");
      nEntries = Number(e64.readBigUInt64LE(32));
      cdSize = Number(e64.readBigUInt64LE(40));
      cdOff = Number(e64.readBigUInt64LE(48));
    }
    const cd = this.read(cdOff, cdSize, "central directory");
    let p = 0;
    for (let i = 0; i < nEntries; i++) {
      const field = `central directory entry ${i}`;
      if (p + 46 > cd.length || cd.readUInt32LE(p) !== CDH) this.fail(field, "bad signature or truncated");
      const flags = cd.readUInt16LE(p + 8);
      const method = cd.readUInt16LE(p + 10);
      const crc = cd.readUInt32LE(p + 16);
      let compSize = cd.readUInt32LE(p + 20);
      let size = cd.readUInt32LE(p + 24);
      const nameLen = cd.readUInt16LE(p + 28), extraLen = cd.readUInt16LE(p + 30), commentLen = cd.readUInt16LE(p + 32);
      let localOff = cd.readUInt32LE(p + 42);
      if (p + 46 + nameLen + extraLen + commentLen > cd.length) this.fail(field, "truncated");
      const name = cd.toString("utf8", p + 46, p + 46 + nameLen);
      // ZIP64 extended information: the 8-byte values of the fields that are 0xFFFFFFFF, in order
      let e = p + 46 + nameLen;
      const eEnd = e + extraLen;
      while (e + 4 <= eEnd) {
        const id = cd.readUInt16LE(e), len = cd.readUInt16LE(e + 2);
        if (id === 0x0001) {
          let q = e + 4;
          if (size === 0xffffffff) { size = Number(cd.readBigUInt64LE(q)); q += 8; }
          if (compSize === 0xffffffff) { compSize = Number(cd.readBigUInt64LE(q)); q += 8; }
          if (localOff === 0xffffffff) { localOff = Number(cd.readBigUInt64LE(q)); q += 8; }
        }
        e += 4 + len;
      }
      p += 46 + nameLen + extraLen + commentLen;
      if (flags & 1) throw new UnsupportedError(`${this.name}: entry "${name}" is encrypted`);
      const lh = this.read(localOff, 30, `entry "${name}"`);
      if (lh.readUInt32LE(0) !== LFH) this.fail(`entry "${name}"`, "bad local header signature");
      const dataOffset = localOff + 30 + lh.readUInt16LE(26) + lh.readUInt16LE(28);
      if (dataOffset + compSize > this.size) this.fail(`entry "${name}"`, `data [${dataOffset}, ${dataOffset + compSize}) runs past the end of the file (${this.size} bytes): truncated`);
      this.entries.set(name, { name, method, compSize, size, crc, dataOffset });
    }
  }

  /** The whole (uncompressed) content of an entry, CRC-checked. */
  readEntry(name: string): Uint8Array {
    const e = this.entries.get(name);
    if (!e) this.fail(`entry "${name}"`, "missing");
    const raw = this.read(e.dataOffset, e.compSize, `entry "${name}"`);
    let data: Uint8Array;
    if (e.method === 0) data = raw;
    else if (e.method === 8) {
      try {
        data = zlib.inflateRawSync(raw);
      } catch (err) {
        this.fail(`entry "${name}"`, `cannot inflate: ${(err as Error).message}`);
      }
    } else throw new UnsupportedError(`${this.name}: entry "${name}" uses compression method ${e.method} (only stored and deflate)`);
    if (data.length !== e.size) this.fail(`entry "${name}"`, `${data.length} bytes, the directory says ${e.size}`);
    const crc32 = (zlib as unknown as { crc32?: (d: Uint8Array) => number }).crc32;
    if (crc32 && (crc32(data) >>> 0) !== e.crc) this.fail(`entry "${name}"`, "CRC-32 mismatch: the file is corrupt");
    return data;
  }

  /** Bytes [offset, offset + length) of an entry's content (stored entries are read in place). */
  readRange(name: string, offset: number, length: number): Uint8Array {
    const e = this.entries.get(name);
    if (!e) this.fail(`entry "${name}"`, "missing");
    if (offset < 0 || length < 0 || offset + length > e.size) this.fail(`entry "${name}"`, `range [${offset}, ${offset + length}) outside its ${e.size} bytes`);
    if (e.method === 0) return this.read(e.dataOffset + offset, length, `entry "${name}"`);
    return this.readEntry(name).subarray(offset, offset + length);
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}
