/**
 * A checkpoint spread over several safetensors files: `model.safetensors.index.json`
 * ({"metadata": {"total_size": N}, "weight_map": {tensor: file}}) names the shard of every
 * tensor; without an index, `model.safetensors`, or else every `*.safetensors` in the folder.
 * Every shard's header is read and checked when the checkpoint is opened; tensor data is read
 * lazily.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";
import { FormatError } from "../../errors.js";
import { SafetensorsFile } from "./reader.js";
import type { StTensorInfo } from "./format.js";

export const INDEX_FILE = "model.safetensors.index.json";

export interface ShardedTensor extends StTensorInfo {
  file: SafetensorsFile;
}

export class SafetensorsCheckpoint {
  readonly files: SafetensorsFile[] = [];
  private byName = new Map<string, ShardedTensor>();
  /** tensor names in shard order, then header order */
  readonly names: string[] = [];

  private constructor(readonly dir: string) {}

  /** Open the checkpoint in `dir` (see the module comment for how shards are found). */
  static open(dir: string): SafetensorsCheckpoint {
    const ck = new SafetensorsCheckpoint(dir);
    try {
      ck.load();
    } catch (e) {
      ck.close();
      throw e;
    }
    return ck;
  }

  private load(): void {
    const indexPath = join(this.dir, INDEX_FILE);
    if (existsSync(indexPath)) {
      let idx: unknown;
      try {
        idx = JSON.parse(readFileSync(indexPath, "utf8"));
      } catch (e) {
        throw new FormatError(INDEX_FILE, "json", (e as Error).message);
      }
      const wm = (idx as { weight_map?: unknown })?.weight_map;
      if (typeof wm !== "object" || wm === null || Array.isArray(wm)) throw new FormatError(INDEX_FILE, "weight_map", "missing or not an object");
      const shards = new Map<string, string[]>();
      for (const [t, f] of Object.entries(wm as Record<string, unknown>)) {
        if (typeof f !== "string" || f.includes("/") || f.includes("\\") || f === "..") {
          throw new FormatError(INDEX_FILE, `weight_map["${t}"]`, `expected a file name in the same folder, found ${JSON.stringify(f)}`);
        }
        if (!shards.has(f)) shards.set(f, []);
        shards.get(f)!.push(t);
      }
      const missing = [...shards.keys()].filter((f) => !existsSync(join(this.dir, f)));
      if (missing.length) {
        const f = missing[0]!;
        throw new FormatError(INDEX_FILE, "weight_map",
          `shard ${f} is missing from ${this.dir} (it holds ${shards.get(f)!.length} tensors, e.g. "${shards.get(f)![0]}")` +
          (missing.length > 1 ? `; also missing: ${missing.slice(1).join(", ")}` : "") + ": download every shard the index lists");
      }
      for (const [f, names] of [...shards].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) {
        const file = this.add(join(this.dir, f));
        for (const n of names) {
          if (!file.tensor(n)) throw new FormatError(f, `tensor "${n}"`, `missing: ${INDEX_FILE} says this shard holds it`);
        }
      }
      return;
    }
    const single = join(this.dir, "model.safetensors");
    if (existsSync(single)) {
      this.add(single);
      return;
    }
    let all: string[] = [];
    try {
      all = readdirSync(this.dir).filter((f) => f.endsWith(".safetensors")).sort();
    } catch (e) {
      throw new FormatError(this.dir, "folder", `cannot read: ${(e as Error).message}`);
    }
    if (!all.length) throw new FormatError(this.dir, "folder", `no ${INDEX_FILE} and no *.safetensors files: not a Hugging Face safetensors checkpoint`);
    for (const f of all) this.add(join(this.dir, f));
  }

  private add(path: string): SafetensorsFile {
    const file = new SafetensorsFile(path);
    this.files.push(file);
    for (const t of file.tensors) {
      const prev = this.byName.get(t.name);
      if (prev) throw new FormatError(basename(path), `tensor "${t.name}"`, `also in ${prev.file.name}`);
      this.byName.set(t.name, { ...t, file });
    }
    // header order within a shard is alphabetical for most writers; keep it
    for (const t of file.tensors) this.names.push(t.name);
    return file;
  }

  tensor(name: string): ShardedTensor | undefined {
    return this.byName.get(name);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  readF32(name: string, out?: Float32Array, outOff = 0): Float32Array {
    const t = this.byName.get(name);
    if (!t) throw new FormatError(this.dir, `tensor "${name}"`, "missing from the checkpoint");
    return t.file.readF32(name, out, outOff);
  }

  close(): void {
    for (const f of this.files) f.close();
  }
}
