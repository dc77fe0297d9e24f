import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { renderChat, type ChatMessage } from "./template.js";
import { loadSpmModel } from "../tokenizer/from-spm-model.js";
import { SpmTokenizer } from "../tokenizer/spm.js";
import { haveReference, refPath } from "../test-util/paths.js";

test("rendered conversations tokenize to llama.cpp's ids (template from the GGUF and the fallback)", { skip: !haveReference() }, () => {
  const data = JSON.parse(readFileSync(refPath("tokenizer", "chat_template.json"), "utf8")) as {
    template: string; conversations: { messages: ChatMessage[]; add_assistant: boolean; token_ids_bos_parse_special: number[] }[];
  };
  const tok = new SpmTokenizer(loadSpmModel(refPath("tokenizer", "tokenizer.model.v1")));
  for (const c of data.conversations) {
    for (const template of [data.template, undefined]) {
      const text = renderChat(c.messages, { ...(template ? { template } : {}), bosToken: "<s>", eosToken: "</s>", addGenerationPrompt: c.add_assistant });
      assert.deepEqual(tok.encode(text, { addBos: false, parseSpecial: true }), c.token_ids_bos_parse_special);
    }
  }
});
