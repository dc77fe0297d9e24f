import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadSpmModel, parseSpmModel } from "./from-spm-model.js";
import { SpmTokenizer } from "./spm.js";
import { TokenType } from "./vocab.js";
import { FormatError } from "../errors.js";
import { haveReference } from "../test-util/paths.js";
import { loadManifest, spmModelPath } from "./reference-data.js";

const skip = !haveReference();

// ---- a test-only protobuf writer ----
function varint(v: number | bigint): number[] {
  let x = BigInt.asUintN(64, BigInt(v));
  const out: number[] = [];
  do {
    let b = Number(x & 0x7fn);
    x >>= 7n;
    if (x) b |= 0x80;
    out.push(b);
  } while (x);
  return out;
}
const key = (field: number, wt: number): number[] => varint((field << 3) | wt);
const vField = (field: number, v: number | bigint): number[] => [...key(field, 0), ...varint(v)];
const lenField = (field: number, payload: number[] | Uint8Array): number[] => [...key(field, 2), ...varint(payload.length), ...payload];
const strField = (field: number, s: string): number[] => lenField(field, [...Buffer.from(s, "utf8")]);
function floatField(field: number, f: number): number[] {
  const b = Buffer.alloc(4);
  b.writeFloatLE(f);
  return [...key(field, 5), ...b];
}
function piece(p: string, score: number, type?: number): number[] {
  return lenField(1, [...strField(1, p), ...floatField(2, score), ...(type === undefined ? [] : vField(3, type))]);
}

function tinyModel(opts: { trainer?: number[]; normalizer?: number[]; extra?: number[] } = {}): Uint8Array {
  return Uint8Array.from([
    ...piece("<unk>", 0, TokenType.UNKNOWN),
    ...piece("<s>", 0, TokenType.CONTROL),
    ...piece("</s>", 0, TokenType.CONTROL),
    ...piece("\u2581a", -1), // type omitted: NORMAL
    ...piece("a", -2, TokenType.NORMAL),
    ...piece("\u2581", -3, TokenType.NORMAL),
    ...lenField(2, opts.trainer ?? []),
    ...lenField(3, opts.normalizer ?? []),
    ...(opts.extra ?? []),
  ]);
}

test("tokenizer.model.v1: pieces, types and trainer/normalizer specs", { skip }, () => {
  const path = spmModelPath();
  const m = loadManifest().tokenizer as { sha256: string; piece_type_counts: Record<string, number>; n_pieces: number };
  assert.equal(createHash("sha256").update(readFileSync(path)).digest("hex"), m.sha256);
  const v = loadSpmModel(path);
  assert.equal(v.tokens.length, m.n_pieces);
  const counts: Record<string, number> = {};
  for (const t of v.types) counts[t] = (counts[t] ?? 0) + 1;
  assert.deepEqual(counts, m.piece_type_counts);
  assert.deepEqual([v.unkId, v.bosId, v.eosId, v.padId], [0, 1, 2, -1]);
  assert.deepEqual([v.addBos, v.addEos, v.addSpacePrefix, v.byteFallback], [true, false, true, true]);
  assert.deepEqual(v.tokens.slice(0, 4), ["<unk>", "<s>", "</s>", "<0x00>"]);
  assert.equal(v.tokens[258], "<0xFF>");
  assert.equal(v.tokens[22557], "\u2581Hello");
  assert.equal(v.scores[22557], -22298);
  assert.equal(v.types[13], TokenType.BYTE);
});

test("truncated or corrupt tokenizer.model -> FormatError naming file and field", { skip }, () => {
  const bytes = readFileSync(spmModelPath());
  const dir = mkdtempSync(join(tmpdir(), "cmx-spm-"));
  const cut = join(dir, "truncated.model");
  writeFileSync(cut, bytes.subarray(0, 1000));
  assert.throws(
    () => loadSpmModel(cut),
    (e: unknown) => e instanceof FormatError && e.file === cut && /^pieces\[\d+\]/.test(e.field) && e.message.includes(cut),
  );
  // the last field (a spec message) loses its last byte
  assert.throws(() => parseSpmModel(bytes.subarray(0, bytes.length - 1), "x.model"), FormatError);
  assert.throws(() => parseSpmModel(new Uint8Array(0), "empty.model"), (e: unknown) => e instanceof FormatError && e.field === "pieces");
  assert.throws(() => loadSpmModel(join(dir, "missing.model")), FormatError);
  // random bytes
  assert.throws(() => parseSpmModel(Uint8Array.from([0xff, 0xff, 0xff]), "junk.model"), FormatError);
});

test("hand-made ModelProto: defaults, negative ids, skipped fields, errors", () => {
  // no trainer fields: proto2 defaults unk 0, bos 1, eos 2, pad -1; add_dummy_prefix defaults to true
  let v = parseSpmModel(tinyModel(), "t.model");
  assert.deepEqual(v.tokens, ["<unk>", "<s>", "</s>", "\u2581a", "a", "\u2581"]);
  assert.deepEqual(Array.from(v.types), [2, 3, 3, 1, 1, 1]);
  assert.deepEqual(Array.from(v.scores), [0, 0, 0, -1, -2, -3]);
  assert.deepEqual([v.unkId, v.bosId, v.eosId, v.padId, v.addSpacePrefix, v.byteFallback], [0, 1, 2, -1, true, false]);

  // explicit ids (negative int32 = 10-byte varint), byte_fallback, add_dummy_prefix false, unknown fields
  v = parseSpmModel(
    tinyModel({
      trainer: [...vField(3, 2), ...vField(35, 1), ...vField(40, 0), ...vField(41, -1), ...vField(42, 2), ...vField(43, 2), ...strField(45, "<unk>"), ...floatField(10, 0.99)],
      normalizer: [...strField(1, "identity"), ...vField(3, 0), ...lenField(2, [1, 2, 3])],
      extra: [...key(99, 1), 1, 2, 3, 4, 5, 6, 7, 8, ...floatField(98, 1)],
    }),
    "t.model",
  );
  assert.deepEqual([v.unkId, v.bosId, v.eosId, v.padId, v.addSpacePrefix, v.byteFallback], [0, -1, 2, 2, false, true]);
  const t = new SpmTokenizer(v);
  assert.deepEqual(t.encode("a a", { addBos: false }), [4, 3]); // "a" "▁a": no prefix, but spaces still become ▁
  assert.deepEqual(new SpmTokenizer({ ...v, addSpacePrefix: true }).encode("a a", { addBos: false }), [3, 3]);

  const err = (bytes: Uint8Array, field: RegExp): void => {
    assert.throws(() => parseSpmModel(bytes, "bad.model"), (e: unknown) => e instanceof FormatError && e.file === "bad.model" && field.test(e.field));
  };
  err(tinyModel({ trainer: vField(41, 6) }), /^trainer_spec\.bos_id$/); // out of range
  err(tinyModel({ trainer: strField(41, "x") }), /^trainer_spec\.bos_id$/); // wrong wire type
  err(Uint8Array.from([...piece("a", 0, 9)]), /^pieces\[0\]\.type$/);
  err(Uint8Array.from(lenField(1, floatField(2, 1))), /^pieces\[0\]\.piece$/); // no piece text
  err(Uint8Array.from(lenField(1, lenField(1, [0xff, 0xfe]))), /^pieces\[0\]\.piece$/); // invalid UTF-8
  err(Uint8Array.from([...piece("a", 0), ...key(7, 3)]), /^ModelProto/); // group wire type
  err(Uint8Array.from([...piece("a", 0), ...key(2, 2), 0x80]), /^trainer_spec$/); // truncated length
  err(Uint8Array.from([0x0a, 0x05, 0x0a, 0x01]), /^pieces\[0\]$/); // length past the end
});
