/**
 * safetensors writer. Tensors are written in the order given, each one's bytes produced lazily
 * when the writer reaches it (so memory stays near one tensor); each file goes to a temporary
 * name and is renamed only when complete. Large checkpoints are split into shards
 * (model-00001-of-0000N.safetensors) with a model.safetensors.index.json, as Hugging Face does.
 */
import { closeSync, openSync, renameSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { ArgumentError } from "../../errors.js";
import { DTYPE_SIZE, numel, type StDtype } from "./format.js";
import { INDEX_FILE } from "./sharded.js";

export interface StTensorSource {
  name: string;
  dtype: StDtype;
  shape: number[];
  /** the tensor's little-endian bytes, or a function producing them when the writer gets there */
  data: Uint8Array | (() => Uint8Array);
}

export function tensorByteSize(t: { dtype: StDtype; shape: number[] }): number {
  return numel(t.shape) * DTYPE_SIZE[t.dtype];
}

function buildHeader(tensors: StTensorSource[], metadata: Record<string, string> | undefined): Buffer {
  const h: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) h["__metadata__"] = metadata;
  let off = 0;
  const seen = new Set<string>();
  for (const t of tensors) {
    if (t.name === "__metadata__") throw new ArgumentError('a tensor cannot be called "__metadata__"');
    if (seen.has(t.name)) throw new ArgumentError(`tensor "${t.name}" is given twice`);
    seen.add(t.name);
    const nb = tensorByteSize(t);
    h[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + nb] };
    off += nb;
  }
  let json = Buffer.from(JSON.stringify(h), "utf8");
  const pad = (8 - (json.length % 8)) % 8;
  if (pad) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const out = Buffer.alloc(8 + json.length);
  out.writeBigUInt64LE(BigInt(json.length), 0);
  json.copy(out, 8);
  return out;
}

function writeAll(fd: number, b: Uint8Array): void {
  let done = 0;
  while (done < b.length) done += writeSync(fd, b, done, Math.min(b.length - done, 1 << 30));
}

/** Write one safetensors file atomically (temporary file + rename). */
export function writeSafetensors(path: string, tensors: StTensorSource[], opts: {
  metadata?: Record<string, string>;
  onTensor?: (name: string) => void;
} = {}): void {
  const header = buildHeader(tensors, opts.metadata);
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, "w");
  let ok = false;
  try {
    writeAll(fd, header);
    for (const t of tensors) {
      const data = typeof t.data === "function" ? t.data() : t.data;
      const nb = tensorByteSize(t);
      if (data.length !== nb) {
        throw new ArgumentError(`tensor "${t.name}": ${t.dtype} [${t.shape.join(", ")}] needs ${nb} bytes, got ${data.length}`);
      }
      writeAll(fd, data);
      opts.onTensor?.(t.name);
    }
    ok = true;
  } finally {
    closeSync(fd);
    if (ok) renameSync(tmp, path);
    else rmSync(tmp, { force: true });
  }
}

/** Split tensors, in order, into shards of at most maxBytes of data each (a bigger tensor gets a shard of its own). */
export function planShards<T extends { dtype: StDtype; shape: number[] }>(tensors: T[], maxBytes: number): T[][] {
  const shards: T[][] = [];
  let cur: T[] = [];
  let size = 0;
  for (const t of tensors) {
    const nb = tensorByteSize(t);
    if (cur.length && size + nb > maxBytes) {
      shards.push(cur);
      cur = [];
      size = 0;
    }
    cur.push(t);
    size += nb;
  }
  if (cur.length) shards.push(cur);
  return shards;
}

export interface ShardedWriteResult {
  /** file names written, shards first, the index last when there is one */
  files: string[];
  totalBytes: number;
}

/**
 * Write a checkpoint into `dir`: one `model.safetensors` when it fits in maxShardBytes, else
 * `model-0000i-of-0000N.safetensors` shards and `model.safetensors.index.json` (written last).
 * When a shard fails, the shards already written are removed.
 */
export function writeSafetensorsSharded(dir: string, tensors: StTensorSource[], opts: {
  maxShardBytes?: number;
  metadata?: Record<string, string>;
  onTensor?: (name: string) => void;
} = {}): ShardedWriteResult {
  const max = opts.maxShardBytes ?? 5e9;
  if (!(max > 0)) throw new ArgumentError(`shard size must be positive, got ${max}`);
  const metadata = opts.metadata ?? { format: "pt" };
  const totalBytes = tensors.reduce((a, t) => a + tensorByteSize(t), 0);
  const shards = planShards(tensors, max);
  const written: string[] = [];
  try {
    if (shards.length <= 1) {
      writeSafetensors(join(dir, "model.safetensors"), tensors, { metadata, ...(opts.onTensor ? { onTensor: opts.onTensor } : {}) });
      written.push("model.safetensors");
      return { files: written, totalBytes };
    }
    const n = shards.length;
    const pad = (i: number) => String(i).padStart(5, "0");
    const weightMap: Record<string, string> = {};
    shards.forEach((shard, i) => {
      const name = `model-${pad(i + 1)}-of-${pad(n)}.safetensors`;
      writeSafetensors(join(dir, name), shard, { metadata, ...(opts.onTensor ? { onTensor: opts.onTensor } : {}) });
      written.push(name);
      for (const t of shard) weightMap[t.name] = name;
    });
    const tmp = join(dir, `${INDEX_FILE}.${process.pid}.tmp`);
    writeFileSync(tmp, JSON.stringify({ metadata: { total_size: totalBytes }, weight_map: weightMap }, null, 2) + "\n");
    renameSync(tmp, join(dir, INDEX_FILE));
    written.push(INDEX_FILE);
    return { files: written, totalBytes };
  } catch (e) {
    for (const f of written) rmSync(join(dir, f), { force: true });
    throw e;
  }
}
