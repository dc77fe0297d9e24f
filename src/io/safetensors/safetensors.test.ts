import { after, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FormatError, UnsupportedError } from "../../errors.js";
import { f32ToBf16, f32ToF16 } from "../../quant/f16.js";
import { SafetensorsCheckpoint } from "./sharded.js";
import { SafetensorsFile } from "./reader.js";
import { fromF32 } from "./format.js";
import { planShards, writeSafetensors, writeSafetensorsSharded, type StTensorSource } from "./writer.js";

const dir = mkdtempSync(join(tmpdir(), "cmx-st-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A safetensors file assembled by hand from a header object and data bytes (independent of the writer). */
function handmade(path: string, header: unknown, data: Uint8Array, pad = 0): void {
  const json = Buffer.from(JSON.stringify(header) + " ".repeat(pad), "utf8");
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(path, Buffer.concat([len, json, data]));
}

const f32bytes = (xs: number[]) => new Uint8Array(Float32Array.from(xs).buffer);

test("reads a hand-made file: F32, F16, BF16 and I64 tensors, metadata, lazy ranges", () => {
  const p = join(dir, "hand.safetensors");
  const a = f32bytes([1, -2, 3.5, 0.25, 5, 6]);
  const h = new Uint8Array(4);
  new DataView(h.buffer).setUint16(0, f32ToF16(1.5), true);
  new DataView(h.buffer).setUint16(2, f32ToF16(-0.125), true);
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint16(0, f32ToBf16(3), true);
  new DataView(b.buffer).setUint16(2, f32ToBf16(-7), true);
  const i = new Uint8Array(8);
  new DataView(i.buffer).setBigInt64(0, -5n, true);
  handmade(p, {
    __metadata__: { format: "pt" },
    a: { dtype: "F32", shape: [2, 3], data_offsets: [0, 24] },
    h: { dtype: "F16", shape: [2], data_offsets: [24, 28] },
    b: { dtype: "BF16", shape: [1, 2], data_offsets: [28, 32] },
    i: { dtype: "I64", shape: [1], data_offsets: [32, 40] },
  }, Buffer.concat([a, h, b, i]), 3);
  const f = new SafetensorsFile(p);
  try {
    assert.deepEqual(f.metadata, { format: "pt" });
    assert.deepEqual(f.tensors.map((t) => [t.name, t.dtype, t.shape]), [["a", "F32", [2, 3]], ["h", "F16", [2]], ["b", "BF16", [1, 2]], ["i", "I64", [1]]]);
    assert.deepEqual([...f.readF32("a")], [1, -2, 3.5, 0.25, 5, 6]);
    assert.deepEqual([...f.readF32("h")], [1.5, -0.125]);
    assert.deepEqual([...f.readF32("b")], [3, -7]);
    assert.deepEqual([...new Float32Array(f.readBytes("a", 8, 8).slice().buffer)], [3.5, 0.25]);
    assert.equal(new DataView(f.readBytes("i").buffer).getBigInt64(0, true), -5n);
    assert.throws(() => f.readF32("i"), UnsupportedError);
  } finally {
    f.close();
  }
});

test("the writer pads the header to 8 bytes and round-trips tensors and metadata", () => {
  const p = join(dir, "rt.safetensors");
  const x = Float32Array.from({ length: 12 }, (_, k) => k * 0.37 - 2);
  writeSafetensors(p, [
    { name: "x", dtype: "F32", shape: [3, 4], data: fromF32("F32", x) },
    { name: "y", dtype: "BF16", shape: [12], data: () => fromF32("BF16", x) },
    { name: "z", dtype: "F16", shape: [2, 6], data: fromF32("F16", x) },
  ], { metadata: { format: "pt", note: "hello" } });
  const raw = readFileSync(p);
  const n = Number(raw.readBigUInt64LE(0));
  assert.equal((8 + n) % 8, 0);
  const f = new SafetensorsFile(p);
  try {
    assert.deepEqual(f.metadata, { format: "pt", note: "hello" });
    assert.deepEqual([...f.readF32("x")], [...x]);
    const y = f.readF32("y"), z = f.readF32("z");
    for (let k = 0; k < 12; k++) {
      assert.ok(Math.abs(y[k]! - x[k]!) <= Math.abs(x[k]!) * 2 ** -8);
      assert.ok(Math.abs(z[k]! - x[k]!) <= Math.abs(x[k]!) * 2 ** -11 + 1e-7);
    }
  } finally {
    f.close();
  }
  assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith(".tmp")), []);
});

function expectFormat(path: string, re: RegExp): void {
  assert.throws(() => new SafetensorsFile(path), (e: unknown) => {
    assert.ok(e instanceof FormatError, `expected a FormatError, got ${String(e)}`);
    assert.match(e.message, re);
    return true;
  });
}

test("malformed files are FormatErrors naming the file and the tensor", () => {
  const good = { w: { dtype: "F32", shape: [2, 2], data_offsets: [0, 16] } };
  const data = f32bytes([1, 2, 3, 4]);
  const p = (n: string) => join(dir, n);

  writeFileSync(p("short.safetensors"), Buffer.from([1, 2, 3]));
  expectFormat(p("short.safetensors"), /short\.safetensors: header length: file is 3 bytes/);

  const huge = Buffer.alloc(16);
  huge.writeBigUInt64LE(1n << 40n);
  writeFileSync(p("hugelen.safetensors"), huge);
  expectFormat(p("hugelen.safetensors"), /hugelen\.safetensors: header length: header length is 1099511627776 bytes but only 8 bytes follow/);

  const bad = Buffer.from("{not json");
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(bad.length));
  writeFileSync(p("badjson.safetensors"), Buffer.concat([len, bad]));
  expectFormat(p("badjson.safetensors"), /badjson\.safetensors: header: invalid JSON/);

  handmade(p("array.safetensors"), [1, 2], new Uint8Array(0));
  expectFormat(p("array.safetensors"), /header: expected a JSON object/);

  handmade(p("trunc.safetensors"), good, data.subarray(0, 10));
  expectFormat(p("trunc.safetensors"), /trunc\.safetensors: tensor "w": data \[0, 16\) runs past the end of the data \(10 bytes\): file is truncated/);

  handmade(p("size.safetensors"), { w: { dtype: "F32", shape: [2, 3], data_offsets: [0, 16] } }, data);
  expectFormat(p("size.safetensors"), /tensor "w": F32 \[2, 3\] needs 24 bytes but data_offsets \[0, 16\] hold 16/);

  handmade(p("overlap.safetensors"), { a: { dtype: "F32", shape: [3], data_offsets: [0, 12] }, b: { dtype: "F32", shape: [2], data_offsets: [8, 16] } }, data);
  expectFormat(p("overlap.safetensors"), /tensor "b": data \[8, 16\) overlaps/);

  handmade(p("hole.safetensors"), { a: { dtype: "F32", shape: [2], data_offsets: [8, 16] } }, data);
  expectFormat(p("hole.safetensors"), /tensor "a": bytes \[0, 8\) before this tensor belong to no tensor/);

  handmade(p("trailing.safetensors"), good, Buffer.concat([data, new Uint8Array(4)]));
  expectFormat(p("trailing.safetensors"), /data: 4 bytes after the last tensor/);

  handmade(p("shape.safetensors"), { w: { dtype: "F32", shape: [2, -2], data_offsets: [0, 16] } }, data);
  expectFormat(p("shape.safetensors"), /tensor "w": shape \[2,-2\] is not a list of non-negative integers/);

  handmade(p("offs.safetensors"), { w: { dtype: "F32", shape: [4], data_offsets: [16, 0] } }, data);
  expectFormat(p("offs.safetensors"), /tensor "w": data_offsets \[16, 0\]: end is before begin/);

  handmade(p("dtype.safetensors"), { w: { dtype: "Q4", shape: [4], data_offsets: [0, 16] } }, data);
  assert.throws(() => new SafetensorsFile(p("dtype.safetensors")), (e: unknown) => e instanceof UnsupportedError && /tensor "w": dtype "Q4" is not supported/.test(e.message));
});

test("sharded checkpoints: shards + index, a missing shard, an index naming a tensor a shard lacks", () => {
  const d = join(dir, "sharded");
  mkdirSync(d);
  const tensors: StTensorSource[] = Array.from({ length: 5 }, (_, k) => ({
    name: `t${k}`, dtype: "F32", shape: [4, 4], data: fromF32("F32", Float32Array.from({ length: 16 }, (_, j) => k * 100 + j)),
  }));
  assert.deepEqual(planShards(tensors, 130).map((s) => s.length), [2, 2, 1]);
  const r = writeSafetensorsSharded(d, tensors, { maxShardBytes: 130 });
  assert.deepEqual(r.files, ["model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors", "model.safetensors.index.json"]);
  const idx = JSON.parse(readFileSync(join(d, "model.safetensors.index.json"), "utf8"));
  assert.equal(idx.metadata.total_size, 5 * 64);
  assert.equal(idx.weight_map.t4, "model-00003-of-00003.safetensors");
  const ck = SafetensorsCheckpoint.open(d);
  try {
    assert.deepEqual(ck.names, ["t0", "t1", "t2", "t3", "t4"]);
    assert.equal(ck.readF32("t3")[5], 305);
  } finally {
    ck.close();
  }
  // a small checkpoint is one model.safetensors without an index
  const one = join(dir, "one");
  mkdirSync(one);
  assert.deepEqual(writeSafetensorsSharded(one, tensors).files, ["model.safetensors"]);
  const ck1 = SafetensorsCheckpoint.open(one);
  assert.equal(ck1.readF32("t1")[0], 100);
  ck1.close();

  rmSync(join(d, "model-00002-of-00003.safetensors"));
  assert.throws(() => SafetensorsCheckpoint.open(d), (e: unknown) => e instanceof FormatError &&
    /model\.safetensors\.index\.json: weight_map: shard model-00002-of-00003\.safetensors is missing .* \(it holds 2 tensors, e\.g\. "t2"\)/.test(e.message));
  writeSafetensors(join(d, "model-00002-of-00003.safetensors"), tensors.slice(2, 3));
  assert.throws(() => SafetensorsCheckpoint.open(d), (e: unknown) => e instanceof FormatError && /model-00002-of-00003\.safetensors: tensor "t3": missing: model\.safetensors\.index\.json says this shard holds it/.test(e.message));
});

test("a failing tensor leaves no file behind; a failing shard removes the shards already written", () => {
  const p = join(dir, "fail.safetensors");
  assert.throws(() => writeSafetensors(p, [
    { name: "a", dtype: "F32", shape: [2], data: f32bytes([1, 2]) },
    { name: "b", dtype: "F32", shape: [2], data: () => { throw new Error("boom"); } },
  ]), /boom/);
  assert.equal(existsSync(p), false);
  const d = join(dir, "failshards");
  mkdirSync(d);
  assert.throws(() => writeSafetensorsSharded(d, [
    { name: "a", dtype: "F32", shape: [4], data: f32bytes([1, 2, 3, 4]) },
    { name: "b", dtype: "F32", shape: [4], data: f32bytes([1, 2, 3]) },
  ], { maxShardBytes: 16 }), /tensor "b": F32 \[4\] needs 16 bytes, got 12/);
  assert.deepEqual(readdirSync(d), []);
  assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith(".tmp")), []);
});
