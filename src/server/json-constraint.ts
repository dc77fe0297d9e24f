/**
 * Constrained decoding for `response_format` {"type":"json_object"} and {"type":"json_schema"}.
 *
 * A JSON schema (the subset below) is compiled into a tree of nodes; a byte-level pushdown
 * recogniser then follows the generated text. Its state is a set of parse stacks (several when a
 * `anyOf` or an enum leaves more than one way open), each an immutable linked list of frames, so
 * that trying a candidate token costs only the frames it touches.
 *
 * At each step the candidates are tried in descending logit order; a token is allowed when all of
 * its bytes keep some parse alive *and* the shortest text that completes the value still fits in
 * the tokens left (max_tokens and the context). That second rule makes the output parse even when
 * the budget runs out: as it shrinks, only tokens that move towards the end stay allowed (every
 * byte has a token of its own, so n bytes never need more than n tokens).
 *
 * Supported schema keywords: type (or a list of types), properties, required,
 * additionalProperties, items, minItems, maxItems, enum, const, anyOf, oneOf (treated as anyOf),
 * allOf with one member, $ref to "#", "#/$defs/..." or "#/definitions/...", minLength,
 * maxLength; annotations (title, description, default, examples, $schema, $id, $comment, ...)
 * are accepted and have no effect. Any other keyword is an error that names it: it is never
 * silently dropped. Objects with `properties` and no `additionalProperties: true|{...}` take
 * their keys in the order given (optional ones may be left out), as llama.cpp's grammar does.
 * Whitespace between tokens is limited to a few bytes in a row, numbers to 15 digits.
 */
import { ArgumentError } from "../errors.js";
import { type Candidates, createCandidates } from "../sampling/candidates.js";
import { selectTopK } from "../sampling/top-k.js";
import type { TokenTable } from "./token-text.js";

// ---- schema nodes ----------------------------------------------------------------------------

interface Prop { key: string; esc: string; node: SchemaNode; required: boolean }
interface AnyNode { k: "any" }
interface ObjectNode { k: "object"; props: Prop[]; extra: SchemaNode | null }
interface ArrayNode { k: "array"; items: SchemaNode; min: number; max: number }
interface StringNode { k: "string"; min: number; max: number }
interface NumberNode { k: "number"; integer: boolean }
interface BoolNode { k: "boolean" }
interface NullNode { k: "null" }
interface LiteralNode { k: "literal"; texts: string[] }
interface UnionNode { k: "union"; options: SchemaNode[] }
export type SchemaNode = AnyNode | ObjectNode | ArrayNode | StringNode | NumberNode | BoolNode | NullNode | LiteralNode | UnionNode;

const ANY: AnyNode = { k: "any" };
const ANY_OBJECT: ObjectNode = { k: "object", props: [], extra: ANY };
const ANY_ARRAY: ArrayNode = { k: "array", items: ANY, min: 0, max: Infinity };
const ANY_STRING: StringNode = { k: "string", min: 0, max: Infinity };
const ANY_NUMBER: NumberNode = { k: "number", integer: false };
const TRUE_FALSE: LiteralNode = { k: "literal", texts: ["true", "false"] };
const NULL_LIT: LiteralNode = { k: "literal", texts: ["null"] };

/** UTF-8 bytes of a JS string as a binary string (one char per byte). */
export function toBin(s: string): string {
  return String.fromCharCode(...new TextEncoder().encode(s));
}

const ANNOTATIONS = new Set(["title", "description", "$schema", "$id", "$comment", "default", "examples", "deprecated", "readOnly", "writeOnly", "$defs", "definitions"]);
const SUPPORTED = new Set(["type", "properties", "required", "additionalProperties", "items", "minItems", "maxItems", "enum", "const", "anyOf", "oneOf", "allOf", "$ref", "minLength", "maxLength"]);

/** The schema of {"type":"json_object"}: any JSON object. */
export function jsonObjectSchema(): SchemaNode {
  return ANY_OBJECT;
}

/** Compile a JSON schema; `where` names it in error messages. */
export function compileSchema(schema: unknown, where: string): SchemaNode {
  const root = schema;
  const memo = new Map<object, SchemaNode>();
  const fail = (path: string, why: string): never => { throw new ArgumentError(`${path}: ${why}`); };
  const nonNegInt = (v: unknown, path: string): number => {
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0) fail(path, `must be a non-negative integer, got ${JSON.stringify(v)}`);
    return v as number;
  };
  const resolveRef = (ref: unknown, path: string): unknown => {
    if (typeof ref !== "string" || !ref.startsWith("#")) return fail(path, `only local references ("#/$defs/NAME") are supported, got ${JSON.stringify(ref)}`);
    let cur: unknown = root;
    for (const raw of ref.slice(1).split("/").filter((p) => p !== "")) {
      const part = decodeURIComponent(raw).replace(/~1/g, "/").replace(/~0/g, "~");
      if (cur === null || typeof cur !== "object" || !(part in (cur as object))) fail(path, `reference ${ref} does not resolve`);
      cur = (cur as Record<string, unknown>)[part];
    }
    return cur;
  };

  const compile = (s: unknown, path: string): SchemaNode => {
    if (s === true || (s !== null && typeof s === "object" && !Array.isArray(s) && Object.keys(s).length === 0)) return ANY;
    if (s === null || typeof s !== "object" || Array.isArray(s)) return fail(path, "a schema must be an object");
    const cached = memo.get(s);
    if (cached) return cached;
    const o = s as Record<string, unknown>;
    for (const key of Object.keys(o)) {
      if (!ANNOTATIONS.has(key) && !SUPPORTED.has(key)) fail(`${path}.${key}`, `the schema keyword "${key}" is not supported`);
    }
    if ("$ref" in o) {
      if (Object.keys(o).some((k) => SUPPORTED.has(k) && k !== "$ref")) fail(path, "$ref next to other keywords is not supported");
      // placeholder union so that recursive references terminate; filled below
      const node: UnionNode = { k: "union", options: [] };
      memo.set(s, node);
      node.options.push(compile(resolveRef(o.$ref, `${path}.$ref`), `${path}.$ref`));
      return node;
    }
    if ("allOf" in o) {
      const all = o.allOf;
      if (!Array.isArray(all) || all.length !== 1) fail(`${path}.allOf`, "only an allOf with a single schema is supported");
      return compile((all as unknown[])[0], `${path}.allOf[0]`);
    }
    for (const kw of ["anyOf", "oneOf"] as const) {
      if (kw in o) {
        const list = o[kw];
        if (!Array.isArray(list) || list.length === 0) fail(`${path}.${kw}`, "must be a non-empty array of schemas");
        const node: UnionNode = { k: "union", options: [] };
        memo.set(s, node);
        (list as unknown[]).forEach((x, i) => node.options.push(compile(x, `${path}.${kw}[${i}]`)));
        return node;
      }
    }
    if ("const" in o) return { k: "literal", texts: [toBin(JSON.stringify(o.const))] };
    if ("enum" in o) {
      const e = o.enum;
      if (!Array.isArray(e) || e.length === 0) fail(`${path}.enum`, "must be a non-empty array");
      return { k: "literal", texts: [...new Set((e as unknown[]).map((v) => toBin(JSON.stringify(v))))] };
    }
    let types: string[];
    if (o.type === undefined) {
      types = "properties" in o || "additionalProperties" in o || "required" in o ? ["object"]
        : "items" in o || "minItems" in o || "maxItems" in o ? ["array"]
        : "minLength" in o || "maxLength" in o ? ["string"] : ["any"];
    } else if (typeof o.type === "string") types = [o.type];
    else if (Array.isArray(o.type) && o.type.length > 0 && o.type.every((t) => typeof t === "string")) types = o.type as string[];
    else return fail(`${path}.type`, "must be a type name or a list of them");
    const one = (t: string): SchemaNode => {
      switch (t) {
        case "any": return ANY;
        case "string": {
          const min = o.minLength === undefined ? 0 : nonNegInt(o.minLength, `${path}.minLength`);
          const max = o.maxLength === undefined ? Infinity : nonNegInt(o.maxLength, `${path}.maxLength`);
          if (max < min) fail(path, "maxLength is below minLength");
          return { k: "string", min, max };
        }
        case "number": return ANY_NUMBER;
        case "integer": return { k: "number", integer: true };
        case "boolean": return TRUE_FALSE;
        case "null": return NULL_LIT;
        case "array": {
          const min = o.minItems === undefined ? 0 : nonNegInt(o.minItems, `${path}.minItems`);
          const max = o.maxItems === undefined ? Infinity : nonNegInt(o.maxItems, `${path}.maxItems`);
          if (max < min) fail(path, "maxItems is below minItems");
          const node: ArrayNode = { k: "array", items: ANY, min, max };
          if (types.length === 1) memo.set(s, node);
          if (o.items !== undefined) {
            if (Array.isArray(o.items)) fail(`${path}.items`, "tuple items (an array of schemas) are not supported");
            node.items = compile(o.items, `${path}.items`);
          }
          return node;
        }
        case "object": {
          const node: ObjectNode = { k: "object", props: [], extra: null };
          if (types.length === 1) memo.set(s, node);
          const props = o.properties ?? {};
          if (props === null || typeof props !== "object" || Array.isArray(props)) fail(`${path}.properties`, "must be an object");
          const req = o.required ?? [];
          if (!Array.isArray(req) || !req.every((r) => typeof r === "string")) fail(`${path}.required`, "must be an array of property names");
          const reqSet = new Set(req as string[]);
          for (const r of reqSet) if (!(r in (props as object))) fail(`${path}.required`, `"${r}" is not among the properties`);
          for (const [key, sub] of Object.entries(props as Record<string, unknown>)) {
            node.props.push({ key, esc: toBin(JSON.stringify(key).slice(1, -1)), node: ANY, required: reqSet.has(key) });
          }
          node.props.forEach((p) => { p.node = compile((props as Record<string, unknown>)[p.key], `${path}.properties.${p.key}`); });
          const ap = o.additionalProperties;
          if (ap === undefined) node.extra = node.props.length === 0 ? ANY : null;
          else if (ap === false) node.extra = null;
          else node.extra = compile(ap, `${path}.additionalProperties`);
          return node;
        }
        default:
          return fail(`${path}.type`, `unknown type "${t}"`);
      }
    };
    if (types.length === 1) return one(types[0]!);
    const node: UnionNode = { k: "union", options: [] };
    memo.set(s, node);
    for (const t of types) node.options.push(one(t));
    return node;
  };
  return compile(schema, where);
}

// ---- the recogniser ----------------------------------------------------------------------------

/** String scanning state: escapes, UTF-8 continuation bytes, characters so far. */
interface StrSub {
  /** 0 none, 1 after a backslash, 2..5: after "\u" with esc-2 hex digits read */
  esc: number;
  /** UTF-8 continuation bytes still due, and the allowed range of the next one */
  cont: number;
  lo: number;
  hi: number;
  /** characters so far */
  n: number;
}
const STR0: StrSub = { esc: 0, cont: 0, lo: 0x80, hi: 0xbf, n: 0 };

const enum O { OPEN, KEY, AFTER_KEY, AFTER_COLON, AFTER_VALUE, NEED_KEY }
const enum A { OPEN, AFTER_VALUE, NEED_VALUE }
const enum N { NEG, ZERO, INT, DOT, FRAC, E, ESIGN, EXP }

type Frame =
  | { t: "root"; node: SchemaNode; done: boolean }
  | { t: "obj"; node: ObjectNode; st: O; next: number; seen: string[]; key: string; ks: StrSub; cur: SchemaNode | null }
  | { t: "arr"; node: ArrayNode; st: A; count: number }
  | { t: "str"; node: StringNode; s: StrSub }
  | { t: "num"; integer: boolean; st: N; nd: number }
  | { t: "lit"; texts: string[]; pos: number };

interface Stack { f: Frame; up: Stack | null; d: number }
interface State { stack: Stack; ws: number }

const MAX_WS = 8;
const MAX_DEPTH = 24;
const MAX_DIGITS = 15;
const MAX_FREE_KEY = 128;
const MAX_STATES = 32;

const isWs = (b: number) => b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;
const isDigit = (b: number) => b >= 0x30 && b <= 0x39;
const isHex = (b: number) => isDigit(b) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66);

/** One byte of string content; "close" for the closing quote, null when invalid. */
function strByte(s: StrSub, b: number, maxChars: number): StrSub | "close" | null {
  if (s.cont > 0) {
    if (b < s.lo || b > s.hi) return null;
    return { esc: 0, cont: s.cont - 1, lo: 0x80, hi: 0xbf, n: s.n };
  }
  if (s.esc === 1) {
    if (b === 0x75) return { ...s, esc: 2 };
    if ("\"\\/bfnrt".includes(String.fromCharCode(b))) return { ...s, esc: 0, n: s.n + 1 };
    return null;
  }
  if (s.esc >= 2) {
    if (!isHex(b)) return null;
    return s.esc === 5 ? { ...s, esc: 0, n: s.n + 1 } : { ...s, esc: s.esc + 1 };
  }
  if (b === 0x22) return "close";
  if (s.n >= maxChars) return null;
  if (b === 0x5c) return { ...s, esc: 1 };
  if (b < 0x20) return null;
  if (b < 0x80) return { ...s, n: s.n + 1 };
  const n = s.n + 1;
  if (b >= 0xc2 && b <= 0xdf) return { esc: 0, cont: 1, lo: 0x80, hi: 0xbf, n };
  if (b === 0xe0) return { esc: 0, cont: 2, lo: 0xa0, hi: 0xbf, n };
  if (b === 0xed) return { esc: 0, cont: 2, lo: 0x80, hi: 0x9f, n };
  if (b >= 0xe1 && b <= 0xef) return { esc: 0, cont: 2, lo: 0x80, hi: 0xbf, n };
  if (b === 0xf0) return { esc: 0, cont: 3, lo: 0x90, hi: 0xbf, n };
  if (b >= 0xf1 && b <= 0xf3) return { esc: 0, cont: 3, lo: 0x80, hi: 0xbf, n };
  if (b === 0xf4) return { esc: 0, cont: 3, lo: 0x80, hi: 0x8f, n };
  return null;
}

/** The shortest bytes that finish a string's current escape or character (not the quote). */
function strTail(s: StrSub): string {
  if (s.cont > 0) return String.fromCharCode(s.lo) + "\x80".repeat(s.cont - 1);
  if (s.esc === 1) return "n";
  if (s.esc >= 2) return "0".repeat(6 - s.esc);
  return "";
}

function objClosable(f: Extract<Frame, { t: "obj" }>): boolean {
  const n = f.node;
  if (n.extra === null) {
    for (let i = f.next; i < n.props.length; i++) if (n.props[i]!.required) return false;
    return true;
  }
  return n.props.every((p) => !p.required || f.seen.includes(p.key));
}

/** Mode "ordered" (no additional properties): the props that may come next. */
function keyCandidates(f: Extract<Frame, { t: "obj" }>): number[] {
  const out: number[] = [];
  const props = f.node.props;
  for (let i = f.next; i < props.length; i++) {
    out.push(i);
    if (props[i]!.required) break;
  }
  return out;
}

function decodeKey(bin: string): string | undefined {
  try {
    const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
    return JSON.parse(`"${new TextDecoder("utf-8", { fatal: true }).decode(bytes)}"`) as string;
  } catch {
    return undefined;
  }
}

function propNode(node: ObjectNode, key: string): SchemaNode {
  return node.props.find((p) => p.key === key)?.node ?? node.extra ?? ANY;
}

const push = (out: State[], stack: Stack | null, ws: number) => { if (stack) out.push({ stack, ws }); };
const frame = (f: Frame, up: Stack | null): Stack => ({ f, up, d: up ? up.d + 1 : 0 });
const replaceTop = (s: Stack, f: Frame): Stack => ({ f, up: s.up, d: s.d });

/** Start a value of `node` with byte b, on top of `parent` (already in its after-value state). */
function startValue(node: SchemaNode, b: number, parent: Stack, out: State[]): void {
  const container = parent.d + 1 < MAX_DEPTH;
  switch (node.k) {
    case "any":
      if (b === 0x7b) return startValue(ANY_OBJECT, b, parent, out);
      if (b === 0x5b) return startValue(ANY_ARRAY, b, parent, out);
      if (b === 0x22) return startValue(ANY_STRING, b, parent, out);
      if (b === 0x2d || isDigit(b)) return startValue(ANY_NUMBER, b, parent, out);
      if (b === 0x74 || b === 0x66) return startValue(TRUE_FALSE, b, parent, out);
      if (b === 0x6e) return startValue(NULL_LIT, b, parent, out);
      return;
    case "object":
      if (b === 0x7b && container) push(out, frame({ t: "obj", node, st: O.OPEN, next: 0, seen: [], key: "", ks: STR0, cur: null }, parent), 0);
      return;
    case "array":
      if (b === 0x5b && container) push(out, frame({ t: "arr", node, st: A.OPEN, count: 0 }, parent), 0);
      return;
    case "string":
      if (b === 0x22) push(out, frame({ t: "str", node, s: STR0 }, parent), 0);
      return;
    case "number":
      if (b === 0x2d) push(out, frame({ t: "num", integer: node.integer, st: N.NEG, nd: 0 }, parent), 0);
      else if (b === 0x30) push(out, frame({ t: "num", integer: node.integer, st: N.ZERO, nd: 1 }, parent), 0);
      else if (isDigit(b)) push(out, frame({ t: "num", integer: node.integer, st: N.INT, nd: 1 }, parent), 0);
      return;
    case "boolean":
    case "null":
      return;
    case "literal":
      litStep(node.texts, 0, b, parent, out);
      return;
    case "union":
      for (const o of node.options) startValue(o, b, parent, out);
      return;
  }
}

function litStep(texts: string[], pos: number, b: number, parent: Stack, out: State[]): void {
  const keep = texts.filter((t) => t.charCodeAt(pos) === b);
  if (keep.some((t) => t.length === pos + 1)) push(out, parent, 0);
  const more = keep.filter((t) => t.length > pos + 1);
  if (more.length) push(out, frame({ t: "lit", texts: more, pos: pos + 1 }, parent), 0);
}

/** Feed one byte to one parse state. */
function step(state: State, b: number, out: State[]): void {
  const s = state.stack, f = s.f;
  const ws = () => { if (state.ws < MAX_WS) out.push({ stack: s, ws: state.ws + 1 }); };
  switch (f.t) {
    case "root":
      if (f.done) return;
      if (isWs(b)) return ws();
      return startValue(f.node, b, replaceTop(s, { ...f, done: true }), out);
    case "str": {
      const r = strByte(f.s, b, f.node.max);
      if (r === "close") { if (f.s.n >= f.node.min) push(out, s.up, 0); return; }
      if (r) push(out, replaceTop(s, { ...f, s: r }), 0);
      return;
    }
    case "lit":
      return litStep(f.texts, f.pos, b, s.up!, out);
    case "num": {
      const next = (st: N, nd: number) => push(out, replaceTop(s, { ...f, st, nd }), 0);
      const dig = isDigit(b);
      switch (f.st) {
        case N.NEG: if (b === 0x30) return next(N.ZERO, 1); if (dig) return next(N.INT, 1); return;
        case N.ZERO: case N.INT: case N.FRAC: case N.EXP:
          if (dig && f.st !== N.ZERO) { if (f.nd < (f.st === N.EXP ? 3 : MAX_DIGITS)) next(f.st, f.nd + 1); return; }
          if (b === 0x2e && !f.integer && (f.st === N.ZERO || f.st === N.INT)) return next(N.DOT, 0);
          if ((b === 0x65 || b === 0x45) && !f.integer && f.st !== N.EXP) return next(N.E, 0);
          if (dig) return; // a digit after a leading zero
          // the number ends: the byte belongs to the parent
          return step({ stack: s.up!, ws: 0 }, b, out);
        case N.DOT: if (dig) next(N.FRAC, 1); return;
        case N.E: if (b === 0x2b || b === 0x2d) return next(N.ESIGN, 0); if (dig) next(N.EXP, 1); return;
        case N.ESIGN: if (dig) next(N.EXP, 1); return;
      }
      return;
    }
    case "arr": {
      const n = f.node;
      if (isWs(b)) return ws();
      if (f.st === A.OPEN || f.st === A.AFTER_VALUE) {
        if (b === 0x5d && f.count >= n.min) return push(out, s.up, 0);
        if (f.st === A.AFTER_VALUE) {
          if (b === 0x2c && f.count < n.max) push(out, replaceTop(s, { ...f, st: A.NEED_VALUE }), 0);
          return;
        }
      }
      if (f.count >= n.max) return;
      return startValue(n.items, b, replaceTop(s, { ...f, st: A.AFTER_VALUE, count: f.count + 1 }), out);
    }
    case "obj": {
      const n = f.node, ordered = n.extra === null;
      switch (f.st) {
        case O.OPEN: case O.NEED_KEY: case O.AFTER_VALUE:
          if (isWs(b)) return ws();
          if (f.st !== O.NEED_KEY && b === 0x7d) { if (objClosable(f)) push(out, s.up, 0); return; }
          if (f.st === O.AFTER_VALUE) {
            if (b === 0x2c && (!ordered || f.next < n.props.length)) push(out, replaceTop(s, { ...f, st: O.NEED_KEY }), 0);
            return;
          }
          if (b === 0x22 && (!ordered || f.next < n.props.length)) push(out, replaceTop(s, { ...f, st: O.KEY, key: "", ks: STR0 }), 0);
          return;
        case O.KEY: {
          const r = strByte(f.ks, b, ordered ? Infinity : MAX_FREE_KEY);
          if (r === null) return;
          if (r === "close") {
            if (ordered) {
              const i = keyCandidates(f).find((j) => n.props[j]!.esc === f.key);
              if (i !== undefined) push(out, replaceTop(s, { ...f, st: O.AFTER_KEY, cur: n.props[i]!.node, next: i + 1 }), 0);
              return;
            }
            const key = decodeKey(f.key);
            if (key !== undefined) push(out, replaceTop(s, { ...f, st: O.AFTER_KEY, cur: propNode(n, key), seen: [...f.seen, key] }), 0);
            return;
          }
          const key = f.key + String.fromCharCode(b);
          if (ordered && !keyCandidates(f).some((j) => n.props[j]!.esc.startsWith(key))) return;
          push(out, replaceTop(s, { ...f, key, ks: r }), 0);
          return;
        }
        case O.AFTER_KEY:
          if (isWs(b)) return ws();
          if (b === 0x3a) push(out, replaceTop(s, { ...f, st: O.AFTER_COLON }), 0);
          return;
        case O.AFTER_COLON:
          if (isWs(b)) return ws();
          return startValue(f.cur ?? ANY, b, replaceTop(s, { ...f, st: O.AFTER_VALUE, cur: null }), out);
      }
    }
  }
}

// ---- shortest completions ----------------------------------------------------------------------

const minMemo = new WeakMap<SchemaNode, string | null>();
const IN_PROGRESS = "\u0000in-progress";

/** The shortest text of a value of `node`, or null when none is finite (a required cycle). */
export function minValue(node: SchemaNode): string | null {
  const m = minMemo.get(node);
  if (m === IN_PROGRESS) return null;
  if (m !== undefined) return m;
  minMemo.set(node, IN_PROGRESS);
  let r: string | null;
  switch (node.k) {
    case "any": case "number": r = "0"; break;
    case "string": r = `"${"a".repeat(node.min)}"`; break;
    case "boolean": r = "true"; break;
    case "null": r = "null"; break;
    case "literal": r = shortest(node.texts); break;
    case "union": r = shortest(node.options.map(minValue)); break;
    case "array": {
      const item = node.min > 0 ? minValue(node.items) : "";
      r = item === null ? null : `[${Array(node.min).fill(item).join(",")}]`;
      break;
    }
    case "object": {
      const parts = node.props.filter((p) => p.required).map((p) => propText(p));
      r = parts.includes(null) ? null : `{${parts.join(",")}}`;
      break;
    }
  }
  minMemo.set(node, r);
  return r;
}

function propText(p: Prop): string | null {
  const v = minValue(p.node);
  return v === null ? null : `"${p.esc}":${v}`;
}

function shortest(xs: (string | null)[]): string | null {
  let best: string | null = null;
  for (const x of xs) if (x !== null && (best === null || x.length < best.length)) best = x;
  return best;
}

/** Required props from index i on (ordered objects), each preceded by a comma when `comma`. */
function restOrdered(node: ObjectNode, i: number, comma: boolean): string | null {
  let out = "";
  for (let j = i; j < node.props.length; j++) {
    const p = node.props[j]!;
    if (!p.required) continue;
    const t = propText(p);
    if (t === null) return null;
    out += (comma || out ? "," : "") + t;
  }
  return out;
}

function missingFree(node: ObjectNode, seen: string[], comma: boolean): string | null {
  let out = "";
  for (const p of node.props) {
    if (!p.required || seen.includes(p.key)) continue;
    const t = propText(p);
    if (t === null) return null;
    out += (comma || out ? "," : "") + t;
  }
  return out;
}

function cat(...parts: (string | null)[]): string | null {
  return parts.includes(null) ? null : parts.join("");
}

function frameSuffix(f: Frame): string | null {
  switch (f.t) {
    case "root": return f.done ? "" : minValue(f.node);
    case "str": return strTail(f.s) + "a".repeat(Math.max(0, f.node.min - f.s.n - (f.s.esc > 0 ? 1 : 0))) + '"';
    case "lit": return shortest(f.texts.map((t) => t.slice(f.pos)));
    case "num": return f.st === N.ZERO || f.st === N.INT || f.st === N.FRAC || f.st === N.EXP ? "" : "0";
    case "arr": {
      const n = f.node;
      const need = Math.max(0, n.min - f.count);
      const item = need > 0 || f.st === A.NEED_VALUE ? minValue(n.items) : "";
      if (item === null) return null;
      if (f.st === A.NEED_VALUE) return item + `,${item}`.repeat(Math.max(0, need - 1)) + "]";
      if (f.st === A.OPEN) return Array(need).fill(item).join(",") + "]";
      return `,${item}`.repeat(need) + "]";
    }
    case "obj": {
      const n = f.node;
      if (n.extra === null) {
        switch (f.st) {
          case O.OPEN: return cat(restOrdered(n, f.next, false), "}");
          case O.AFTER_VALUE: return cat(restOrdered(n, f.next, true), "}");
          case O.AFTER_KEY: return cat(":", minValue(f.cur ?? ANY), restOrdered(n, f.next, true), "}");
          case O.AFTER_COLON: return cat(minValue(f.cur ?? ANY), restOrdered(n, f.next, true), "}");
          case O.NEED_KEY: case O.KEY: {
            const prefix = f.st === O.KEY ? f.key : null;
            return shortest(keyCandidates(f).map((j) => {
              const p = n.props[j]!;
              if (prefix !== null && !p.esc.startsWith(prefix)) return null;
              const head = prefix !== null ? p.esc.slice(prefix.length) + '"' : `"${p.esc}"`;
              return cat(head, ":", minValue(p.node), restOrdered(n, j + 1, true), "}");
            }));
          }
        }
        return null;
      }
      switch (f.st) {
        case O.OPEN: return cat(missingFree(n, f.seen, false), "}");
        case O.AFTER_VALUE: return cat(missingFree(n, f.seen, true), "}");
        case O.AFTER_KEY: return cat(":", minValue(f.cur ?? ANY), missingFree(n, f.seen, true), "}");
        case O.AFTER_COLON: return cat(minValue(f.cur ?? ANY), missingFree(n, f.seen, true), "}");
        case O.NEED_KEY: {
          const miss = missingFree(n, f.seen, false);
          if (miss === null) return null;
          return miss ? miss + "}" : cat('"":', minValue(n.extra ?? ANY), "}");
        }
        case O.KEY: {
          const tail = strTail(f.ks);
          const key = n.props.length ? decodeKey(f.key + tail) ?? "" : "";
          return cat(tail, '":', minValue(propNode(n, key)), missingFree(n, [...f.seen, key], true), "}");
        }
      }
      return null;
    }
  }
}

function completion(st: State): string | null {
  let out = "";
  for (let s: Stack | null = st.stack; s; s = s.up) {
    const x = frameSuffix(s.f);
    if (x === null) return null;
    out += x;
  }
  return out;
}

// ---- the vocabulary as a byte trie (built once per tokenizer) ------------------------------------

interface TrieNode { next: Map<number, TrieNode>; ids: number[] }
const tries = new WeakMap<TokenTable, { root: TrieNode; special: number[] }>();

function tokenTrie(table: TokenTable): { root: TrieNode; special: number[] } {
  let t = tries.get(table);
  if (t) return t;
  const root: TrieNode = { next: new Map(), ids: [] };
  const special: number[] = [];
  table.bytes.forEach((b, id) => {
    if (b === null) { special.push(id); return; }
    if (b.length === 0) return;
    let n = root;
    for (const x of b) {
      let c = n.next.get(x);
      if (!c) { c = { next: new Map(), ids: [] }; n.next.set(x, c); }
      n = c;
    }
    n.ids.push(id);
  });
  t = { root, special };
  tries.set(table, t);
  return t;
}

// ---- the decoder-facing API ---------------------------------------------------------------------

export class JsonConstraint {
  private states: State[];
  private cand: Candidates;

  constructor(readonly root: SchemaNode, private readonly table: TokenTable) {
    this.states = [{ stack: frame({ t: "root", node: root, done: false }, null), ws: 0 }];
    if (minValue(root) === null) throw new ArgumentError("response_format: the schema has no finite value (a required property refers back to itself)");
    this.cand = createCandidates(Math.min(256, table.bytes.length));
  }

  /** The value is complete and nothing more may follow: generation ends here. */
  get complete(): boolean {
    return this.states.some((s) => s.stack.f.t === "root" && s.stack.f.done);
  }

  /** The value may end now (complete, or a number at the top level that could go on). */
  get canEnd(): boolean {
    return this.states.some((s) => {
      const f = s.stack.f;
      if (f.t === "root") return f.done;
      return f.t === "num" && s.stack.up?.f.t === "root" && (f.st === N.ZERO || f.st === N.INT || f.st === N.FRAC || f.st === N.EXP);
    });
  }

  /** Length in bytes of the shortest text that completes the value from here. */
  minCompletion(): string {
    return shortest(this.states.map(completion)) ?? "";
  }

  private feed(states: State[], bin: string): State[] {
    let cur = states;
    for (let i = 0; i < bin.length && cur.length; i++) {
      const next: State[] = [];
      const b = bin.charCodeAt(i);
      for (const st of cur) step(st, b, next);
      cur = next.length > MAX_STATES ? next.slice(0, MAX_STATES) : next;
    }
    return cur;
  }

  /** Can token `id` come next, with `budget` tokens left including this one? */
  allows(id: number, budget: number, isEog: boolean): boolean {
    if (isEog) return this.canEnd;
    const bin = this.table.bin[id];
    if (!bin) return false;
    const next = this.feed(this.states, bin);
    if (next.length === 0) return false;
    return next.some((st) => { const c = completion(st); return c !== null && c.length <= budget - 1; });
  }

  /**
   * The allowed tokens among the candidates, best logit first, at most `want` of them; `budget`
   * is the number of tokens that may still be generated (this one included).
   */
  allowedTokens(logits: Float32Array, want: number, budget: number, isEog: (id: number) => boolean): number[] {
    const out: number[] = [];
    const c = this.cand;
    selectTopK(logits, c.ids.length, c);
    for (let i = 0; i < c.n && out.length < want; i++) {
      const id = c.ids[i]!;
      if (this.allows(id, budget, isEog(id))) out.push(id);
    }
    if (out.length > 0) return out;
    const trie = tokenTrie(this.table);
    const cur = this.minCompletion();
    if (budget - cur.length <= 1) {
      // no slack left: the tokens that spell the start of the shortest completion
      const ok: number[] = [];
      let node: TrieNode | undefined = trie.root;
      for (let i = 0; i < cur.length && node; i++) {
        node = node.next.get(cur.charCodeAt(i));
        if (node) ok.push(...node.ids);
      }
      if (cur.length === 0 && this.canEnd) for (const id of trie.special) if (isEog(id)) ok.push(id);
      ok.sort((a, b) => logits[b]! - logits[a]! || a - b);
      return ok.slice(0, want);
    }
    // none among the best: walk the vocabulary's byte trie (pruned where no parse survives),
    // then keep the best of what is allowed
    const ok: number[] = [];
    const eog: number[] = [];
    for (const id of trie.special) if (isEog(id)) eog.push(id);
    if (this.canEnd) ok.push(...eog);
    const walk = (node: TrieNode, states: State[]) => {
      if (node.ids.length && states.some((st) => { const c = completion(st); return c !== null && c.length <= budget - 1; })) ok.push(...node.ids);
      for (const [b, child] of node.next) {
        const next: State[] = [];
        for (const st of states) step(st, b, next);
        if (next.length) walk(child, next.length > MAX_STATES ? next.slice(0, MAX_STATES) : next);
      }
    };
    walk(trie.root, this.states);
    ok.sort((a, b) => logits[b]! - logits[a]! || a - b);
    return ok.slice(0, want);
  }

  /** Advance over an accepted token (EOS/EOG: nothing to do). */
  accept(id: number): void {
    const bin = this.table.bin[id];
    if (!bin) return;
    const next = this.feed(this.states, bin);
    if (next.length) this.states = next;
  }
}
