/** Helpers for the server tests: the small model they run on, and SSE reading with fetch. */
import { existsSync, mkdirSync, renameSync } from "node:fs";
import { join } from "node:path";
import { TOKENIZER_V1 } from "../model/default-model.js";
import { writeSyntheticModel } from "../model/synthetic.js";
import { GgmlType } from "../quant/format.js";
import { modelPath } from "../test-util/reference.js";
import { REPO_ROOT } from "../test-util/paths.js";
import { loadSpmModel } from "../tokenizer/from-spm-model.js";

/**
 * The reference model B (4 layers, real chat template) when shared/ has it, else a small
 * random-weight Mixtral with the real vocabulary, generated once from a fixed seed. Not the
 * built-in model: these tests need answers that run to max_tokens (a stream to stop, slots that
 * stay busy), and a trained model ends its answers early.
 */
export function testModelPath(): string {
  const ref = modelPath("B-Q4_K_M");
  if (ref) return ref;
  const dir = join(REPO_ROOT, "build", "test-models");
  const p = join(dir, "tiny-random-mixtral.gguf");
  if (!existsSync(p)) {
    mkdirSync(dir, { recursive: true });
    // test files run in parallel processes: write aside, then rename (atomic)
    const tmp = `${p}.${process.pid}.tmp`;
    writeSyntheticModel(tmp, {
      name: "tiny-random-mixtral", nEmbd: 64, nLayer: 2, nHead: 4, nHeadKv: 2, nExpert: 4, nExpertUsed: 2,
      nFf: 128, nCtx: 2048, seed: 20240101, type: GgmlType.Q8_0,
    }, loadSpmModel(TOKENIZER_V1));
    renameSync(tmp, p);
  }
  return p;
}

/** Read a fetch Response as server-sent events; calls onData with each parsed `data:` payload. */
export async function readSse(res: Response, onData: (data: unknown) => void | "stop"): Promise<void> {
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += dec.decode(value, { stream: true });
    let i: number;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const event = buf.slice(0, i);
      buf = buf.slice(i + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data: ")) continue;
        const payload = line.slice(6);
        const r = onData(payload === "[DONE]" ? "[DONE]" : JSON.parse(payload));
        if (r === "stop") { await reader.cancel(); return; }
      }
    }
  }
}
