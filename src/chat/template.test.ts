import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { ArgumentError, CmxError } from "../errors.js";
import { refPath } from "../test-util/paths.js";
import { MIXTRAL_INSTRUCT_TEMPLATE, mergeSystemMessages, renderChat, supportsSystemRole, type ChatMessage } from "./template.js";

const TEMPLATE_JSON = refPath("tokenizer", "chat_template.json");
const haveTemplateRef = existsSync(TEMPLATE_JSON);

interface RefConversation {
  messages: ChatMessage[];
  add_assistant: boolean;
  llama_chat_apply_template: string;
}

const MIXTRAL = { bosToken: "<s>", eosToken: "</s>" };

test("MIXTRAL_INSTRUCT_TEMPLATE is the reference template", { skip: !haveTemplateRef && "reference folder absent" }, () => {
  const ref = JSON.parse(readFileSync(TEMPLATE_JSON, "utf8")) as { template: string };
  assert.equal(MIXTRAL_INSTRUCT_TEMPLATE, ref.template);
});

test("renderChat = '<s>' + llama_chat_apply_template for the reference conversations", { skip: !haveTemplateRef && "reference folder absent" }, () => {
  const ref = JSON.parse(readFileSync(TEMPLATE_JSON, "utf8")) as { template: string; conversations: RefConversation[] };
  assert.ok(ref.conversations.length >= 4);
  for (const conv of ref.conversations) {
    // llama.cpp's add_assistant is our addGenerationPrompt. The Mixtral template ignores
    // add_generation_prompt (a user turn already ends with "[/INST]"), so both values must give
    // the reference text, and the conversation that ends with an assistant turn was rendered
    // with add_assistant = false.
    for (const addGenerationPrompt of [conv.add_assistant, !conv.add_assistant]) {
      const text = renderChat(conv.messages, { ...MIXTRAL, addGenerationPrompt });
      assert.equal(text, "<s>" + conv.llama_chat_apply_template, JSON.stringify(conv.messages));
      // the explicit template gives the same
      assert.equal(renderChat(conv.messages, { ...MIXTRAL, template: ref.template, addGenerationPrompt }), text);
    }
  }
});

test("Mixtral: system message merged into the first user message", () => {
  assert.equal(supportsSystemRole(MIXTRAL_INSTRUCT_TEMPLATE), false);
  const text = renderChat(
    [
      { role: "system", content: "Be brief." },
      { role: "user", content: "Hi" },
      { role: "assistant", content: "Hello" },
      { role: "user", content: "Bye" },
    ],
    { ...MIXTRAL, addGenerationPrompt: true },
  );
  assert.equal(text, "<s>[INST] Be brief.\nHi [/INST]Hello</s>[INST] Bye [/INST]");
  assert.deepEqual(
    mergeSystemMessages([{ role: "system", content: "a" }, { role: "system", content: "b" }, { role: "user", content: "u" }]),
    [{ role: "user", content: "a\nb\nu" }],
  );
  assert.throws(() => mergeSystemMessages([{ role: "user", content: "u" }, { role: "system", content: "s" }]), ArgumentError);
});

test("template errors become ArgumentErrors with a clear message", () => {
  // raise_exception: roles must alternate
  assert.throws(
    () => renderChat([{ role: "user", content: "a" }, { role: "user", content: "b" }], { ...MIXTRAL, addGenerationPrompt: true }),
    (err: unknown) => err instanceof ArgumentError && err instanceof CmxError && /Conversation roles must alternate/.test(err.message),
  );
  // syntax error
  assert.throws(
    () => renderChat([{ role: "user", content: "a" }], { ...MIXTRAL, template: "{% for m in messages %}{{ m.content }", addGenerationPrompt: true }),
    (err: unknown) => err instanceof ArgumentError && /cannot parse/.test(err.message),
  );
  // runtime error other than raise_exception
  assert.throws(
    () => renderChat([{ role: "user", content: "a" }], { ...MIXTRAL, template: "{{ messages[0].content.nope() }}", addGenerationPrompt: true }),
    ArgumentError,
  );
  // bad roles are rejected before rendering
  assert.throws(
    () => renderChat([{ role: "tool" as "user", content: "a" }], { ...MIXTRAL, addGenerationPrompt: true }),
    ArgumentError,
  );
});

const CHATML =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

test("a template with system support renders the system message natively", () => {
  assert.equal(supportsSystemRole(CHATML), true);
  const messages: ChatMessage[] = [
    { role: "system", content: "You are helpful." },
    { role: "user", content: "Hi" },
  ];
  const opts = { bosToken: "<s>", eosToken: "<|im_end|>", template: CHATML };
  assert.equal(
    renderChat(messages, { ...opts, addGenerationPrompt: true }),
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
  );
  assert.equal(
    renderChat(messages, { ...opts, addGenerationPrompt: false }),
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n",
  );
  // a template that names the system role explicitly
  const explicit = "{{ bos_token }}{% for m in messages %}{% if m.role == 'system' %}<<SYS>>{{ m.content }}<</SYS>>{% else %}{{ m.role }}: {{ m.content }}\n{% endif %}{% endfor %}";
  assert.equal(renderChat(messages, { ...MIXTRAL, template: explicit, addGenerationPrompt: false }), "<s><<SYS>>You are helpful.<</SYS>>user: Hi\n");
  // a template that silently ignores the role counts as unsupported: the text is merged instead of lost
  const dropping = "{% for m in messages %}{% if m.role == 'user' %}U:{{ m.content }}{% elif m.role == 'assistant' %}A:{{ m.content }}{% endif %}{% endfor %}";
  assert.equal(supportsSystemRole(dropping), false);
  assert.equal(renderChat(messages, { ...MIXTRAL, template: dropping, addGenerationPrompt: false }), "U:You are helpful.\nHi");
});
