/**
 * Loads a Hugging Face tokenizer folder (tokenizer.json with a byte-fallback "BPE" model, as shipped
 * for Llama / Mistral, plus tokenizer_config.json when present) into a SentencePiece-style Vocab.
 *
 * SentencePiece BPE merges the adjacent pair whose *merged piece* has the highest score, while HF BPE
 * applies the merge with the lowest rank. HF merge lists of SentencePiece models are ordered by the
 * score of the merged piece, so giving every piece the score -(rank of the first merge that produces
 * it) makes the SentencePiece algorithm pick the same merges.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { FormatError, UnsupportedError } from "../errors.js";
import { SPACE_SYMBOL, TokenType, parseBytePiece, type Vocab } from "./vocab.js";

type Json = unknown;

function isObj(x: Json): x is Record<string, Json> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function readJson(path: string): Json {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new FormatError(path, "file", `cannot read: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text) as Json;
  } catch (e) {
    throw new FormatError(path, "json", (e as Error).message);
  }
}

/** "<s>" or {"content": "<s>", ...} -> "<s>". */
function tokenText(x: Json): string | undefined {
  if (typeof x === "string") return x;
  if (isObj(x) && typeof x.content === "string") return x.content;
  return undefined;
}

/** Whether the normalizer / pre-tokenizer prepends "▁" (SentencePiece add_dummy_prefix). */
function detectSpacePrefix(tok: Record<string, Json>): boolean {
  const walk = (n: Json): boolean | undefined => {
    if (!isObj(n)) return undefined;
    if (n.type === "Sequence") {
      const list = (n.normalizers ?? n.pretokenizers) as Json;
      if (Array.isArray(list)) {
        for (const c of list) {
          const r = walk(c);
          if (r !== undefined) return r;
        }
      }
      return undefined;
    }
    if (n.type === "Prepend") return n.prepend === SPACE_SYMBOL;
    if (n.type === "Metaspace") {
      if (n.prepend_scheme === "never") return false;
      if (typeof n.prepend_scheme === "string") return true;
      return n.add_prefix_space !== false;
    }
    return undefined;
  };
  return walk(tok.normalizer) ?? walk(tok.pre_tokenizer) ?? false;
}

/** Whether a TemplateProcessing post-processor puts `bos` before a single sequence. */
function templateAddsBos(tok: Record<string, Json>, bos: string | undefined): boolean | undefined {
  const pp = tok.post_processor;
  if (!isObj(pp) || bos === undefined) return undefined;
  const procs = pp.type === "Sequence" && Array.isArray(pp.processors) ? pp.processors : [pp];
  for (const p of procs) {
    if (isObj(p) && p.type === "TemplateProcessing" && Array.isArray(p.single)) {
      return p.single.some((e) => isObj(e) && isObj(e.SpecialToken) && e.SpecialToken.id === bos);
    }
  }
  return undefined;
}

export interface HfTokenizer {
  vocab: Vocab;
  chatTemplate?: string;
}

/** Parses tokenizer.json (+ optional tokenizer_config.json) contents; names are for error messages. */
export function parseHfTokenizer(
  tokJson: Json,
  configJson: Json | undefined,
  fileName = "tokenizer.json",
  configName = "tokenizer_config.json",
): HfTokenizer {
  const fail = (field: string, msg: string): never => {
    throw new FormatError(fileName, field, msg);
  };
  if (!isObj(tokJson)) fail("(root)", "not a JSON object");
  const tok = tokJson as Record<string, Json>;
  const model = tok.model;
  if (!isObj(model)) return fail("model", "missing");
  if (model.type !== "BPE") {
    throw new UnsupportedError(`${fileName}: model.type ${JSON.stringify(model.type)} is not supported (only byte-fallback BPE)`);
  }
  const vocabObj = model.vocab;
  if (!isObj(vocabObj)) return fail("model.vocab", "missing or not an object");
  const byteFallback = model.byte_fallback === true;

  // ids
  let n = 0;
  const idOf = new Map<string, number>();
  const byId: (string | undefined)[] = [];
  for (const [piece, idv] of Object.entries(vocabObj)) {
    if (typeof idv !== "number" || !Number.isInteger(idv) || idv < 0 || idv > 0x7fffffff) {
      fail(`model.vocab[${JSON.stringify(piece)}]`, `bad id ${JSON.stringify(idv)}`);
    }
    const id = idv as number;
    byId[id] = piece;
    idOf.set(piece, id);
    n = Math.max(n, id + 1);
  }
  const added: { id: number; content: string; special: boolean }[] = [];
  if (tok.added_tokens !== undefined && tok.added_tokens !== null) {
    if (!Array.isArray(tok.added_tokens)) fail("added_tokens", "not an array");
    (tok.added_tokens as Json[]).forEach((a, i) => {
      if (!isObj(a) || typeof a.id !== "number" || !Number.isInteger(a.id) || a.id < 0 || typeof a.content !== "string") {
        fail(`added_tokens[${i}]`, "needs an integer id and a string content");
      }
      const t = a as { id: number; content: string; special?: unknown };
      added.push({ id: t.id, content: t.content, special: t.special === true });
      byId[t.id] = t.content;
      idOf.set(t.content, t.id);
      n = Math.max(n, t.id + 1);
    });
  }
  if (n === 0) fail("model.vocab", "empty");

  const tokens: string[] = new Array(n);
  const types = new Int32Array(n);
  const scores = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const p = byId[i];
    tokens[i] = p ?? `[PAD${i}]`;
    types[i] = p === undefined ? TokenType.UNUSED : TokenType.NORMAL;
  }

  // merges: "a b" strings or [a, b] pairs; score of a piece = -(rank of its first merge)
  const merges = model.merges ?? [];
  if (!Array.isArray(merges)) return fail("model.merges", "not an array");
  const bestRank = new Int32Array(n).fill(-1);
  merges.forEach((m: Json, rank: number) => {
    let a: Json, b: Json;
    if (typeof m === "string") {
      const sp = m.indexOf(" ");
      if (sp <= 0 || m.indexOf(" ", sp + 1) >= 0) fail(`model.merges[${rank}]`, `bad merge ${JSON.stringify(m)}`);
      a = m.slice(0, sp);
      b = m.slice(sp + 1);
    } else if (Array.isArray(m) && m.length === 2) {
      [a, b] = m;
    } else {
      return fail(`model.merges[${rank}]`, `bad merge ${JSON.stringify(m)}`);
    }
    if (typeof a !== "string" || typeof b !== "string") return fail(`model.merges[${rank}]`, "not two strings");
    const id = idOf.get(a + b);
    if (id === undefined) return fail(`model.merges[${rank}]`, `${JSON.stringify(a + b)} is not in the vocab`);
    if (bestRank[id] === -1) bestRank[id] = rank;
  });
  const nMerges = merges.length;

  const unkText = tokenText(model.unk_token);
  for (let i = 0; i < n; i++) {
    if (types[i] === TokenType.UNUSED) continue;
    const p = tokens[i]!;
    if (byteFallback && parseBytePiece(p) >= 0) {
      types[i] = TokenType.BYTE;
    } else if (bestRank[i]! >= 0) {
      scores[i] = -bestRank[i]!;
    } else {
      // not produced by any merge (single characters): below every merged piece
      scores[i] = -(nMerges + i);
    }
  }
  for (const a of added) {
    types[a.id] = a.special ? TokenType.CONTROL : TokenType.USER_DEFINED;
    scores[a.id] = 0;
  }

  // tokenizer_config.json
  const cfg = isObj(configJson) ? configJson : {};
  const find = (text: string | undefined): number => (text === undefined ? -1 : (idOf.get(text) ?? -1));
  const bosText = tokenText(cfg.bos_token) ?? (idOf.has("<s>") ? "<s>" : undefined);
  const eosText = tokenText(cfg.eos_token) ?? (idOf.has("</s>") ? "</s>" : undefined);
  const unkId = find(tokenText(cfg.unk_token) ?? unkText);
  const bosId = find(bosText);
  const eosId = find(eosText);
  const padId = find(tokenText(cfg.pad_token));
  if (unkId >= 0) {
    types[unkId] = TokenType.UNKNOWN;
    scores[unkId] = 0;
  }
  const boolCfg = (k: string): boolean | undefined => {
    const v = cfg[k];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "boolean") throw new FormatError(configName, k, `expected a boolean, got ${JSON.stringify(v)}`);
    return v;
  };
  const addBos = (boolCfg("add_bos_token") ?? templateAddsBos(tok, bosText) ?? true) && bosId >= 0;
  const addEos = (boolCfg("add_eos_token") ?? false) && eosId >= 0;

  let chatTemplate: string | undefined;
  const ct = cfg.chat_template;
  if (typeof ct === "string") chatTemplate = ct;
  else if (Array.isArray(ct)) {
    const named = ct.filter((x): x is { name: string; template: string } => isObj(x) && typeof x.template === "string");
    chatTemplate = (named.find((x) => x.name === "default") ?? named[0])?.template;
  } else if (ct !== undefined && ct !== null) {
    throw new FormatError(configName, "chat_template", "expected a string or a list of {name, template}");
  }

  const vocab: Vocab = {
    tokens,
    scores,
    types,
    bosId,
    eosId,
    unkId,
    padId,
    addBos,
    addEos,
    addSpacePrefix: detectSpacePrefix(tok),
    byteFallback,
  };
  return chatTemplate === undefined ? { vocab } : { vocab, chatTemplate };
}

/** Loads dir/tokenizer.json and, when present, dir/tokenizer_config.json (and dir/chat_template.jinja). */
export function loadHfTokenizer(dir: string): HfTokenizer {
  const tokPath = join(dir, "tokenizer.json");
  const cfgPath = join(dir, "tokenizer_config.json");
  const cfg = existsSync(cfgPath) ? readJson(cfgPath) : undefined;
  const out = parseHfTokenizer(readJson(tokPath), cfg, tokPath, cfgPath);
  const jinja = join(dir, "chat_template.jinja");
  if (out.chatTemplate === undefined && existsSync(jinja)) out.chatTemplate = readFileSync(jinja, "utf8");
  return out;
}
