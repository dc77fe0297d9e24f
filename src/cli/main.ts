#!/usr/bin/env node
/** cmx: the chinese-mixtral command line. */
import { CmxError } from "../errors.js";

const COMMANDS: Record<string, { summary: string; load: () => Promise<{ main: (argv: string[]) => Promise<void> }> }> = {
  run: { summary: "continue a prompt and stream the text", load: () => import("./commands/run.js") },
  chat: { summary: "interactive multi-turn chat in the terminal", load: () => import("./commands/chat.js") },
  tokenize: { summary: "print the token ids of a text", load: () => import("./commands/tokenize.js") },
  logits: { summary: "write the logits after given tokens (float32)", load: () => import("./commands/logits.js") },
  perplexity: { summary: "perplexity on a text (llama-perplexity method), --sweep over context sizes", load: () => import("./commands/perplexity.js") },
  eval: { summary: "C-Eval, CMMLU, MMLU, LongBench as the seed measures them (local or --endpoint)", load: () => import("./commands/eval.js") },
  imatrix: { summary: "activation statistics for importance-matrix quantization (llama-imatrix)", load: () => import("./commands/imatrix.js") },
  quantize: { summary: "quantize a GGUF (Q8_0 ... Q2_K, K-quant mixes as llama-quantize)", load: () => import("./commands/quantize.js") },
  convert: { summary: "a Hugging Face Mixtral/Mistral/Llama folder to GGUF (as llama.cpp's converter)", load: () => import("./commands/convert.js") },
  export: { summary: "a GGUF to a Hugging Face folder (safetensors, config.json, tokenizer)", load: () => import("./commands/export.js") },
  "merge-lora": { summary: "merge a PEFT LoRA adapter into a base (HF folder or GGUF) -> GGUF or HF folder", load: () => import("./commands/merge-lora.js") },
  train: { summary: "continued pre-training / instruction tuning with LoRA, QLoRA or in full (PEFT adapters out)", load: () => import("./commands/train.js") },
  experts: { summary: "expert routing statistics per layer and heatmaps, compared across texts", load: () => import("./commands/experts.js") },
  serve: { summary: "OpenAI-compatible API server with a web chat page, many users at once", load: () => import("./commands/serve.js") },
  inspect: { summary: "show a GGUF's metadata, tensors and parameter counts", load: () => import("./commands/inspect.js") },
};

const USAGE = `cmx: run, chat with and inspect Mixtral-family mixture-of-experts models in plain Node.js

Usage: cmx <command> [options]     (cmx <command> --help for each)

Commands:
${Object.entries(COMMANDS).map(([k, v]) => `  ${k.padEnd(10)} ${v.summary}`).join("\n")}

Without -m, commands use the built-in default model.
`;

async function main(): Promise<number> {
  const [cmd, ...rest] = process.argv.slice(2);
  if (!cmd || cmd === "--help" || cmd === "-h" || cmd === "help") {
    process.stdout.write(USAGE);
    return cmd ? 0 : 1;
  }
  if (cmd === "--version" || cmd === "-v") {
    const { PACKAGE_ROOT } = await import("../model/default-model.js");
    const { readFileSync } = await import("node:fs");
    process.stdout.write(JSON.parse(readFileSync(`${PACKAGE_ROOT}/package.json`, "utf8")).version + "\n");
    return 0;
  }
  const c = COMMANDS[cmd];
  if (!c) {
    process.stderr.write(`cmx: unknown command "${cmd}"\n\n${USAGE}`);
    return 2;
  }
  try {
    await (await c.load()).main(rest);
    return 0;
  } catch (e) {
    if (e instanceof CmxError) {
      process.stderr.write(`cmx ${cmd}: error: ${e.message}\n`);
      return 1;
    }
    const err = e as NodeJS.ErrnoException;
    if (err?.code === "EPIPE") return 0;
    process.stderr.write(`cmx ${cmd}: internal error: ${err?.message ?? String(e)}\n`);
    if (process.env.CMX_DEBUG) process.stderr.write(`${err?.stack}\n`);
    else process.stderr.write("(set CMX_DEBUG=1 for the stack trace; please report this)\n");
    return 70;
  }
}

process.exitCode = await main();
