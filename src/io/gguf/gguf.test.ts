import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync, existsSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GgufReader, readGgufHeader } from "./reader.js";
import { gv, writeGguf } from "./writer.js";
import { GgufType, type GgufEntry } from "./types.js";
import { FormatError, UnsupportedError } from "../../errors.js";
import { GgmlType } from "../../quant/format.js";
import { haveReference, refPath } from "../../test-util/paths.js";

const dir = mkdtempSync(join(tmpdir(), "cmx-gguf-"));
const MODELS = ["A-F32", "A-Q8_0", "A-Q4_0", "B-Q4_K_M"];

function roundTrip(src: string, dst: string): void {
  const r = new GgufReader(src);
  try {
    writeGguf(dst, {
      version: r.info.version as 2 | 3,
      metadata: r.metadata,
      tensors: r.tensors.map((t) => ({ name: t.name, dims: t.dims, type: t.type, data: () => r.readTensorBytes(t) })),
    });
  } finally {
    r.close();
  }
}

test("reference GGUF files round-trip byte for byte", { skip: !haveReference() }, () => {
  for (const m of MODELS) {
    const src = refPath("models", `${m}.gguf`);
    const dst = join(dir, `${m}.gguf`);
    roundTrip(src, dst);
    assert.ok(readFileSync(src).equals(readFileSync(dst)), `${m} differs after round trip`);
  }
});

function allTypesMetadata(): Map<string, GgufEntry> {
  return new Map<string, GgufEntry>([
    ["general.architecture", gv.str("llama")],
    ["u8", { type: GgufType.UINT8, value: 200 }],
    ["i8", { type: GgufType.INT8, value: -100 }],
    ["u16", { type: GgufType.UINT16, value: 60000 }],
    ["i16", { type: GgufType.INT16, value: -30000 }],
    ["u32", gv.u32(4000000000)],
    ["i32", gv.i32(-2000000000)],
    ["f32", gv.f32(1.5)],
    ["f64", { type: GgufType.FLOAT64, value: Math.PI }],
    ["u64", { type: GgufType.UINT64, value: 2n ** 63n + 5n }],
    ["i64", { type: GgufType.INT64, value: -(2n ** 62n) }],
    ["bool", gv.bool(true)],
    ["str", gv.str("你好, ▁world")],
    ["empty", gv.str("")],
    ["bools", { type: GgufType.ARRAY, value: { itemType: GgufType.BOOL, items: [true, false, true] } }],
    ["nested", {
      type: GgufType.ARRAY, value: {
        itemType: GgufType.ARRAY, items: [
          { itemType: GgufType.INT32, items: new Int32Array([1, 2, 3]) },
          { itemType: GgufType.STRING, items: ["a", "bc"] },
          { itemType: GgufType.ARRAY, items: [{ itemType: GgufType.FLOAT64, items: new Float64Array([0.25]) }] },
        ],
      },
    }],
    ["general.alignment", gv.u32(64)],
  ]);
}

test("every metadata type, nested arrays and general.alignment round-trip (v2 and v3)", () => {
  for (const version of [2, 3] as const) {
    const p = join(dir, `all-v${version}.gguf`);
    const data = new Float32Array([1, 2, 3, 4, 5, 6]);
    writeGguf(p, {
      version, metadata: allTypesMetadata(),
      tensors: [
        { name: "a", dims: [3, 2], type: GgmlType.F32, data: new Uint8Array(data.buffer) },
        { name: "b", dims: [2], type: GgmlType.F16, data: new Uint8Array([0, 60, 0, 64]) },
      ],
    });
    const r = new GgufReader(p);
    assert.equal(r.info.version, version);
    assert.equal(r.info.alignment, 64);
    assert.equal(r.info.dataOffset % 64, 0);
    assert.equal(r.tensor("b")!.offset, 64);
    const md = r.metadata;
    assert.equal(md.get("u8")!.value, 200);
    assert.equal(md.get("i16")!.value, -30000);
    assert.equal(md.get("u32")!.value, 4000000000);
    assert.equal(md.get("u64")!.value, 2n ** 63n + 5n);
    assert.equal(md.get("i64")!.value, -(2n ** 62n));
    assert.equal(md.get("f64")!.value, Math.PI);
    assert.equal(md.get("str")!.value, "你好, ▁world");
    assert.deepEqual((md.get("bools")!.value as any).items, [true, false, true]);
    const nested = (md.get("nested")!.value as any).items;
    assert.deepEqual([...nested[0].items], [1, 2, 3]);
    assert.deepEqual(nested[1].items, ["a", "bc"]);
    assert.equal(nested[2].items[0].items[0], 0.25);
    assert.deepEqual([...new Float32Array(r.readTensor("a").buffer)], [...data]);
    r.close();
    const p2 = join(dir, `all-v${version}-again.gguf`);
    roundTrip(p, p2);
    assert.ok(readFileSync(p).equals(readFileSync(p2)));
  }
});

function expectFormatError(bytes: Uint8Array, field: RegExp, msg: RegExp): void {
  const p = join(dir, "bad.gguf");
  writeFileSync(p, bytes);
  assert.throws(() => readGgufHeader(p), (e: unknown) => {
    assert.ok(e instanceof FormatError, `expected FormatError, got ${e}`);
    assert.match(e.message, /bad\.gguf/);
    assert.match(e.field, field);
    assert.match(e.message, msg);
    return true;
  });
}

function smallFile(): Buffer {
  const p = join(dir, "small.gguf");
  writeGguf(p, {
    metadata: new Map([["general.architecture", gv.str("llama")], ["names", gv.strs(["x", "y"])]]),
    tensors: [{ name: "t", dims: [4, 2], type: GgmlType.F32, data: new Uint8Array(32) }],
  });
  return readFileSync(p);
}

test("hostile files: bad magic, version, truncation, absurd counts and lengths, offsets", () => {
  const good = smallFile();
  const b = (f: (x: Buffer) => void) => { const c = Buffer.from(good); f(c); return c; };
  expectFormatError(b((x) => x.write("GGML", 0, "latin1")), /magic/, /expected "GGUF"/);
  expectFormatError(new Uint8Array([0x47, 0x47]), /magic/, /too short/);
  expectFormatError(b((x) => x.writeUInt32LE(7, 4)), /version/, /expected 2 or 3, found 7/);
  expectFormatError(b((x) => x.writeUInt32LE(0x03000000, 4)), /version/, /big-endian/);
  // tensor_count absurd
  expectFormatError(b((x) => x.writeBigUInt64LE(2n ** 60n, 8)), /tensor_count/, /more than/);
  // kv count absurd
  expectFormatError(b((x) => x.writeBigUInt64LE(2n ** 40n, 16)), /metadata_kv_count/, /more than/);
  // first key length absurd
  expectFormatError(b((x) => x.writeBigUInt64LE(2n ** 62n, 24)), /metadata\[0\]\.key/, /string length/);
  // unknown value type of first kv: key "general.architecture" (20 chars) -> type at 24+8+20
  expectFormatError(b((x) => x.writeUInt32LE(99, 52)), /general\.architecture/, /value type 99/);
  // array length absurd: second kv "names": key at 24+8+20+4+8+5=69 ... locate by search
  const namesAt = good.indexOf("names") + 5; // then u32 type(9), u32 item type, u64 count
  expectFormatError(b((x) => x.writeBigUInt64LE(2n ** 50n, namesAt + 8)), /names/, /array length/);
  expectFormatError(b((x) => x.writeUInt32LE(77, namesAt + 4)), /names/, /array item type 77/);
  // truncated in metadata, in tensor infos, in data
  for (const cut of [30, 60, namesAt + 20, good.length - 8]) {
    expectFormatError(good.subarray(0, cut), /./, /truncated/);
  }
  // tensor with absurd dims / offset / n_dims
  const tAt = good.lastIndexOf(Buffer.from([1, 0, 0, 0, 0, 0, 0, 0, 0x74])) + 9; // after name "t"
  expectFormatError(b((x) => x.writeUInt32LE(9, tAt)), /tensor "t"/, /n_dims is 9/);
  expectFormatError(b((x) => x.writeBigUInt64LE(0n, tAt + 4)), /tensor "t"/, /dimension 0 is 0/);
  expectFormatError(b((x) => x.writeBigUInt64LE(2n ** 40n, tAt + 4 + 16 + 4)), /tensor "t"/, /past the end/);
  expectFormatError(b((x) => x.writeBigUInt64LE(3n, tAt + 4 + 16 + 4)), /tensor "t"/, /alignment/);
  expectFormatError(b((x) => x.writeBigUInt64LE(2n ** 20n, tAt + 4)), /tensor "t"/, /past the end/);
  // unknown tensor type -> UnsupportedError naming the tensor
  const p = join(dir, "bad.gguf");
  writeFileSync(p, b((x) => x.writeUInt32LE(250, tAt + 4 + 16)));
  assert.throws(() => readGgufHeader(p), (e: unknown) => e instanceof UnsupportedError && /tensor "t".*unknown tensor type 250/.test(e.message));
});

test("random corruption never crashes with anything but a typed error", () => {
  const good = smallFile();
  let seed = 12345;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
  const p = join(dir, "fuzz.gguf");
  for (let i = 0; i < 400; i++) {
    const c = Buffer.from(good);
    const n = 1 + Math.floor(rnd() * 4);
    for (let k = 0; k < n; k++) c[Math.floor(rnd() * c.length)] = Math.floor(rnd() * 256);
    writeFileSync(p, rnd() < 0.2 ? c.subarray(0, Math.floor(rnd() * c.length)) : c);
    try { readGgufHeader(p); } catch (e) {
      assert.ok(e instanceof FormatError || e instanceof UnsupportedError, `untyped error: ${(e as Error).stack}`);
    }
  }
});

test("writer leaves no partial file when a tensor has the wrong size", () => {
  const p = join(dir, "partial.gguf");
  assert.throws(() => writeGguf(p, {
    metadata: new Map(), tensors: [{ name: "t", dims: [4], type: GgmlType.F32, data: new Uint8Array(3) }],
  }), /needs 16 bytes, got 3/);
  assert.ok(!existsSync(p));
  assert.ok(!readdirSync(dir).some((f) => f.startsWith("partial.gguf")));
});
