/** Helpers for the server tests: the small model they run on, and SSE reading with fetch. */
import { defaultModelPath } from "../model/default-model.js";
import { modelPath } from "../test-util/reference.js";

/** The reference model B (4 layers, real chat template) when shared/ has it, else the built-in model. */
export function testModelPath(): string {
  return modelPath("B-Q4_K_M") ?? defaultModelPath();
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
