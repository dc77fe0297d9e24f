import { ArgumentError } from "../../errors.js";
import { GgufReader } from "../../io/gguf/reader.js";
import { GgufType, isArray, type GgufValue } from "../../io/gguf/types.js";
import { configFromGguf } from "../../model/config.js";
import { defaultModelPath } from "../../model/default-model.js";
import { typeName } from "../../quant/format.js";
import { parse } from "../args.js";
import { basename } from "node:path";

export const HELP = `cmx inspect: show a GGUF's metadata, tensors, parameter counts and expert configuration

Usage: cmx inspect [MODEL] [--json]

  --json      print everything as one JSON object
`;

function fmtValue(v: GgufValue): string {
  if (isArray(v)) {
    const items = v.items as ArrayLike<unknown>;
    const head = Array.from({ length: Math.min(items.length, 4) }, (_, i) => JSON.stringify(items[i] as unknown, (_k, x) => typeof x === "bigint" ? x.toString() : x));
    return `[${GgufType[v.itemType]} x ${items.length}] ${head.join(", ")}${items.length > 4 ? ", ..." : ""}`;
  }
  if (typeof v === "string") return JSON.stringify(v.length > 120 ? v.slice(0, 117) + "..." : v);
  return String(v);
}

const human = (n: number) => n >= 1e9 ? `${(n / 1e9).toFixed(2)} B` : n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} K` : String(n);
const bytes = (n: number) => n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(2)} GiB` : n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(2)} MiB` : `${(n / 1024).toFixed(1)} KiB`;

export async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parse(argv, { json: { type: "boolean" }, model: { type: "string", short: "m" }, help: { type: "boolean", short: "h" } }, "inspect");
  if (values.help) { process.stdout.write(HELP); return; }
  if (positionals.length > 1) throw new ArgumentError("inspect: give one model file");
  const path = positionals[0] ?? values.model ?? defaultModelPath();
  const r = new GgufReader(path);
  try {
    const cfg = configFromGguf(r.metadata, basename(path));
    let total = 0, expertParams = 0;
    const perType = new Map<string, { n: number; bytes: number }>();
    for (const t of r.tensors) {
      total += t.nElements;
      if (/ffn_(gate|up|down)(_exps|\.\d+)\.weight$/.test(t.name)) expertParams += t.nElements;
      const k = typeName(t.type);
      const e = perType.get(k) ?? { n: 0, bytes: 0 };
      e.n++; e.bytes += t.nBytes;
      perType.set(k, e);
    }
    const active = cfg.nExpert > 0 ? total - expertParams + (expertParams * cfg.nExpertUsed) / cfg.nExpert : total;
    const bpw = (8 * r.tensors.reduce((a, t) => a + t.nBytes, 0)) / total;
    if (values.json) {
      const md: Record<string, unknown> = {};
      for (const [k, e] of r.metadata) md[k] = isArray(e.value) ? { type: GgufType[e.value.itemType], length: e.value.items.length } : e.value;
      process.stdout.write(JSON.stringify({
        file: path, version: r.info.version, alignment: r.info.alignment, fileSize: r.info.fileSize, config: cfg,
        parameters: { total, activePerToken: active, bitsPerWeight: bpw }, metadata: md,
        tensors: r.tensors.map((t) => ({ name: t.name, shape: t.dims, type: typeName(t.type), bytes: t.nBytes, offset: r.info.dataOffset + t.offset })),
      }, (_k, x) => typeof x === "bigint" ? x.toString() : x, 2) + "\n");
      return;
    }
    const out: string[] = [];
    out.push(`${path}: GGUF v${r.info.version}, ${bytes(r.info.fileSize)}, ${r.tensors.length} tensors, ${r.metadata.size} metadata keys, alignment ${r.info.alignment}`);
    out.push("", "Model:");
    out.push(`  architecture   ${cfg.arch}${cfg.nExpert > 0 ? " (mixture of experts)" : " (dense)"}  name: ${cfg.name}`);
    out.push(`  layers ${cfg.nLayer}, hidden ${cfg.nEmbd}, ffn ${cfg.nFf}, heads ${cfg.nHead} / kv heads ${cfg.nHeadKv} (head size ${cfg.headDim}), vocab ${cfg.nVocab}`);
    out.push(`  rope theta ${cfg.ropeTheta}, rms eps ${cfg.rmsEps}, trained context ${cfg.nCtxTrain}`);
    if (cfg.nExpert > 0) out.push(`  experts        ${cfg.nExpert} per layer, ${cfg.nExpertUsed} used per token (top-${cfg.nExpertUsed} routing)`);
    out.push(`  parameters     ${human(total)} total, ${human(active)} active per token, ${bpw.toFixed(2)} bits per weight`);
    out.push(`  types          ${[...perType].map(([k, e]) => `${k}: ${e.n} tensors, ${bytes(e.bytes)}`).join("; ")}`);
    out.push("", "Metadata:");
    for (const [k, e] of r.metadata) out.push(`  ${k.padEnd(42)} ${fmtValue(e.value)}`);
    out.push("", "Tensors:");
    out.push(`  ${"name".padEnd(34)} ${"shape".padEnd(22)} ${"type".padEnd(8)} ${"bytes".padStart(12)}`);
    for (const t of r.tensors) out.push(`  ${t.name.padEnd(34)} ${`[${t.dims.join(", ")}]`.padEnd(22)} ${typeName(t.type).padEnd(8)} ${String(t.nBytes).padStart(12)}`);
    process.stdout.write(out.join("\n") + "\n");
  } finally {
    r.close();
  }
}
