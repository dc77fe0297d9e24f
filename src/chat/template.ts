/**
 * Chat prompt rendering with the model's Jinja chat template (tokenizer.chat_template in the
 * GGUF, chat_template in tokenizer_config.json), evaluated by @huggingface/jinja.
 *
 * Tokenizing the result: the templates emit the BOS token as *text* (Mixtral's starts with
 * `{{ bos_token }}`, so the prompt starts with "<s>"). Callers must tokenize the rendered prompt
 * with parseSpecial = true (so "<s>", "</s>", "[INST]"-style control tokens become their ids) and
 * addBos = false (the BOS is already there; adding another would give two). This yields the same
 * ids as llama.cpp, whose built-in llama2-family renderer omits the BOS text and tokenizes with
 * add_special = true instead.
 *
 * System messages: some templates (Mixtral-Instruct's among them) have no system role and raise
 * on one. For those, as llama.cpp does, a system message is merged into the next user message:
 * `system + "\n" + user`. Whether a template supports a system role is detected generically (see
 * `supportsSystemRole`), not by recognising particular templates.
 */
import { Template } from "@huggingface/jinja";
import { ArgumentError } from "../errors.js";

export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

export interface RenderChatOptions {
  /** Jinja template source; default MIXTRAL_INSTRUCT_TEMPLATE. */
  template?: string;
  /** Text of the BOS token, e.g. "<s>". */
  bosToken: string;
  /** Text of the EOS token, e.g. "</s>". */
  eosToken: string;
  /** End with the start of an assistant turn (templates that ignore it, like Mixtral's, end the same). */
  addGenerationPrompt: boolean;
}

/** The chat template of mistralai/Mixtral-8x7B-Instruct-v0.1 (original tokenizer_config.json). */
export const MIXTRAL_INSTRUCT_TEMPLATE =
  "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}" +
  "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}" +
  "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}" +
  "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}" +
  "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}";

const ROLES = new Set(["system", "user", "assistant"]);

interface Compiled {
  template: Template;
  systemRole?: boolean;
}

const compiledCache = new Map<string, Compiled>();
const CACHE_LIMIT = 16;

function compile(source: string): Compiled {
  let entry = compiledCache.get(source);
  if (entry) return entry;
  let template: Template;
  try {
    template = new Template(source);
  } catch (err) {
    throw new ArgumentError(`chat template: cannot parse the template: ${errorText(err)}`);
  }
  entry = { template };
  if (compiledCache.size >= CACHE_LIMIT) compiledCache.delete(compiledCache.keys().next().value as string);
  compiledCache.set(source, entry);
  return entry;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function run(compiled: Compiled, messages: ChatMessage[], opts: RenderChatOptions): string {
  return compiled.template.render({
    messages: messages.map((m) => ({ role: m.role, content: m.content })),
    bos_token: opts.bosToken,
    eos_token: opts.eosToken,
    add_generation_prompt: opts.addGenerationPrompt,
    // raise_exception(msg) is built into @huggingface/jinja (it throws an Error carrying msg) and
    // cannot be redefined; renderChat turns whatever the template throws into an ArgumentError.
  });
}

/**
 * Does the template render a system message? Probed, not guessed from the source: render
 * [system, user] with a marker as the system content; the role is supported when that succeeds
 * and the marker appears in the output. A template that raises on the role (Mixtral-Instruct) or
 * silently drops it does not support it. A plain substring test for "system" in the source would
 * get two common cases wrong: a generic ChatML loop (`'<|im_start|>' + message['role'] + ...`)
 * never spells "system" yet renders it natively, and a template may mention "system" only to
 * reject it. The result is cached per template source.
 */
export function supportsSystemRole(template: string = MIXTRAL_INSTRUCT_TEMPLATE): boolean {
  const compiled = compile(template);
  if (compiled.systemRole === undefined) {
    const marker = "\u0001cmx-system-probe\u0001";
    try {
      const out = run(compiled, [{ role: "system", content: marker }, { role: "user", content: "hi" }], {
        bosToken: "<s>", eosToken: "</s>", addGenerationPrompt: false,
      });
      compiled.systemRole = out.includes(marker);
    } catch {
      compiled.systemRole = false;
    }
  }
  return compiled.systemRole;
}

/**
 * Merge system messages into the following user message (`system + "\n" + user`, several system
 * messages joined by "\n"), for templates without a system role.
 */
export function mergeSystemMessages(messages: ChatMessage[]): ChatMessage[] {
  const out: ChatMessage[] = [];
  let pending: string[] = [];
  for (const m of messages) {
    if (m.role === "system") {
      pending.push(m.content);
      continue;
    }
    if (m.role === "user" && pending.length > 0) {
      out.push({ role: "user", content: pending.join("\n") + "\n" + m.content });
      pending = [];
      continue;
    }
    if (pending.length > 0) {
      throw new ArgumentError("chat: this template has no system role, and a system message must be followed by a user message to merge into");
    }
    out.push({ role: m.role, content: m.content });
  }
  if (pending.length > 0) {
    throw new ArgumentError("chat: this template has no system role, and a system message must be followed by a user message to merge into");
  }
  return out;
}

/** Render a conversation into prompt text (see the module comment for how to tokenize it). */
export function renderChat(messages: ChatMessage[], opts: RenderChatOptions): string {
  for (const [i, m] of messages.entries()) {
    if (!m || !ROLES.has(m.role)) {
      throw new ArgumentError(`chat: message ${i}: role must be "system", "user" or "assistant", got ${JSON.stringify(m?.role)}`);
    }
    if (typeof m.content !== "string") throw new ArgumentError(`chat: message ${i}: content must be a string`);
  }
  const source = opts.template ?? MIXTRAL_INSTRUCT_TEMPLATE;
  const compiled = compile(source);
  const hasSystem = messages.some((m) => m.role === "system");
  const input = hasSystem && !supportsSystemRole(source) ? mergeSystemMessages(messages) : messages;
  try {
    return run(compiled, input, opts);
  } catch (err) {
    // Both raise_exception(...) (e.g. "Conversation roles must alternate ...") and evaluation
    // errors (calling an undefined function, ...) end up here.
    throw new ArgumentError(`chat template error: ${errorText(err)}`);
  }
}
