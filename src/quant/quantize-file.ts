/**
 * Quantize a GGUF file to another file type: every tensor gets the type the recipe chooses
 * (quantize-model.ts); tensors already of that type are copied; the others are dequantized to
 * float32 and quantized with the reference quantizers (with an importance matrix where one is
 * given and the type's quantizer uses it), rows split across worker threads. The output is written
 * to a temporary file and renamed when complete.
 */
import { basename } from "node:path";
import { Worker } from "node:worker_threads";
import { ArgumentError, UnsupportedError } from "../errors.js";
import { GgufReader } from "../io/gguf/reader.js";
import type { GgufTensorInfo } from "../io/gguf/types.js";
import { gv, writeGgufAsync } from "../io/gguf/writer.js";
import { importanceOf, type Imatrix } from "../io/imatrix.js";
import { configFromGguf } from "../model/config.js";
import { GgmlType, blockFormat, typeName } from "./format.js";
import { canQuantizeWeights, dequantize, quantizeWeights, usesImportance } from "./index.js";
import { FILE_TYPES, FTYPE, Recipe, requiresImatrix, type FileTypeName } from "./quantize-model.js";

export interface QuantizeOptions {
  pure?: boolean;
  threads?: number;
  onTensor?: (i: number, n: number, name: string, from: GgmlType, to: GgmlType) => void;
  /**
   * Importance per column by tensor name (an imatrix): dims[0] floats, or dims[0] per matrix for a
   * stacked expert tensor ([nPerRow, nRows, nExpert]: one row of importance per expert). Used by the
   * quantizers that take one (usesImportance); llama-quantize's rule applies: IQ3_XXS, IQ2_XS and
   * IQ2_XXS tensors other than token_embd/output require one.
   */
  imatrix?: ReadonlyMap<string, Float32Array>;
  /**
   * Tests only: quantize the tensors that require an importance matrix without one (the IQ2/IQ3
   * quantizers then weight by x², ggml's fallback), instead of failing as llama-quantize does.
   */
  allowMissingImatrix?: boolean;
  /** where the imatrix came from, recorded in the output as llama-quantize does (quantize.imatrix.*) */
  imatrixInfo?: { file: string; dataset?: string; entries: number; chunks: number };
}

/**
 * The importance map of QuantizeOptions.imatrix from an imatrix file (cmx imatrix, llama-imatrix)
 * for a file's tensors: Σx²/count per column (per expert for stacked tensors), and for the older
 * per-expert layout (blk.N.ffn_gate.E.weight) expert E's slice of the stacked entry. An entry that
 * does not fit its tensor (an imatrix of another model) is an error naming both sizes.
 */
export function importanceMap(m: Imatrix, tensors: readonly Pick<GgufTensorInfo, "name" | "dims">[], file = "imatrix"): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const t of tensors) {
    const nIn = t.dims[0]!, nMat = t.dims.slice(2).reduce((a, b) => a * b, 1);
    let e = m.entries.get(t.name);
    let expert: number | undefined;
    if (!e) {
      const p = /^blk\.(\d+)\.(ffn_gate|ffn_up|ffn_down)\.(\d+)\.weight$/.exec(t.name);
      if (p) {
        e = m.entries.get(`blk.${p[1]}.${p[2]}_exps.weight`);
        expert = Number(p[3]);
      }
    }
    if (!e) continue;
    const all = importanceOf(e);
    if (expert !== undefined) {
      if ((expert + 1) * nIn > all.length || all.length % nIn !== 0) {
        throw new ArgumentError(`${file}: the entry for ${t.name}'s experts has ${all.length} values, not ${nIn} per expert for expert ${expert}: an imatrix of another model?`);
      }
      out.set(t.name, all.slice(expert * nIn, (expert + 1) * nIn));
    } else if (all.length !== nIn * nMat) {
      throw new ArgumentError(`${file}: entry "${t.name}" has ${all.length} values; the tensor [${t.dims.join(", ")}] needs ${nIn * nMat} (${nIn} per row x ${nMat} matrices): an imatrix of another model?`);
    } else out.set(t.name, all);
  }
  return out;
}

export interface QuantizeReport {
  tensors: { name: string; from: string; to: string; bytes: number; imatrix: boolean }[];
  inBytes: number;
  outBytes: number;
  nParams: number;
}

/** Parallel row-block quantization over worker threads (the main thread waits). */
class QuantPool {
  private workers: Worker[] = [];
  private next = 0;
  constructor(n: number) {
    for (let i = 0; i < n; i++) this.workers.push(new Worker(new URL("./quantize-worker.js", import.meta.url)));
  }
  run(type: GgmlType, x: Float32Array, nRows: number, nPerRow: number, importance?: Float32Array): Promise<Uint8Array> {
    const n = this.workers.length;
    const per = Math.ceil(nRows / n);
    const parts: Promise<Uint8Array>[] = [];
    for (let r = 0; r < nRows; r += per) {
      const rows = Math.min(per, nRows - r);
      const w = this.workers[this.next++ % n]!;
      const chunk = x.slice(r * nPerRow, (r + rows) * nPerRow);
      const id = this.next;
      parts.push(new Promise((res, rej) => {
        const onMsg = (m: { id: number; out?: Uint8Array; error?: string }) => {
          if (m.id !== id) return;
          w.off("message", onMsg);
          if (m.error) rej(new Error(m.error)); else res(m.out!);
        };
        w.on("message", onMsg);
        w.postMessage({ id, type, x: chunk, nRows: rows, nPerRow, importance }, [chunk.buffer]);
      }));
    }
    return Promise.all(parts).then((ps) => {
      const out = new Uint8Array(ps.reduce((a, p) => a + p.length, 0));
      let o = 0;
      for (const p of ps) { out.set(p, o); o += p.length; }
      return out;
    });
  }
  close(): void {
    for (const w of this.workers) void w.terminate();
  }
}

export async function quantizeFile(inPath: string, outPath: string, ftypeName: string, opts: QuantizeOptions = {}): Promise<QuantizeReport> {
  const r = new GgufReader(inPath);
  const pool = (opts.threads ?? 1) > 1 ? new QuantPool(opts.threads!) : undefined;
  try {
    const cfg = configFromGguf(r.metadata, basename(inPath));
    const recipe = new Recipe(ftypeName, {
      nLayer: cfg.nLayer, nExpert: cfg.nExpert, nHead: cfg.nHead, nHeadKv: cfg.nHeadKv, hasOutput: !!r.tensor("output.weight"),
    }, r.tensors, opts.pure);
    const plan = r.tensors.map((t) => ({ t, to: recipe.typeFor(t) }));
    for (const { t, to } of plan) {
      if (to !== t.type && !canQuantizeWeights(to)) {
        throw new UnsupportedError(`quantizing to ${typeName(to)} (for ${t.name}) is not implemented yet; supported: ${Object.keys(FILE_TYPES).filter((k) => canQuantizeWeights(FILE_TYPES[k as FileTypeName]!.base)).join(", ")}`);
      }
      const imp = opts.imatrix?.get(t.name);
      const nMat = t.dims.slice(2).reduce((a, b) => a * b, 1); // stacked experts: one matrix each
      if (imp && imp.length !== t.dims[0] && imp.length !== t.dims[0]! * nMat) {
        throw new ArgumentError(`imatrix: tensor '${t.name}': expected ${t.dims[0]}${nMat > 1 ? ` or ${t.dims[0]! * nMat}` : ""} importance values (dims [${t.dims}]), got ${imp.length}`);
      }
      if (to !== t.type && requiresImatrix(t.name, to) && !imp && !opts.allowMissingImatrix) {
        throw new ArgumentError(`quantizing ${t.name} to ${typeName(to)} needs an importance matrix (as in llama-quantize, the result would be garbage without one): pass --imatrix FILE`);
      }
    }
    // one tensor in memory at a time: read, convert, write
    const report: QuantizeReport = { tensors: [], inBytes: r.info.fileSize, outBytes: 0, nParams: 0 };
    const md = new Map(r.metadata);
    md.set("general.quantization_version", gv.u32(2));
    md.set("general.file_type", gv.u32(FTYPE[recipe.ftype]));
    const info = opts.imatrixInfo;
    if (info) {
      md.set("quantize.imatrix.file", gv.str(info.file));
      if (info.dataset !== undefined) md.set("quantize.imatrix.dataset", gv.str(info.dataset));
      md.set("quantize.imatrix.entries_count", gv.i32(info.entries));
      md.set("quantize.imatrix.chunks_count", gv.i32(info.chunks));
    }
    await writeGgufAsync(outPath, {
      metadata: md, version: 3,
      tensors: plan.map(({ t, to }, i) => ({
        name: t.name, dims: t.dims, type: to,
        data: async () => {
          opts.onTensor?.(i, plan.length, t.name, t.type, to);
          const raw = r.readTensorBytes(t);
          let bytes: Uint8Array;
          const imp = to !== t.type && usesImportance(to) ? opts.imatrix?.get(t.name) : undefined;
          if (to === t.type) bytes = raw;
          else {
            const x = new Float32Array(t.nElements);
            dequantize(t.type, raw, 0, x, 0, t.nElements);
            bytes = await quantizeTensor(pool, to, x, t.dims[0]!, t.nElements / t.dims[0]!, imp);
          }
          report.tensors.push({ name: t.name, from: typeName(t.type), to: typeName(to), bytes: bytes.length, imatrix: !!imp });
          report.nParams += t.nElements;
          report.outBytes += bytes.length;
          return bytes;
        },
      })),
    });
    return report;
  } finally {
    pool?.close();
    r.close();
  }
}

/**
 * nRows rows of nPerRow; importance of nPerRow values (shared by all rows) or nPerRow per matrix
 * (a stacked expert tensor: matrix m = rows m·rowsPerMat .. (m+1)·rowsPerMat - 1)
 */
async function quantizeTensor(pool: QuantPool | undefined, to: GgmlType, x: Float32Array, nPerRow: number, nRows: number, imp?: Float32Array): Promise<Uint8Array> {
  const nMat = imp ? imp.length / nPerRow : 1;
  const rowsPerMat = nRows / nMat;
  const part = (m: number): Promise<Uint8Array> | Uint8Array => {
    const xm = nMat === 1 ? x : x.subarray(m * rowsPerMat * nPerRow, (m + 1) * rowsPerMat * nPerRow);
    const im = imp && nMat > 1 ? imp.slice(m * nPerRow, (m + 1) * nPerRow) : imp;
    return pool && rowsPerMat >= 8 ? pool.run(to, xm, rowsPerMat, nPerRow, im) : quantizeWeights(to, xm, rowsPerMat, nPerRow, im);
  };
  if (nMat === 1) return part(0);
  const parts = await Promise.all(Array.from({ length: nMat }, (_, m) => part(m)));
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

export function describeFileTypes(): string {
  return Object.entries(FILE_TYPES).map(([k, v]) => {
    const ok = canQuantizeWeights(v!.base) ? "" : "  (not yet)";
    return `  ${k.padEnd(8)} ${v!.bpw.padStart(5)} bpw  ${blockFormat(v!.base)?.name ?? ""}${v!.needsImatrix ? ", needs --imatrix" : ""}${ok}`;
  }).join("\n");
}
