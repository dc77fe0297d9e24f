/** Worker for `cmx quantize`: quantizes row blocks sent by the main thread. */
import { parentPort } from "node:worker_threads";
import { quantizeWeights } from "./index.js";
import type { GgmlType } from "./format.js";

parentPort!.on("message", (m: { id: number; type: GgmlType; x: Float32Array; nRows: number; nPerRow: number; importance?: Float32Array }) => {
  try {
    const out = quantizeWeights(m.type, m.x, m.nRows, m.nPerRow, m.importance);
    parentPort!.postMessage({ id: m.id, out }, [out.buffer as ArrayBuffer]);
  } catch (e) {
    parentPort!.postMessage({ id: m.id, error: (e as Error).message });
  }
});
