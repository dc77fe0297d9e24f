import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { SpmTokenizer } from "./spm.js";
import { loadSpmModel } from "./from-spm-model.js";
import { TokenType, bytePiece, type Vocab } from "./vocab.js";
import { ArgumentError } from "../errors.js";
import { haveReference, refPath } from "../test-util/paths.js";
import { loadChatRef, loadManifest, loadRefStrings, spmModelPath } from "./reference-data.js";

const skip = !haveReference();
let cached: SpmTokenizer | undefined;
function mistral(): SpmTokenizer {
  cached ??= new SpmTokenizer(loadSpmModel(spmModelPath()));
  return cached;
}

test("every reference string in every llama.cpp mode", { skip }, () => {
  const t = mistral();
  const strings = loadRefStrings();
  assert.equal(strings.length, 36);
  for (const s of strings) {
    assert.equal(Buffer.from(s.text, "utf8").toString("hex"), s.utf8_hex);
    const L = s.llama_cpp;
    const why = `string ${s.index} ${JSON.stringify(s.text)}`;
    assert.deepEqual(t.encode(s.text, { addBos: false }), L.no_bos, `no_bos: ${why}`);
    assert.deepEqual(t.encode(s.text), L.bos, `bos: ${why}`);
    assert.deepEqual(t.encode(s.text, { addBos: true, parseSpecial: true }), L.bos_parse_special, `bos_parse_special: ${why}`);
    // llama-tokenize's defaults: BOS + parse special
    assert.deepEqual(t.encode(s.text, { parseSpecial: true }), L.llama_tokenize_cli, `llama_tokenize_cli: ${why}`);
    // sentencepiece ids and pieces
    assert.deepEqual(t.encode(s.text, { addBos: false, addEos: false }), s.sentencepiece.ids, `sentencepiece: ${why}`);
    assert.deepEqual(s.sentencepiece.ids.map((id) => t.tokenToPiece(id)), s.sentencepiece.pieces, `pieces: ${why}`);
  }
});

test("decode matches llama_detokenize and sentencepiece decode", { skip }, () => {
  const t = mistral();
  for (const s of loadRefStrings()) {
    const L = s.llama_cpp;
    const why = `string ${s.index} ${JSON.stringify(s.text)}`;
    assert.equal(t.decode(L.no_bos), L.detokenized_no_bos, `detokenized_no_bos: ${why}`);
    assert.equal(t.decode(s.sentencepiece.ids), s.sentencepiece.decoded, `sentencepiece decode: ${why}`);
    // BOS is stripped with skipSpecial; the leading space after it is removed as sentencepiece does
    assert.equal(t.decode(L.bos, { skipSpecial: true }), s.sentencepiece.decoded, `bos decode: ${why}`);
    // round trip: the decoded text re-encodes to the same ids (the only lossy case is "▁" -> " ")
    assert.deepEqual(t.encode(t.decode(L.bos, { skipSpecial: true })), L.bos, `round trip: ${why}`);
  }
});

test("decode renders control tokens unless skipSpecial", { skip }, () => {
  const t = mistral();
  const ids = t.encode("<s>[INST] Hello [/INST]</s>", { addBos: false, parseSpecial: true });
  assert.deepEqual(ids.slice(0, 2), [1, 733]);
  assert.equal(t.decode(ids), "<s>[INST] Hello [/INST]</s>");
  assert.equal(t.decode(ids, { skipSpecial: true }), "[INST] Hello [/INST]");
  assert.equal(t.decode([0]), "<unk>");
  assert.equal(t.decode([0], { skipSpecial: true }), "");
  assert.equal(t.decode([]), "");
  assert.throws(() => t.decode([32000]), ArgumentError);
  assert.throws(() => t.tokenToPiece(-1), ArgumentError);
  assert.equal(t.tokenToPiece(13), "<0x0A>");
  assert.equal(t.tokenToPiece(22557), "\u2581Hello");
  assert.equal(t.nVocab, 32000);
  assert.ok(t.isEog(2));
  assert.ok(!t.isEog(1) && !t.isEog(22557));
});

test("chat template renderings tokenize to llama.cpp's ids (BOS + parse special)", { skip }, () => {
  const t = mistral();
  const chat = loadChatRef();
  assert.equal(chat.conversations.length, 4);
  for (const c of chat.conversations) {
    assert.deepEqual(t.encode(c.llama_chat_apply_template, { addBos: true, parseSpecial: true }), c.token_ids_bos_parse_special);
  }
  assert.equal(loadManifest().tokenizer["chat_template"], "tokenizer/chat_template.json");
});

test("manifest sequences and the perplexity text tokenize to llama.cpp's ids", { skip }, () => {
  const t = mistral();
  const seqs = loadManifest().sequences;
  assert.deepEqual(Object.keys(seqs).sort(), ["long", "medium", "short"]);
  for (const [name, s] of Object.entries(seqs)) {
    assert.deepEqual(t.encode(s.text), s.token_ids, name);
    assert.equal(t.decode(s.token_ids, { skipSpecial: true }), s.text, name);
  }
  const ppl = JSON.parse(readFileSync(refPath("perplexity", "perplexity.json"), "utf8")) as { token_ids: number[] };
  const text = readFileSync(refPath("inputs", "perplexity.txt"), "utf8");
  assert.deepEqual(t.encode(text), ppl.token_ids);
});

test("streaming decode holds multi-byte characters split across byte tokens", { skip }, () => {
  const t = mistral();
  const text = "𠀀𪚥龘齉鱻䲜"; // 4-byte and 3-byte characters, all byte-fallback tokens
  const ids = t.encode(text, { addBos: false });
  assert.ok(ids.filter((id) => t.vocab.types[id] === TokenType.BYTE).length >= 15);
  const d = t.createStreamDecoder({ stripLeadingSpace: true });
  const outs = ids.map((id) => d.push(id));
  assert.equal(outs.join("") + d.flush(), text);
  // a piece comes out only when a character is complete, never a replacement character
  for (const o of outs) assert.ok(!o.includes("\uFFFD"));
  const nonEmpty = outs.filter((o) => o.length > 0);
  assert.deepEqual(nonEmpty, [...text]);
  // ids[0] is "▁" (stripped), the first byte token (0xF0) alone gives nothing, the character comes with its 4th byte
  assert.equal(ids[0], t.pieceId("\u2581"));
  assert.deepEqual(outs.slice(0, 5), ["", "", "", "", "𠀀"]);

  // mixed text: the concatenation equals decode() for every reference string, with and without BOS
  for (const s of loadRefStrings()) {
    const withBos = t.createStreamDecoder({ skipSpecial: true });
    assert.equal(s.llama_cpp.bos.map((id) => withBos.push(id)).join("") + withBos.flush(), t.decode(s.llama_cpp.bos, { skipSpecial: true }));
    const noBos = t.createStreamDecoder({ stripLeadingSpace: true });
    assert.equal(s.llama_cpp.no_bos.map((id) => noBos.push(id)).join("") + noBos.flush(), s.llama_cpp.detokenized_no_bos);
  }
  // without BOS (generated tokens), leading spaces are kept
  const gen = t.createStreamDecoder();
  assert.equal([22557, 1526].map((id) => gen.push(id)).join(""), " Hello world");
  // an incomplete character at the end is flushed as U+FFFD
  const cut = t.createStreamDecoder();
  assert.equal(cut.push(t.pieceId(bytePiece(0xe4))!), "");
  assert.equal(cut.flush(), "\uFFFD");
  assert.equal(cut.push(22557), " Hello");
});

test("encoding 100 KB of text is fast", { skip }, () => {
  const t = mistral();
  const base = readFileSync(refPath("inputs", "perplexity.txt"), "utf8");
  const text = base.repeat(Math.ceil(100_000 / base.length)).slice(0, 100_000);
  const t0 = performance.now();
  const ids = t.encode(text);
  const ms = performance.now() - t0;
  assert.ok(ids.length > 10_000);
  assert.ok(ms < 2000, `took ${ms.toFixed(0)} ms`);
  assert.equal(t.decode(ids, { skipSpecial: true }), text);
});

// ---- a tiny hand-made vocabulary: runs without the reference data ----

function tinyVocab(): Vocab {
  const pieces: [string, number, number][] = [
    ["<unk>", 0, TokenType.UNKNOWN],
    ["<s>", 0, TokenType.CONTROL],
    ["</s>", 0, TokenType.CONTROL],
  ];
  for (let b = 0; b < 256; b++) pieces.push([bytePiece(b), 0, TokenType.BYTE]);
  const normal = ["▁a", "ab", "▁ab", "bc", "abc", "▁", "a", "b", "c", "é"];
  normal.forEach((p, i) => pieces.push([p, -i, TokenType.NORMAL]));
  pieces.push(["<tool>", 0, TokenType.USER_DEFINED]);
  return {
    tokens: pieces.map((p) => p[0]),
    scores: Float32Array.from(pieces.map((p) => p[1])),
    types: Int32Array.from(pieces.map((p) => p[2])),
    bosId: 1,
    eosId: 2,
    unkId: 0,
    padId: -1,
    addBos: true,
    addEos: false,
    addSpacePrefix: true,
  };
}

test("tiny vocab: score order, ties, byte fallback, user-defined and special tokens", () => {
  const v = tinyVocab();
  const t = new SpmTokenizer(v);
  const id = (p: string): number => t.pieceId(p)!;
  // "▁abc": ▁a (score 0) merges first, then ▁ab (-2) beats bc (-3)
  assert.deepEqual(t.encode("abc", { addBos: false }), [id("▁ab"), id("c")]);
  // without the space prefix: ab (-1) beats bc (-3), then abc (-4)
  assert.deepEqual(new SpmTokenizer({ ...v, addSpacePrefix: false }).encode("abc", { addBos: false }), [id("abc")]);
  // byte fallback for characters not in the vocab (UTF-8 bytes of "ж" = d0 b6)
  assert.deepEqual(t.encode("ж", { addBos: false }), [id("▁"), id("<0xD0>"), id("<0xB6>")]);
  assert.deepEqual(t.encode("é", { addBos: true, addEos: true }), [1, id("▁"), id("é"), 2]);
  // user-defined tokens are cut out even without parseSpecial; the next fragment gets the space prefix
  assert.deepEqual(t.encode("a<tool>a", { addBos: false }), [id("▁a"), id("<tool>"), id("▁a")]);
  // control tokens only with parseSpecial
  assert.deepEqual(t.encode("</s>", { addBos: false, parseSpecial: true }), [2]);
  assert.notDeepEqual(t.encode("</s>", { addBos: false }), [2]);
  assert.deepEqual(t.encode("", { addBos: false }), []);
  assert.deepEqual(t.encode(""), [1]);
  // (the space prefix added after <tool> comes back as a space)
  assert.equal(t.decode(t.encode("ab ж<tool>c")), "<s>ab ж<tool> c");
  assert.equal(t.decode(t.encode("ab ж<tool>c"), { skipSpecial: true }), "ab ж<tool> c");
  // invalid UTF-8 from byte tokens decodes to U+FFFD
  assert.equal(t.decode([id("<0xFF>"), id("a")]), "\uFFFDa");
  assert.throws(() => new SpmTokenizer({ ...v, scores: new Float32Array(3) }), ArgumentError);
  assert.throws(() => new SpmTokenizer({ ...v, bosId: -1 }).encode("a"), ArgumentError);
});

test("tiny vocab: equal scores merge the leftmost pair first", () => {
  const v = tinyVocab();
  // all whitespace pieces share one score, as in the Mistral vocab: runs of spaces grow from the left
  v.tokens.push("▁▁", "▁▁▁");
  v.scores = Float32Array.from([...v.scores, -100, -100]);
  v.types = Int32Array.from([...v.types, TokenType.NORMAL, TokenType.NORMAL]);
  const idx = v.tokens.indexOf("▁");
  v.scores[idx] = -100;
  const t = new SpmTokenizer(v);
  const id = (p: string): number => t.pieceId(p)!;
  assert.deepEqual(t.encode("   ", { addBos: false }), [id("▁▁▁"), id("▁")]);
  assert.deepEqual(t.encode("    ", { addBos: false }), [id("▁▁▁"), id("▁▁")]);
});

test("a byte-order-mark piece survives loading, decoding and streaming", { skip: !haveReference() }, () => {
  const tok = new SpmTokenizer(loadSpmModel(refPath("tokenizer", "tokenizer.model.v1")));
  const id = tok.vocab.tokens.indexOf("\uFEFF");
  assert.ok(id > 0, "the Mistral vocabulary has a U+FEFF piece");
  assert.equal(tok.decode([id]), "\uFEFF");
  const s = tok.createStreamDecoder();
  assert.equal(s.push(id) + s.flush(), "\uFEFF");
});
