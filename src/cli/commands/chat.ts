import { createInterface } from "node:readline";
import { renderChat, type ChatMessage } from "../../chat/template.js";
import { generate } from "../../generate.js";
import { CmxError } from "../../errors.js";
import { MODEL_HELP, MODEL_OPTIONS, SAMPLING_HELP, SAMPLING_OPTIONS, num, parse, samplingFrom } from "../args.js";
import { openModel } from "../session.js";

export const HELP = `cmx chat: talk with a model in the terminal

Usage: cmx chat [-m MODEL] [--system TEXT] [options]

The conversation is rendered with the model's chat template (tokenizer.chat_template; the
Mixtral-Instruct template when the file has none). Type a message and press Enter.
  /reset    start a new conversation
  /exit     leave (so does Ctrl-D)
  Ctrl-C    stops the answer being written; at the prompt, leaves

      --system TEXT         system message (put in front of the first user message)
  -p, --prompt TEXT         ask one question (\\n in TEXT is a line break), print the answer and exit

${MODEL_HELP}

${SAMPLING_HELP}
`;

export async function main(argv: string[]): Promise<void> {
  const { values } = parse(argv, { ...MODEL_OPTIONS, ...SAMPLING_OPTIONS, system: { type: "string" }, prompt: { type: "string", short: "p" } }, "chat");
  if (values.help) { process.stdout.write(HELP); return; }
  const sampling = samplingFrom(values);
  const nPredict = num(values["n-predict"], "n-predict", { int: true, min: -1 }) ?? 512;
  const m = openModel(values);
  const tok = m.tokenizer;
  const bos = tok.tokenToPiece(tok.vocab.bosId), eos = tok.tokenToPiece(tok.vocab.eosId);
  const system = values.system as string | undefined;
  let history: ChatMessage[] = system ? [{ role: "system", content: system }] : [];
  if (values.prompt !== undefined) {
    // one turn, no terminal interaction: the answer on stdout
    const text = String(values.prompt).replace(/\\n/g, "\n");
    history.push({ role: "user", content: text });
    const prompt = renderChat(history, { ...(m.chatTemplate ? { template: m.chatTemplate } : {}), bosToken: bos, eosToken: eos, addGenerationPrompt: true });
    const busyOne = new AbortController();
    process.on("SIGINT", () => busyOne.abort());
    await generate(m.ctx, tok, tok.encode(prompt, { addBos: false, parseSpecial: true }), {
      maxTokens: nPredict, sampling, signal: busyOne.signal, stop: values.stop as string[] | undefined, onText: (t) => process.stdout.write(t),
    });
    process.stdout.write("\n");
    return;
  }
  const tty = process.stdin.isTTY;
  const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: tty });
  let busy: AbortController | undefined;
  rl.on("SIGINT", () => {
    if (busy) busy.abort();
    else { process.stdout.write("\n"); rl.close(); }
  });
  process.on("SIGINT", () => { if (busy) busy.abort(); else rl.close(); });
  if (tty) process.stdout.write(`chatting with ${m.model.config.name} (${m.path}); /reset, /exit, Ctrl-C stops an answer\n`);
  const ask = () => { if (tty) rl.setPrompt("> "), rl.prompt(); };
  ask();
  for await (const line of rl) {
    const text = line.trim();
    if (text === "/exit") break;
    if (text === "/reset") {
      history = system ? [{ role: "system", content: system }] : [];
      m.ctx.truncate(0);
      process.stdout.write("(new conversation)\n");
      ask();
      continue;
    }
    if (!text) { ask(); continue; }
    history.push({ role: "user", content: text });
    try {
      const prompt = renderChat(history, { ...(m.chatTemplate ? { template: m.chatTemplate } : {}), bosToken: bos, eosToken: eos, addGenerationPrompt: true });
      const ids = tok.encode(prompt, { addBos: false, parseSpecial: true });
      busy = new AbortController();
      const r = await generate(m.ctx, tok, ids, {
        maxTokens: nPredict, sampling, signal: busy.signal, stop: values.stop as string[] | undefined,
        onText: (t) => process.stdout.write(t),
      });
      busy = undefined;
      process.stdout.write(r.finishReason === "abort" ? " [stopped]\n" : "\n");
      history.push({ role: "assistant", content: r.text.trim() });
    } catch (e) {
      busy = undefined;
      history.pop();
      if (e instanceof CmxError) process.stdout.write(`error: ${e.message}\n`);
      else throw e;
    }
    ask();
  }
  rl.close();
}
