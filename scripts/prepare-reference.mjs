#!/usr/bin/env node
// Regenerates the reference models that ../shared/reference does not ship (B-F32, 47 MB, and a
// legacy per-expert-layout copy of A) with the reference's own generator, into tmp/ref/.
// Needs python3 with numpy; without it, the tests that use these files are skipped.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const shared = process.env.CMX_SHARED ?? resolve(root, "..", "shared");
const ref = join(shared, "reference");
const script = join(ref, "make_tiny_mixtral.py");
const out = join(root, "tmp", "ref");
if (!existsSync(script)) { console.log("prepare-reference: no reference folder, skipping"); process.exit(0); }
mkdirSync(out, { recursive: true });
const python = ["python3", "/usr/bin/python3"].find((p) => spawnSync(p, ["-c", "import numpy"]).status === 0);
if (!python) { console.log("prepare-reference: python3 with numpy not found; B-F32 tests will be skipped"); process.exit(0); }
const manifest = JSON.parse(readFileSync(join(ref, "manifest.json"), "utf8"));
const jobs = [
  { name: "B-F32", args: ["--model", "B"], sha: manifest.models["B-F32"].sha256 },
  { name: "A-F32-legacy", args: ["--model", "A", "--legacy-experts"] },
];
for (const j of jobs) {
  const file = join(out, `${j.name}.gguf`);
  if (!existsSync(file)) {
    const r = spawnSync(python, [script, "--tokenizer", join(ref, "tokenizer", "tokenizer.model.v1"), ...j.args, "--out", file], { stdio: ["ignore", "ignore", "inherit"] });
    if (r.status !== 0) { console.error(`prepare-reference: generating ${j.name} failed`); process.exit(1); }
  }
  if (j.sha) {
    const got = createHash("sha256").update(readFileSync(file)).digest("hex");
    if (got !== j.sha) { console.error(`prepare-reference: ${j.name} sha256 ${got} != ${j.sha}`); process.exit(1); }
  }
}
// B-Q4_0 (llama-perplexity figures in the reference, no file): made from B-F32 by our quantizer,
// whose blocks equal llama-quantize's; needs the build (dist/)
const bq40 = join(out, "B-Q4_0.gguf");
const quantizer = join(root, "dist", "quant", "quantize-file.js");
if (!existsSync(bq40) && existsSync(quantizer)) {
  const { quantizeFile } = await import(quantizer);
  await quantizeFile(join(out, "B-F32.gguf"), `${bq40}.tmp`, "Q4_0", { threads: 2 });
  renameSync(`${bq40}.tmp`, bq40);
}
console.log(`prepare-reference: ${jobs.map((j) => j.name).join(", ")}${existsSync(bq40) ? ", B-Q4_0" : ""} ready in tmp/ref`);
