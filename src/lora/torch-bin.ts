/**
 * PyTorch checkpoints written by torch.save (the ZIP format of PyTorch >= 1.6): `<name>/data.pkl`
 * (a pickled dict of tensors, read with the restricted unpickler in pickle.ts), `<name>/data/<key>`
 * (one raw little-endian storage per key) and `<name>/byteorder`. Tensors are read lazily from
 * their storages. Sharded checkpoints use pytorch_model.bin.index.json like safetensors.
 */
import { closeSync, existsSync, openSync, readFileSync, readSync } from "node:fs";
import { basename, join } from "node:path";
import { FormatError, UnsupportedError } from "../errors.js";
import { toF32, type StDtype } from "../io/safetensors/format.js";
import type { TensorStore } from "../convert/source.js";
import { PyDict, TensorRef, unpickle, type TorchDtype } from "./pickle.js";
import { ZipFile } from "./zip.js";

const SIZE: Record<TorchDtype, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

interface Entry { zip: ZipFile; prefix: string; ref: TensorRef }

export class TorchCheckpoint implements TensorStore {
  private zips: ZipFile[] = [];
  private byName = new Map<string, Entry>();
  readonly names: string[] = [];

  private constructor(readonly where: string) {}

  /** One torch.save archive. */
  static openFile(path: string): TorchCheckpoint {
    const ck = new TorchCheckpoint(path);
    try {
      ck.addFile(path);
    } catch (e) {
      ck.close();
      throw e;
    }
    return ck;
  }

  /** pytorch_model.bin, or the shards listed in pytorch_model.bin.index.json. */
  static openFolder(dir: string): TorchCheckpoint {
    const ck = new TorchCheckpoint(dir);
    try {
      const idx = join(dir, "pytorch_model.bin.index.json");
      if (existsSync(idx)) {
        let wm: Record<string, string>;
        try {
          wm = (JSON.parse(readFileSync(idx, "utf8")) as { weight_map: Record<string, string> }).weight_map;
          if (typeof wm !== "object" || wm === null) throw new Error("weight_map is missing");
        } catch (e) {
          throw new FormatError(basename(idx), "json", (e as Error).message);
        }
        const files = [...new Set(Object.values(wm))].sort();
        for (const f of files) {
          if (typeof f !== "string" || f.includes("/") || f.includes("\\")) throw new FormatError(basename(idx), "weight_map", `bad shard name ${JSON.stringify(f)}`);
          if (!existsSync(join(dir, f))) throw new FormatError(basename(idx), "weight_map", `shard ${f} is missing from ${dir}`);
          ck.addFile(join(dir, f));
        }
        for (const n of Object.keys(wm)) if (!ck.byName.has(n)) throw new FormatError(wm[n]!, `tensor "${n}"`, "missing: the index says this shard holds it");
      } else {
        ck.addFile(join(dir, "pytorch_model.bin"));
      }
    } catch (e) {
      ck.close();
      throw e;
    }
    return ck;
  }

  private addFile(path: string): void {
    const name = basename(path);
    const head = new Uint8Array(4);
    const fd = openSync(path, "r");
    try { readSync(fd, head, 0, 4, 0); } finally { closeSync(fd); }
    if (!(head[0] === 0x50 && head[1] === 0x4b)) {
      throw new UnsupportedError(`${name}: not a ZIP archive; PyTorch's legacy (pre-1.6) checkpoint format is not supported: re-save it with a recent torch.save or as safetensors`);
    }
    const zip = new ZipFile(path);
    this.zips.push(zip);
    const pkls = [...zip.entries.keys()].filter((n) => n === "data.pkl" || n.endsWith("/data.pkl"));
    if (pkls.length !== 1) throw new FormatError(name, "data.pkl", pkls.length ? "more than one pickle in the archive" : "missing: not a torch.save archive");
    const prefix = pkls[0]!.slice(0, -"data.pkl".length);
    const bo = zip.entries.has(`${prefix}byteorder`) ? Buffer.from(zip.readEntry(`${prefix}byteorder`)).toString("latin1").trim() : "little";
    if (bo !== "little") throw new UnsupportedError(`${name}: byte order "${bo}" (only little-endian checkpoints)`);
    const root = unpickle(zip.readEntry(pkls[0]!), name);
    if (!(root instanceof PyDict)) throw new FormatError(name, "data.pkl", "the checkpoint is not a dict of tensors");
    for (const [k, v] of root.map) {
      if (typeof k !== "string") throw new FormatError(name, "data.pkl", `key ${String(k)} is not a string`);
      if (!(v instanceof TensorRef)) throw new FormatError(name, `tensor "${k}"`, "value is not a tensor");
      const entry = `${prefix}data/${v.storage.key}`;
      const ze = zip.entries.get(entry);
      if (!ze) throw new FormatError(name, `tensor "${k}"`, `its storage ${entry} is missing from the archive`);
      const sz = SIZE[v.storage.dtype];
      if (ze.size < v.storage.numel * sz) throw new FormatError(name, `tensor "${k}"`, `storage ${entry} has ${ze.size} bytes, ${v.storage.numel * sz} expected`);
      if (v.shape.some((d) => d < 0) || v.shape.length !== v.stride.length) throw new FormatError(name, `tensor "${k}"`, "bad size/stride");
      // the furthest element the view touches must lie inside the storage
      const n = v.shape.reduce((a, b) => a * b, 1);
      const last = n === 0 ? v.offset : v.offset + v.shape.reduce((a, d, i) => a + (d - 1) * v.stride[i]!, 0);
      if (v.offset < 0 || v.stride.some((s) => s < 0) || last >= Math.max(v.storage.numel, 1) && n > 0) {
        throw new FormatError(name, `tensor "${k}"`, `view (offset ${v.offset}, size [${v.shape.join(", ")}], stride [${v.stride.join(", ")}]) runs outside its storage of ${v.storage.numel} elements`);
      }
      if (this.byName.has(k)) throw new FormatError(name, `tensor "${k}"`, "also in another shard");
      this.byName.set(k, { zip, prefix, ref: v });
      this.names.push(k);
    }
  }

  info(name: string): { shape: number[]; dtype: string } | undefined {
    const e = this.byName.get(name);
    return e && { shape: e.ref.shape, dtype: e.ref.storage.dtype };
  }

  readF32(name: string, out?: Float32Array, outOff = 0): Float32Array {
    const e = this.byName.get(name);
    if (!e) throw new FormatError(basename(this.where), `tensor "${name}"`, "missing");
    const { ref, zip, prefix } = e;
    const sz = SIZE[ref.storage.dtype];
    const n = ref.shape.reduce((a, b) => a * b, 1);
    const dst = out ?? new Float32Array(n);
    const what = `${zip.name}: tensor "${name}"`;
    const entry = `${prefix}data/${ref.storage.key}`;
    // contiguous (row-major) views are read in place; others are gathered element by element
    let contiguous = true;
    for (let i = ref.shape.length - 1, s = 1; i >= 0; i--) {
      if (ref.shape[i] !== 1 && ref.stride[i] !== s) contiguous = false;
      s *= ref.shape[i]!;
    }
    if (n === 0) return dst;
    if (contiguous) return toF32(ref.storage.dtype as StDtype, zip.readRange(entry, ref.offset * sz, n * sz), n, what, dst, outOff);
    const all = toF32(ref.storage.dtype as StDtype, zip.readEntry(entry), ref.storage.numel, what);
    const idx = new Array<number>(ref.shape.length).fill(0);
    for (let i = 0; i < n; i++) {
      let off = ref.offset;
      for (let d = 0; d < idx.length; d++) off += idx[d]! * ref.stride[d]!;
      dst[outOff + i] = all[off]!;
      for (let d = idx.length - 1; d >= 0; d--) {
        if (++idx[d]! < ref.shape[d]!) break;
        idx[d] = 0;
      }
    }
    return dst;
  }

  close(): void {
    for (const z of this.zips) z.close();
  }
}
