/**
 * A minimal protobuf wire-format reader: just enough to walk a SentencePiece ModelProto.
 * Every error is a FormatError naming the file and the field being read.
 */
import { FormatError } from "../errors.js";

export const WireType = { VARINT: 0, I64: 1, LEN: 2, SGROUP: 3, EGROUP: 4, I32: 5 } as const;

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

export class ProtoReader {
  private pos: number;
  private readonly view: DataView;

  constructor(
    private readonly bytes: Uint8Array,
    readonly fileName: string,
    private readonly start = 0,
    readonly end = bytes.length,
  ) {
    this.pos = start;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get offset(): number {
    return this.pos;
  }

  done(): boolean {
    return this.pos >= this.end;
  }

  fail(field: string, message: string): never {
    throw new FormatError(this.fileName, field, `${message} (at byte ${this.pos})`);
  }

  /** Reads a varint (up to 10 bytes) and returns its low 32 bits (unsigned) plus whether higher bits were set. */
  private varint(field: string): { lo: number; big: boolean } {
    let lo = 0;
    let big = false;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) this.fail(field, "truncated varint");
      const b = this.bytes[this.pos++]!;
      const v = b & 0x7f;
      if (i < 4) lo |= v << (7 * i);
      else if (i === 4) {
        lo |= (v & 0x0f) << 28;
        if (v >> 4) big = true;
      } else if (v) big = true;
      if ((b & 0x80) === 0) return { lo: lo >>> 0, big };
    }
    this.fail(field, "varint longer than 10 bytes");
  }

  /** Unsigned varint that must fit in 32 bits (lengths, enums, bools). */
  uint32(field: string): number {
    const { lo, big } = this.varint(field);
    if (big) this.fail(field, "varint does not fit in 32 bits");
    return lo;
  }

  /** int32 field: negative values are encoded as 10-byte sign-extended varints; keep the low 32 bits. */
  int32(field: string): number {
    return this.varint(field).lo | 0;
  }

  bool(field: string): boolean {
    return this.varint(field).lo !== 0;
  }

  float(field: string): number {
    if (this.pos + 4 > this.end) this.fail(field, "truncated float");
    const v = this.view.getFloat32(this.pos, true);
    this.pos += 4;
    return v;
  }

  /** Returns [tag field number, wire type]. */
  tag(field: string): [number, number] {
    const t = this.uint32(field);
    const num = t >>> 3;
    const wt = t & 7;
    if (num === 0) this.fail(field, "field number 0");
    return [num, wt];
  }

  /** A length-delimited payload as a sub-reader. */
  sub(field: string): ProtoReader {
    const len = this.uint32(field);
    if (len > this.end - this.pos) this.fail(field, `length ${len} runs past the end of the message`);
    const r = new ProtoReader(this.bytes, this.fileName, this.pos, this.pos + len);
    this.pos += len;
    return r;
  }

  bytesField(field: string): Uint8Array {
    const len = this.uint32(field);
    if (len > this.end - this.pos) this.fail(field, `length ${len} runs past the end of the message`);
    const out = this.bytes.subarray(this.pos, this.pos + len);
    this.pos += len;
    return out;
  }

  string(field: string): string {
    const b = this.bytesField(field);
    try {
      return utf8.decode(b);
    } catch {
      this.fail(field, "invalid UTF-8");
    }
  }

  /** Checks the wire type of a known field. */
  expect(field: string, wt: number, want: number): void {
    if (wt !== want) this.fail(field, `wire type ${wt}, expected ${want}`);
  }

  /** Skips a field of an unknown number. */
  skip(field: string, wt: number): void {
    switch (wt) {
      case WireType.VARINT:
        this.varint(field);
        return;
      case WireType.I64:
        if (this.pos + 8 > this.end) this.fail(field, "truncated fixed64");
        this.pos += 8;
        return;
      case WireType.LEN:
        this.sub(field);
        return;
      case WireType.I32:
        if (this.pos + 4 > this.end) this.fail(field, "truncated fixed32");
        this.pos += 4;
        return;
      default:
        this.fail(field, `unsupported wire type ${wt}`);
    }
  }
}
