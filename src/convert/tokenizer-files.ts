/**
 * Tokenizer files of a Hugging Face folder, both ways:
 *
 * - reading: tokenizer.model (SentencePiece, preferred, as llama.cpp's converter) or else
 *   tokenizer.json; tokenizer_config.json adds the chat template, add_bos/add_eos, the special
 *   tokens and added tokens beyond the SentencePiece vocabulary; the vocabulary is padded with
 *   unused "[PADi]" tokens up to config.json's vocab_size, as llama.cpp does;
 * - writing: tokenizer.model (a SentencePiece ModelProto), tokenizer.json (a byte-fallback BPE
 *   whose merges reproduce SentencePiece's choices), tokenizer_config.json (with the chat
 *   template) and special_tokens_map.json, from a Vocab.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { FormatError, ModelError } from "../errors.js";
import { loadHfTokenizer } from "../tokenizer/from-hf.js";
import { parseSpmModel } from "../tokenizer/from-spm-model.js";
import { SPACE_SYMBOL, TokenType, type Vocab } from "../tokenizer/vocab.js";

type Json = Record<string, unknown>;

function readJsonIf(path: string): Json | undefined {
  if (!existsSync(path)) return undefined;
  try {
    const v = JSON.parse(readFileSync(path, "utf8")) as unknown;
    if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Error("not a JSON object");
    return v as Json;
  } catch (e) {
    throw new FormatError(path, "json", (e as Error).message);
  }
}

function tokenText(x: unknown): string | undefined {
  if (typeof x === "string") return x;
  if (typeof x === "object" && x !== null && typeof (x as Json).content === "string") return (x as Json).content as string;
  return undefined;
}

function chatTemplateOf(cfg: Json | undefined, dir: string): string | undefined {
  const ct = cfg?.chat_template;
  if (typeof ct === "string") return ct;
  if (Array.isArray(ct)) {
    const named = ct.filter((x): x is { name: string; template: string } => typeof x === "object" && x !== null && typeof (x as Json).template === "string");
    const t = (named.find((x) => x.name === "default") ?? named[0])?.template;
    if (t !== undefined) return t;
  }
  const jinja = join(dir, "chat_template.jinja");
  return existsSync(jinja) ? readFileSync(jinja, "utf8") : undefined;
}

/**
 * The raw piece strings of a SentencePiece ModelProto (field 1, then each piece's field 1),
 * decoded keeping a leading U+FEFF: Mistral's vocabulary has a piece that is just a byte order
 * mark, which a default TextDecoder silently drops.
 */
export function spmPieceStrings(bytes: Uint8Array): string[] {
  const dec = new TextDecoder("utf-8", { ignoreBOM: true });
  const out: string[] = [];
  const varint = (b: Uint8Array, p: { i: number }): number => {
    let v = 0, mul = 1;
    for (;;) {
      const x = b[p.i++];
      if (x === undefined) return -1;
      v += (x & 0x7f) * mul;
      if (!(x & 0x80)) return v;
      mul *= 128;
    }
  };
  const skip = (b: Uint8Array, p: { i: number }, wire: number): boolean => {
    if (wire === 0) return varint(b, p) >= 0;
    if (wire === 1) { p.i += 8; return true; }
    if (wire === 5) { p.i += 4; return true; }
    if (wire === 2) { const n = varint(b, p); p.i += n; return n >= 0; }
    return false;
  };
  const p = { i: 0 };
  while (p.i < bytes.length) {
    const tag = varint(bytes, p);
    if (tag < 0) break;
    if (tag >>> 3 === 1 && (tag & 7) === 2) {
      const n = varint(bytes, p);
      const sub = bytes.subarray(p.i, p.i + n);
      p.i += n;
      const q = { i: 0 };
      let piece = "";
      while (q.i < sub.length) {
        const t = varint(sub, q);
        if (t >>> 3 === 1 && (t & 7) === 2) {
          const m = varint(sub, q);
          piece = dec.decode(sub.subarray(q.i, q.i + m));
          q.i += m;
        } else if (!skip(sub, q, t & 7)) break;
      }
      out.push(piece);
    } else if (!skip(bytes, p, tag & 7)) break;
  }
  return out;
}

/** loadSpmModel, keeping pieces that start with U+FEFF (see spmPieceStrings). */
export function readSpmModel(path: string): Vocab {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new FormatError(path, "file", `cannot read: ${(e as Error).message}`);
  }
  const v = parseSpmModel(bytes, path);
  const raw = spmPieceStrings(bytes);
  if (raw.length === v.tokens.length && raw.some((t, i) => t !== v.tokens[i])) v.tokens = raw;
  return v;
}

export interface FolderTokenizer {
  vocab: Vocab;
  chatTemplate?: string;
  /** which file the vocabulary came from */
  source: "tokenizer.model" | "tokenizer.json";
}

/** The tokenizer of a Hugging Face folder, padded to `nVocab` tokens when given. */
export function readFolderTokenizer(dir: string, nVocab?: number): FolderTokenizer {
  const cfgPath = join(dir, "tokenizer_config.json");
  const cfg = readJsonIf(cfgPath);
  let vocab: Vocab;
  let source: FolderTokenizer["source"];
  let chatTemplate: string | undefined;
  if (existsSync(join(dir, "tokenizer.model"))) {
    source = "tokenizer.model";
    vocab = readSpmModel(join(dir, "tokenizer.model"));
    chatTemplate = chatTemplateOf(cfg, dir);
    const tokens = [...vocab.tokens], types = Array.from(vocab.types), scores = Array.from(vocab.scores);
    const idOf = new Map(tokens.map((t, i) => [t, i]));
    // tokens added on top of the SentencePiece model (added_tokens.json, added_tokens_decoder)
    const add = (id: number, content: string, special: boolean) => {
      if (!Number.isInteger(id) || id < 0) throw new FormatError(cfgPath, "added_tokens_decoder", `bad token id ${id}`);
      while (tokens.length <= id) { tokens.push(`[PAD${tokens.length}]`); types.push(TokenType.UNUSED); scores.push(0); }
      if (id < vocab.tokens.length && types[id] !== TokenType.UNUSED) return; // the model's own piece
      tokens[id] = content;
      types[id] = special ? TokenType.CONTROL : TokenType.USER_DEFINED;
      scores[id] = 0;
      idOf.set(content, id);
    };
    const added = readJsonIf(join(dir, "added_tokens.json"));
    for (const [content, id] of Object.entries(added ?? {})) add(Number(id), content, true);
    const dec = cfg?.added_tokens_decoder;
    if (typeof dec === "object" && dec !== null) {
      for (const [id, t] of Object.entries(dec as Json)) {
        const c = tokenText(t);
        if (c !== undefined) add(Number(id), c, (t as Json).special === true);
      }
    }
    vocab = { ...vocab, tokens, types: Int32Array.from(types), scores: Float32Array.from(scores) };
    if (cfg) {
      const find = (x: unknown) => { const t = tokenText(x); return t === undefined ? undefined : idOf.get(t); };
      const bos = find(cfg.bos_token), eos = find(cfg.eos_token), unk = find(cfg.unk_token), pad = find(cfg.pad_token);
      if (bos !== undefined) vocab.bosId = bos;
      if (eos !== undefined) vocab.eosId = eos;
      if (unk !== undefined) vocab.unkId = unk;
      if (pad !== undefined) vocab.padId = pad;
      if (typeof cfg.add_bos_token === "boolean") vocab.addBos = cfg.add_bos_token;
      if (typeof cfg.add_eos_token === "boolean") vocab.addEos = cfg.add_eos_token;
    }
  } else if (existsSync(join(dir, "tokenizer.json"))) {
    source = "tokenizer.json";
    const t = loadHfTokenizer(dir);
    vocab = t.vocab;
    chatTemplate = t.chatTemplate;
  } else {
    throw new ModelError(`${dir}: no tokenizer.model or tokenizer.json: a GGUF needs the tokenizer`);
  }
  if (nVocab !== undefined) {
    if (vocab.tokens.length > nVocab) {
      throw new ModelError(`${dir}: the tokenizer (${source}) has ${vocab.tokens.length} tokens but config.json's vocab_size is ${nVocab}`);
    }
    if (vocab.tokens.length < nVocab) {
      const n0 = vocab.tokens.length;
      const tokens = [...vocab.tokens], types = new Int32Array(nVocab), scores = new Float32Array(nVocab);
      types.set(vocab.types);
      scores.set(vocab.scores);
      for (let i = n0; i < nVocab; i++) { tokens.push(`[PAD${i}]`); types[i] = TokenType.UNUSED; scores[i] = 0; }
      vocab = { ...vocab, tokens, types, scores };
    }
  }
  return chatTemplate === undefined ? { vocab, source } : { vocab, chatTemplate, source };
}

// ---- writing ----

class ProtoWriter {
  private parts: number[] = [];
  varint(v: bigint | number): void {
    let x = BigInt.asUintN(64, BigInt(v));
    do {
      let b = Number(x & 0x7fn);
      x >>= 7n;
      if (x) b |= 0x80;
      this.parts.push(b);
    } while (x);
  }
  tag(field: number, wire: number): void { this.varint((field << 3) | wire); }
  int(field: number, v: number): void { this.tag(field, 0); this.varint(v); }
  bool(field: number, v: boolean): void { this.int(field, v ? 1 : 0); }
  float(field: number, v: number): void {
    this.tag(field, 5);
    const b = Buffer.alloc(4);
    b.writeFloatLE(v);
    this.parts.push(...b);
  }
  bytes(field: number, b: Uint8Array): void {
    this.tag(field, 2);
    this.varint(b.length);
    for (const x of b) this.parts.push(x);
  }
  string(field: number, s: string): void { this.bytes(field, Buffer.from(s, "utf8")); }
  toBytes(): Uint8Array { return Uint8Array.from(this.parts); }
}

/**
 * A SentencePiece tokenizer.model (ModelProto) for a vocabulary: the pieces with scores and
 * types, trainer_spec (BPE, byte_fallback, special ids) and normalizer_spec (identity,
 * add_dummy_prefix, whitespace escaped), as in Llama/Mistral's models.
 */
export function spmModelBytes(v: Vocab): Uint8Array {
  const w = new ProtoWriter();
  v.tokens.forEach((t, i) => {
    const p = new ProtoWriter();
    p.string(1, t);
    p.float(2, v.scores[i]!);
    if (v.types[i] !== TokenType.NORMAL) p.int(3, v.types[i]!);
    w.bytes(1, p.toBytes());
  });
  const ts = new ProtoWriter();
  ts.int(3, 2); // model_type BPE
  ts.int(4, v.tokens.length); // vocab_size
  ts.bool(35, v.byteFallback ?? v.types.some((t) => t === TokenType.BYTE));
  ts.int(40, v.unkId);
  ts.int(41, v.bosId);
  ts.int(42, v.eosId);
  ts.int(43, v.padId);
  w.bytes(2, ts.toBytes());
  const ns = new ProtoWriter();
  ns.string(1, "identity");
  ns.bool(3, v.addSpacePrefix);
  ns.bool(4, false); // remove_extra_whitespaces
  ns.bool(5, true); // escape_whitespaces
  w.bytes(3, ns.toBytes());
  return w.toBytes();
}

/**
 * BPE merges equivalent to SentencePiece BPE: every split of a normal piece into two pieces of
 * the vocabulary, ordered by the merged piece's score (highest first; SentencePiece merges the
 * adjacent pair whose result scores highest, Hugging Face BPE the pair of lowest rank).
 */
export function mergesFromScores(v: Vocab): [string, string][] {
  const idOf = new Map<string, number>();
  v.tokens.forEach((t, i) => { if (v.types[i] === TokenType.NORMAL && !idOf.has(t)) idOf.set(t, i); });
  const found: { a: string; b: string; p: number; ia: number; ib: number }[] = [];
  v.tokens.forEach((t, p) => {
    if (v.types[p] !== TokenType.NORMAL) return;
    const cps = Array.from(t);
    if (cps.length < 2) return;
    for (let k = 1; k < cps.length; k++) {
      const a = cps.slice(0, k).join(""), b = cps.slice(k).join("");
      const ia = idOf.get(a), ib = idOf.get(b);
      if (ia !== undefined && ib !== undefined) found.push({ a, b, p, ia, ib });
    }
  });
  found.sort((x, y) => (v.scores[y.p]! - v.scores[x.p]!) || (x.p - y.p) || (x.ia - y.ia) || (x.ib - y.ib));
  return found.map((m) => [m.a, m.b]);
}

function addedToken(id: number, content: string, special: boolean) {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: !special, special };
}

/** A Hugging Face tokenizer.json (byte-fallback BPE, Llama-style normalizer and decoder). */
export function tokenizerJson(v: Vocab): Record<string, unknown> {
  const vocabObj: Record<string, number> = Object.create(null) as Record<string, number>;
  v.tokens.forEach((t, i) => { if (!(t in vocabObj)) vocabObj[t] = i; });
  const added = v.tokens.flatMap((t, i) => {
    const ty = v.types[i];
    if (ty === TokenType.CONTROL || ty === TokenType.UNKNOWN) return [addedToken(i, t, true)];
    if (ty === TokenType.USER_DEFINED) return [addedToken(i, t, false)];
    return [];
  });
  const bos = v.bosId >= 0 ? v.tokens[v.bosId]! : undefined;
  const eos = v.eosId >= 0 ? v.tokens[v.eosId]! : undefined;
  const special = (t: string, id: number) => ({ [t]: { id: t, ids: [id], tokens: [t] } });
  const seq = (x: string) => ({ Sequence: { id: x, type_id: 0 } });
  const sp = (t: string) => ({ SpecialToken: { id: t, type_id: 0 } });
  const pre = [...(v.addBos && bos ? [sp(bos)] : [])];
  const post = [...(v.addEos && eos ? [sp(eos)] : [])];
  const replaceSpace = { type: "Replace", pattern: { String: " " }, content: SPACE_SYMBOL };
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: v.addSpacePrefix
      ? { type: "Sequence", normalizers: [{ type: "Prepend", prepend: SPACE_SYMBOL }, replaceSpace] }
      : replaceSpace,
    pre_tokenizer: null,
    post_processor: {
      type: "TemplateProcessing",
      single: [...pre, seq("A"), ...post],
      pair: [...pre, seq("A"), ...pre, seq("B"), ...post],
      special_tokens: {
        ...(v.addBos && bos ? special(bos, v.bosId) : {}),
        ...(v.addEos && eos ? special(eos, v.eosId) : {}),
      },
    },
    decoder: {
      type: "Sequence",
      decoders: [
        { type: "Replace", pattern: { String: SPACE_SYMBOL }, content: " " },
        { type: "ByteFallback" },
        { type: "Fuse" },
        ...(v.addSpacePrefix ? [{ type: "Strip", content: " ", start: 1, stop: 0 }] : []),
      ],
    },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: v.unkId >= 0 ? v.tokens[v.unkId] : null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: v.byteFallback ?? v.types.some((t) => t === TokenType.BYTE),
      ignore_merges: false,
      vocab: vocabObj,
      merges: mergesFromScores(v),
    },
  };
}

/** tokenizer_config.json for a Llama-style SentencePiece tokenizer (with the chat template). */
export function tokenizerConfigJson(v: Vocab, chatTemplate: string | undefined, maxLength: number): Record<string, unknown> {
  const tok = (id: number) => (id >= 0 ? v.tokens[id] : null);
  const decoder: Record<string, unknown> = {};
  v.tokens.forEach((t, i) => {
    const ty = v.types[i];
    if (ty === TokenType.CONTROL || ty === TokenType.UNKNOWN || ty === TokenType.USER_DEFINED) {
      const { id: _id, ...rest } = addedToken(i, t, ty !== TokenType.USER_DEFINED);
      decoder[String(i)] = rest;
    }
  });
  return {
    add_bos_token: v.addBos,
    add_eos_token: v.addEos,
    added_tokens_decoder: decoder,
    bos_token: tok(v.bosId),
    eos_token: tok(v.eosId),
    unk_token: tok(v.unkId),
    pad_token: tok(v.padId),
    clean_up_tokenization_spaces: false,
    legacy: true,
    model_max_length: maxLength,
    sp_model_kwargs: {},
    spaces_between_special_tokens: false,
    tokenizer_class: "LlamaTokenizer",
    use_default_system_prompt: false,
    ...(chatTemplate !== undefined ? { chat_template: chatTemplate } : {}),
  };
}

export function specialTokensMapJson(v: Vocab): Record<string, string> {
  const m: Record<string, string> = {};
  if (v.bosId >= 0) m.bos_token = v.tokens[v.bosId]!;
  if (v.eosId >= 0) m.eos_token = v.tokens[v.eosId]!;
  if (v.unkId >= 0) m.unk_token = v.tokens[v.unkId]!;
  if (v.padId >= 0) m.pad_token = v.tokens[v.padId]!;
  return m;
}
