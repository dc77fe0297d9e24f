import { after, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FormatError } from "../errors.js";
import { importanceOf, readImatrix, writeImatrix, type Imatrix } from "./imatrix.js";

const dir = mkdtempSync(join(tmpdir(), "cmx-imatrix-io-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Two chunks of 8 tokens: a dense weight (nIn 4), a stack of 3 experts (nIn 2), one of which saw no token. */
function sample(): Imatrix {
  return {
    entries: new Map([
      ["blk.0.attn_q.weight", { sums: Float64Array.of(1, 2.5, 0, 1e-3), counts: [16], nMat: 1 }],
      ["blk.0.ffn_down_exps.weight", { sums: Float64Array.of(3, 4, 0, 0, 5, 6), counts: [10, 0, 6], nMat: 3 }],
      ["output.weight", { sums: Float64Array.of(0.25, 8), counts: [16], nMat: 1 }],
    ]),
    chunkCount: 2, chunkSize: 8, datasets: ["wiki.txt"],
  };
}

test("legacy .dat: llama.cpp's layout byte for byte; read back gives the same importance", () => {
  const m = sample();
  const p = join(dir, "a.dat");
  const w = writeImatrix(p, m);
  assert.deepEqual(w, { written: 3, skipped: [] });
  const b = readFileSync(p);
  let o = 0;
  const i32 = () => { const v = b.readInt32LE(o); o += 4; return v; };
  const str = (n: number) => { const s = b.subarray(o, o + n).toString("utf8"); o += n; return s; };
  const f32s = (n: number) => { const v = Array.from({ length: n }, (_, i) => b.readFloatLE(o + 4 * i)); o += 4 * n; return v; };
  assert.equal(i32(), 3);
  // sorted names; ncall = ceil(max count / chunk size); values = Σx²/count * ncall (1 * ncall for an expert with no token)
  assert.equal(str(i32()), "blk.0.attn_q.weight");
  assert.equal(i32(), 2);
  assert.equal(i32(), 4);
  assert.deepEqual(f32s(4), [1 / 16 * 2, 2.5 / 16 * 2, 0, Math.fround(Math.fround(Math.fround(1e-3) / 16) * 2)]);
  assert.equal(str(i32()), "blk.0.ffn_down_exps.weight");
  assert.equal(i32(), 2);
  assert.equal(i32(), 6);
  assert.deepEqual(f32s(6), [Math.fround(3 / 10) * 2, Math.fround(4 / 10) * 2, 2, 2, Math.fround(5 / 6) * 2, 2]);
  assert.equal(str(i32()), "output.weight");
  assert.equal(i32(), 2);
  assert.equal(i32(), 2);
  assert.deepEqual(f32s(2), [0.25 / 16 * 2, 1]);
  assert.equal(i32(), 2, "chunks");
  assert.equal(str(i32()), "wiki.txt");
  assert.equal(o, b.length);

  const r = readImatrix(p);
  assert.equal(r.chunkCount, 2);
  assert.equal(r.chunkSize, 0); // not stored in this format
  assert.deepEqual(r.datasets, ["wiki.txt"]);
  for (const [name, e] of m.entries) {
    const got = importanceOf(r.entries.get(name)!);
    const want = importanceOf(e);
    assert.deepEqual([...got].map((v) => Math.fround(v)), [...want], name);
  }
});

test("GGUF: in_sum2 and counts read back exactly; per-expert counts kept", () => {
  const m = sample();
  const p = join(dir, "a.gguf");
  writeImatrix(p, m);
  const r = readImatrix(p);
  assert.equal(r.chunkCount, 2);
  assert.equal(r.chunkSize, 8);
  assert.deepEqual(r.datasets, ["wiki.txt"]);
  assert.deepEqual([...r.entries.keys()].sort(), [...m.entries.keys()].sort());
  for (const [name, e] of m.entries) {
    const g = r.entries.get(name)!;
    assert.deepEqual([...g.sums], [...e.sums].map((v) => Math.fround(v)), name);
    assert.deepEqual(g.counts, e.counts, name);
    assert.equal(g.nMat, e.nMat);
    assert.deepEqual([...importanceOf(g)], [...importanceOf(e)].map((v) => Math.fround(v)), name);
  }
  // the expert that saw no token gets importance 1, as llama-quantize does
  assert.deepEqual([...importanceOf(r.entries.get("blk.0.ffn_down_exps.weight")!, 1)], [1, 1]);
  // a .dat name with --output-format gguf still writes GGUF
  writeImatrix(join(dir, "b.dat"), m, "gguf");
  assert.equal(readFileSync(join(dir, "b.dat")).subarray(0, 4).toString("latin1"), "GGUF");
});

test("legacy writer leaves out weights that saw no token; readers reject truncated or foreign files; no temp files left", () => {
  const m = sample();
  m.entries.set("blk.1.attn_k.weight", { sums: new Float64Array(4), counts: [0], nMat: 1 });
  const p = join(dir, "c.dat");
  assert.deepEqual(writeImatrix(p, m).skipped, ["blk.1.attn_k.weight"]);
  assert.equal(readImatrix(p).entries.size, 3);
  const full = readFileSync(p);
  for (const cut of [2, 10, 30, 60]) {
    const q = join(dir, `cut${cut}.dat`);
    writeFileSync(q, full.subarray(0, cut));
    assert.throws(() => readImatrix(q), (e: unknown) => e instanceof FormatError && /truncated/.test(e.message), `cut at ${cut}`);
  }
  // only the trailer missing: still readable (llama.cpp treats it as optional)
  const names = full.length - (4 + 4 + "wiki.txt".length);
  writeFileSync(join(dir, "notrailer.dat"), full.subarray(0, names));
  assert.equal(readImatrix(join(dir, "notrailer.dat")).entries.size, 3);
  const junk = join(dir, "junk.dat");
  writeFileSync(junk, Buffer.from([0xff, 0xff, 0xff, 0x7f, 1, 2, 3]));
  assert.throws(() => readImatrix(junk), (e: unknown) => e instanceof FormatError && /entry count/.test(e.message));
  assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith(".tmp")), []);
});
