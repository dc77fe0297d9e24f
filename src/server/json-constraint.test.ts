import { test } from "node:test";
import assert from "node:assert/strict";
import { TOKENIZER_V1 } from "../model/default-model.js";
import { Rng } from "../sampling/index.js";
import { loadSpmModel } from "../tokenizer/from-spm-model.js";
import { SpmTokenizer } from "../tokenizer/spm.js";
import { JsonConstraint, compileSchema, jsonObjectSchema, minValue, type SchemaNode } from "./json-constraint.js";
import { locateJsonError, parseJsonBody, JsonSyntaxError } from "./json-body.js";
import { TokenTable } from "./token-text.js";

const tok = new SpmTokenizer(loadSpmModel(TOKENIZER_V1));
const table = new TokenTable(tok);

/** Generate with random logits (a "random model") under the constraint; return the text. */
function generate(schema: SchemaNode, budget: number, seed: number): { text: string; finished: boolean } {
  const rng = new Rng(seed);
  const c = new JsonConstraint(schema, table);
  const bytes: number[] = [];
  const logits = new Float32Array(tok.nVocab);
  for (let left = budget; left > 0; left--) {
    const salt = Math.floor(rng.next() * 0x7fffffff);
    for (let i = 0; i < logits.length; i++) logits[i] = (Math.imul(i ^ salt, 0x9e3779b1) >>> 0) / 429496729.6;
    const ids = c.allowedTokens(logits, 8, left, (id) => tok.isEog(id));
    assert.ok(ids.length > 0, "some token is always allowed");
    const id = ids[Math.floor(rng.next() * ids.length)]!;
    if (tok.isEog(id)) return { text: new TextDecoder().decode(Uint8Array.from(bytes)), finished: true };
    c.accept(id);
    bytes.push(...table.bytes[id]!);
    if (c.complete) return { text: new TextDecoder().decode(Uint8Array.from(bytes)), finished: true };
  }
  return { text: new TextDecoder().decode(Uint8Array.from(bytes)), finished: c.canEnd };
}

const PERSON = {
  type: "object",
  properties: {
    name: { type: "string", maxLength: 12 },
    age: { type: "integer" },
    tags: { type: "array", items: { type: "string" }, maxItems: 3 },
    kind: { enum: ["cat", "dog", 7, null] },
    ok: { type: "boolean" },
    extra: { anyOf: [{ type: "number" }, { type: "null" }] },
  },
  required: ["name", "age", "kind"],
  additionalProperties: false,
};

test("json_object: random generation always parses into an object, even when the budget runs out", () => {
  for (let seed = 1; seed <= 12; seed++) {
    const budget = 6 + seed * 5;
    const { text, finished } = generate(jsonObjectSchema(), budget, seed);
    assert.ok(finished, `seed ${seed}: finished within ${budget} tokens: ${text}`);
    const v = JSON.parse(text) as unknown;
    assert.equal(typeof v, "object");
    assert.ok(v !== null && !Array.isArray(v), text);
  }
});

test("json_schema: properties, required, enum, anyOf, arrays, maxLength are respected", () => {
  const schema = compileSchema(PERSON, "schema");
  for (let seed = 1; seed <= 12; seed++) {
    const { text } = generate(schema, 40 + seed * 7, 100 + seed);
    const v = JSON.parse(text) as Record<string, unknown>;
    assert.equal(typeof v.name, "string", text);
    assert.ok((v.name as string).length <= 12, text);
    assert.ok(Number.isInteger(v.age), text);
    assert.ok(["cat", "dog", 7, null].includes(v.kind as string), text);
    for (const k of Object.keys(v)) assert.ok(k in PERSON.properties, `unexpected key ${k} in ${text}`);
    if ("tags" in v) assert.ok(Array.isArray(v.tags) && (v.tags as unknown[]).length <= 3 && (v.tags as unknown[]).every((t) => typeof t === "string"), text);
    if ("ok" in v) assert.equal(typeof v.ok, "boolean");
    if ("extra" in v) assert.ok(v.extra === null || typeof v.extra === "number");
  }
});

test("json_schema: the shortest completion fits exactly", () => {
  const schema = compileSchema(PERSON, "schema");
  const min = minValue(schema)!;
  assert.equal(min, '{"name":"","age":0,"kind":7}');
  const { text } = generate(schema, min.length, 5);
  JSON.parse(text);
});

test("json_schema: $ref, nested objects and min/max items", () => {
  const schema = compileSchema({
    $defs: { point: { type: "object", properties: { x: { type: "number" }, y: { type: "number" } }, required: ["x", "y"] } },
    type: "object",
    properties: { points: { type: "array", items: { $ref: "#/$defs/point" }, minItems: 2, maxItems: 4 } },
    required: ["points"],
  }, "schema");
  for (let seed = 1; seed <= 6; seed++) {
    const { text } = generate(schema, 60 + seed * 10, seed);
    const v = JSON.parse(text) as { points: { x: number; y: number }[] };
    assert.ok(v.points.length >= 2 && v.points.length <= 4, text);
    for (const p of v.points) assert.ok(typeof p.x === "number" && typeof p.y === "number", text);
  }
});

test("json_schema: unsupported keywords are named, not ignored", () => {
  assert.throws(() => compileSchema({ type: "string", pattern: "^a" }, "s"), /s\.pattern: the schema keyword "pattern" is not supported/);
  assert.throws(() => compileSchema({ type: "object", properties: { a: { type: "integer", minimum: 0 } } }, "s"), /s\.properties\.a\.minimum/);
  assert.throws(() => compileSchema({ type: "wat" }, "s"), /unknown type "wat"/);
  assert.throws(() => compileSchema({ $ref: "http://x/y" }, "s"), /only local references/);
});

test("malformed JSON bodies: position, line and column of the first error", () => {
  assert.deepEqual(locateJsonError('{"a":}').pos, 5);
  assert.deepEqual(locateJsonError('{"a":1,}').pos, 7);
  assert.deepEqual(locateJsonError("[1,2 3]").pos, 5);
  assert.deepEqual(locateJsonError('{"a": tru}').pos, 9);
  assert.deepEqual(locateJsonError('{"a": 1').pos, 7);
  assert.deepEqual(locateJsonError('{"a": 1} x').pos, 9);
  try {
    parseJsonBody('{\n  "model": "x",\n  "n": 01\n}');
    assert.fail("should throw");
  } catch (e) {
    assert.ok(e instanceof JsonSyntaxError);
    assert.equal(e.line, 3);
    assert.equal(e.column, 9);
    assert.match(e.message, /position 26 \(line 3, column 9\)/);
  }
});
