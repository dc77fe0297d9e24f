/**
 * Experts loaded on demand (--max-memory): attention, norms, router and embeddings stay resident;
 * the expert matrices of each layer are read from the GGUF into a bounded set of slots when the
 * router picks them, least recently used slot first out. The routing of a token is computed
 * before its experts are needed, so a miss reads exactly the experts that token uses.
 */
import type { GgufReader } from "../io/gguf/reader.js";
import type { GgufTensorInfo } from "../io/gguf/types.js";
import { checkFiniteF16 } from "../quant/f16.js";
import { GgmlType } from "../quant/format.js";
import type { Backend, WeightStorage } from "../kernels/backend.js";

/** The file location of one expert's matrix (a slice of a merged tensor, or a per-expert tensor). */
export interface ExpertSource {
  tensor: GgufTensorInfo;
  offset: number;
  bytes: number;
}

export interface ExpertCacheStats {
  slots: number;
  hits: number;
  misses: number;
  bytesRead: number;
  /** bytes of all slots */
  slotBytes: number;
  /** background page-cache reads started for predicted experts */
  prefetched: number;
}

type Part = "gate" | "up" | "down";

interface Slot {
  key: number;
  storage: Record<Part, WeightStorage>;
}

export class ExpertCache {
  private slots: Slot[] = [];
  /** key (layer * nExpert + expert) -> slot index */
  private where = new Map<number, number>();
  /** slot indices, least recently used first */
  private lru: number[] = [];
  readonly stats: ExpertCacheStats;
  /** per layer, the experts the previous token chose: the guess for the next token */
  private last: number[][] = [];

  constructor(
    private reader: GgufReader,
    private backend: Backend,
    private nExpert: number,
    /** sources[layer][part][expert] */
    private sources: Record<Part, ExpertSource[]>[],
    nSlots: number,
  ) {
    const size = (p: Part) => Math.max(...sources.map((l) => l[p][0]!.bytes));
    for (let i = 0; i < nSlots; i++) {
      this.slots.push({
        key: -1,
        storage: { gate: backend.allocWeight(size("gate")), up: backend.allocWeight(size("up")), down: backend.allocWeight(size("down")) },
      });
      this.lru.push(i);
    }
    this.stats = { slots: nSlots, hits: 0, misses: 0, bytesRead: 0, slotBytes: nSlots * (size("gate") + size("up") + size("down")), prefetched: 0 };
  }

  /**
   * The router of layer `layer` chose `experts` (for the current token or batch): remember them,
   * and prefetch what the next layer will likely need: the experts the previous token used there
   * that are not resident are brought into the OS page cache in the background while this layer
   * computes, so their reads do not wait for the disk.
   */
  routed(layer: number, experts: ArrayLike<number>): void {
    this.last[layer] = Array.from(new Set(Array.from(experts)));
    const next = layer + 1;
    const guess = this.last[next];
    if (!guess || next >= this.sources.length) return;
    for (const e of guess) {
      if (this.where.has(next * this.nExpert + e)) continue;
      for (const p of ["gate", "up", "down"] as Part[]) {
        const src = this.sources[next]![p][e]!;
        if (this.reader.warm(src.tensor, src.offset, src.bytes)) this.stats.prefetched++;
      }
    }
  }

  /** The storage of one expert's matrix, loading the expert (all three matrices) on a miss. */
  get(layer: number, expert: number, part: Part): WeightStorage {
    const key = layer * this.nExpert + expert;
    let i = this.where.get(key);
    if (i === undefined) {
      i = this.lru.shift()!;
      const slot = this.slots[i]!;
      if (slot.key >= 0) this.where.delete(slot.key);
      for (const p of ["gate", "up", "down"] as Part[]) {
        const src = this.sources[layer]![p][expert]!;
        this.reader.readTensorBytes(src.tensor, src.offset, src.bytes, slot.storage[p].data.subarray(0, src.bytes));
        if (src.tensor.type === GgmlType.F16) checkFiniteF16(slot.storage[p].data.subarray(0, src.bytes), `tensor "${src.tensor.name}"`);
        // in the backend's packed layout where it has one (as the resident weights: loadWeights)
        const nOut = src.tensor.dims[1]!;
        if (this.backend.packs?.(src.tensor.type, nOut)) this.backend.packMatrices!(slot.storage[p], src.tensor.type, nOut, 1, src.bytes / nOut);
        this.stats.bytesRead += src.bytes;
      }
      slot.key = key;
      this.where.set(key, i);
      this.stats.misses++;
    } else {
      this.lru.splice(this.lru.indexOf(i), 1);
      if (part === "gate") this.stats.hits++;
    }
    this.lru.push(i);
    return this.slots[i]!.storage[part];
  }

  close(): void {
    this.reader.close();
  }
}
