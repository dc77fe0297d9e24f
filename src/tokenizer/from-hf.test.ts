import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadHfTokenizer, parseHfTokenizer } from "./from-hf.js";
import { loadSpmModel } from "./from-spm-model.js";
import { SpmTokenizer } from "./spm.js";
import { TokenType, type Vocab } from "./vocab.js";
import { FormatError, UnsupportedError } from "../errors.js";
import { haveReference } from "../test-util/paths.js";
import { loadChatRef, loadManifest, loadRefStrings, spmModelPath } from "./reference-data.js";

const skip = !haveReference();

/**
 * Builds the tokenizer.json a SentencePiece -> HF conversion produces: every split of a normal piece into
 * two pieces of the vocab is a merge, merges ordered by the merged piece's score (then id).
 */
function hfJsonFromSpm(v: Vocab, mergeFormat: "string" | "array"): object {
  const idOf = new Map<string, number>();
  v.tokens.forEach((p, i) => idOf.set(p, i));
  const merges: { l: string; r: string; score: number; id: number; li: number; ri: number }[] = [];
  v.tokens.forEach((p, id) => {
    if (v.types[id] !== TokenType.NORMAL) return;
    const chars = [...p];
    for (let k = 1; k < chars.length; k++) {
      const l = chars.slice(0, k).join("");
      const r = chars.slice(k).join("");
      const li = idOf.get(l);
      const ri = idOf.get(r);
      if (li !== undefined && ri !== undefined) merges.push({ l, r, score: v.scores[id]!, id, li, ri });
    }
  });
  merges.sort((a, b) => b.score - a.score || a.id - b.id || a.li - b.li || a.ri - b.ri);
  const vocab: Record<string, number> = {};
  v.tokens.forEach((p, i) => (vocab[p] = i));
  const special = [v.unkId, v.bosId, v.eosId];
  return {
    version: "1.0",
    added_tokens: special.map((id) => ({ id, content: v.tokens[id], single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: {
      type: "Sequence",
      normalizers: [
        { type: "Prepend", prepend: "\u2581" },
        { type: "Replace", pattern: { String: " " }, content: "\u2581" },
      ],
    },
    pre_tokenizer: null,
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
    },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: "<unk>",
      fuse_unk: true,
      byte_fallback: true,
      vocab,
      merges: merges.map((m) => (mergeFormat === "string" ? `${m.l} ${m.r}` : [m.l, m.r])),
    },
  };
}

test("HF tokenizer.json built from the SentencePiece vocab gives the same ids", { skip }, () => {
  const spm = loadSpmModel(spmModelPath());
  const dir = mkdtempSync(join(tmpdir(), "cmx-hf-"));
  const chat = loadChatRef();
  writeFileSync(join(dir, "tokenizer.json"), JSON.stringify(hfJsonFromSpm(spm, "string")));
  writeFileSync(
    join(dir, "tokenizer_config.json"),
    JSON.stringify({ add_bos_token: true, add_eos_token: false, bos_token: "<s>", eos_token: "</s>", unk_token: "<unk>", chat_template: chat.template }),
  );
  const { vocab, chatTemplate } = loadHfTokenizer(dir);
  assert.equal(chatTemplate, chat.template);
  assert.deepEqual(vocab.tokens, spm.tokens);
  assert.deepEqual(Array.from(vocab.types), Array.from(spm.types));
  assert.deepEqual([vocab.unkId, vocab.bosId, vocab.eosId, vocab.padId], [0, 1, 2, -1]);
  assert.deepEqual([vocab.addBos, vocab.addEos, vocab.addSpacePrefix, vocab.byteFallback], [true, false, true, true]);

  const t = new SpmTokenizer(vocab);
  for (const s of loadRefStrings()) {
    const L = s.llama_cpp;
    const why = `string ${s.index} ${JSON.stringify(s.text)}`;
    assert.deepEqual(t.encode(s.text, { addBos: false }), L.no_bos, `no_bos: ${why}`);
    assert.deepEqual(t.encode(s.text), L.bos, `bos: ${why}`);
    assert.deepEqual(t.encode(s.text, { parseSpecial: true }), L.bos_parse_special, `bos_parse_special: ${why}`);
    assert.deepEqual(t.encode(s.text, { parseSpecial: true }), L.llama_tokenize_cli, `llama_tokenize_cli: ${why}`);
    assert.equal(t.decode(L.no_bos), L.detokenized_no_bos, `decode: ${why}`);
  }
  for (const c of chat.conversations) {
    assert.deepEqual(t.encode(c.llama_chat_apply_template, { parseSpecial: true }), c.token_ids_bos_parse_special);
  }
  for (const [name, s] of Object.entries(loadManifest().sequences)) assert.deepEqual(t.encode(s.text), s.token_ids, name);
});

test("HF tokenizer.json: [a, b] merges, Metaspace, added tokens, config variants and errors", () => {
  const tok = (extra: object = {}, model: object = {}): Record<string, unknown> => ({
    added_tokens: [
      { id: 0, content: "<unk>", special: true },
      { id: 1, content: "<s>", special: true },
      { id: 2, content: "</s>", special: true },
      { id: 9, content: "<tool>", special: false },
    ],
    pre_tokenizer: { type: "Metaspace", replacement: "\u2581", prepend_scheme: "first", split: false },
    model: {
      type: "BPE",
      unk_token: "<unk>",
      byte_fallback: true,
      vocab: { "<unk>": 0, "<s>": 1, "</s>": 2, "<0x41>": 3, "\u2581": 4, a: 5, b: 6, ab: 7, "\u2581ab": 8 },
      merges: [["a", "b"], ["\u2581", "ab"]],
      ...model,
    },
    ...extra,
  });
  let { vocab, chatTemplate } = parseHfTokenizer(tok(), {
    bos_token: { content: "<s>", __type: "AddedToken" },
    add_bos_token: false,
    chat_template: [{ name: "tool_use", template: "T" }, { name: "default", template: "D" }],
  });
  assert.equal(chatTemplate, "D");
  assert.equal(vocab.tokens.length, 10);
  assert.deepEqual(Array.from(vocab.types), [2, 3, 3, 6, 1, 1, 1, 1, 1, 4]);
  assert.deepEqual([vocab.scores[7], vocab.scores[8]], [-0, -1]);
  assert.ok(vocab.scores[5]! < vocab.scores[8]!);
  assert.deepEqual([vocab.addBos, vocab.addSpacePrefix], [false, true]);
  const t = new SpmTokenizer(vocab);
  assert.deepEqual(t.encode("ab<tool>abA"), [8, 9, 8, 3]);

  // no config: BOS from the post-processor (none here -> default true), no space prefix without Metaspace/Prepend
  ({ vocab, chatTemplate } = parseHfTokenizer(tok({ pre_tokenizer: null }), undefined));
  assert.equal(chatTemplate, undefined);
  assert.deepEqual([vocab.addBos, vocab.addEos, vocab.addSpacePrefix], [true, false, false]);
  assert.deepEqual(new SpmTokenizer(vocab).encode("ab"), [1, 7]);
  ({ vocab } = parseHfTokenizer(tok({ pre_tokenizer: { type: "Metaspace", prepend_scheme: "never" } }), { add_eos_token: true }));
  assert.deepEqual([vocab.addEos, vocab.addSpacePrefix], [true, false]);

  // errors
  const fmt = (field: RegExp, f: () => unknown): void => {
    assert.throws(f, (e: unknown) => e instanceof FormatError && field.test(e.field));
  };
  fmt(/^model\.merges\[0\]$/, () => parseHfTokenizer(tok({}, { merges: ["a b c"] }), undefined));
  fmt(/^model\.merges\[1\]$/, () => parseHfTokenizer(tok({}, { merges: ["a b", "b a"] }), undefined));
  fmt(/^model\.vocab/, () => parseHfTokenizer(tok({}, { vocab: { a: -1 } }), undefined));
  fmt(/^model$/, () => parseHfTokenizer({}, undefined));
  fmt(/^added_tokens\[0\]$/, () => parseHfTokenizer(tok({ added_tokens: [{ id: "x" }] }), undefined));
  fmt(/^add_bos_token$/, () => parseHfTokenizer(tok(), { add_bos_token: "yes" }));
  assert.throws(() => parseHfTokenizer(tok({}, { type: "Unigram" }), undefined), UnsupportedError);

  const dir = mkdtempSync(join(tmpdir(), "cmx-hf-"));
  fmt(/^file$/, () => loadHfTokenizer(dir));
  writeFileSync(join(dir, "tokenizer.json"), "{ not json");
  assert.throws(() => loadHfTokenizer(dir), (e: unknown) => e instanceof FormatError && e.file === join(dir, "tokenizer.json") && e.field === "json");
  writeFileSync(join(dir, "tokenizer.json"), JSON.stringify(tok()));
  writeFileSync(join(dir, "chat_template.jinja"), "{{ messages }}");
  assert.equal(loadHfTokenizer(dir).chatTemplate, "{{ messages }}");
});
