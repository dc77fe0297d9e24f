/**
 * Top-k: build the sorted candidate list from the full logit vector, keeping the k best.
 *
 * For k much smaller than the vocabulary this is a partial selection: one pass over the logits
 * with a size-k min-heap (O(V log k), and in practice O(V) because almost every logit is
 * rejected by a single comparison against the heap root), then a sort of only the k survivors.
 * With k off (<= 0) or k >= V every token is a candidate and the list is sorted once, here;
 * later steps (top-p, min-p) reuse that order and never sort again.
 */
import { type Candidates, ranksBefore } from "./candidates.js";

/**
 * Fill `out` with the top `k` tokens of `logits` (all tokens when k <= 0 or k >= V), sorted by
 * logit descending, ties by lower id. `out` must have capacity min(k, V) (V when k is off).
 * NaN logits must have been replaced (the sampler maps them to -Infinity).
 */
export function selectTopK(logits: Float32Array, k: number, out: Candidates): void {
  const v = logits.length;
  if (k <= 0 || k >= v) {
    sortAll(logits, out);
    return;
  }
  const heap = out.ids; // heap[0] is the worst of the kept tokens
  for (let i = 0; i < k; i++) heap[i] = i;
  for (let i = (k >> 1) - 1; i >= 0; i--) siftDown(heap, k, i, logits);
  let rootLogit = logits[heap[0]];
  for (let i = k; i < v; i++) {
    const l = logits[i];
    // A later id loses ties, so only a strictly larger logit displaces the root.
    if (l > rootLogit) {
      heap[0] = i;
      siftDown(heap, k, 0, logits);
      rootLogit = logits[heap[0]];
    }
  }
  const kept = heap.subarray(0, k);
  kept.sort((a, b) => logits[b] - logits[a] || a - b);
  for (let i = 0; i < k; i++) out.logits[i] = logits[kept[i]];
  out.n = k;
}

/** Min-heap by rank: the parent ranks after (is worse than) its children. */
function siftDown(heap: Int32Array, size: number, pos: number, logits: Float32Array): void {
  const item = heap[pos];
  const itemLogit = logits[item];
  for (;;) {
    let child = 2 * pos + 1;
    if (child >= size) break;
    const right = child + 1;
    if (right < size && ranksBefore(logits[heap[child]], heap[child], logits[heap[right]], heap[right])) child = right;
    const c = heap[child];
    // Stop when the item is worse than (ranks after) the worse child.
    if (!ranksBefore(itemLogit, item, logits[c], c)) break;
    heap[pos] = c;
    pos = child;
  }
  heap[pos] = item;
}

function sortAll(logits: Float32Array, out: Candidates): void {
  const v = logits.length;
  if (v <= MAX_PACKED_VOCAB) sortAllPacked(logits, out);
  else sortAllCompare(logits, out);
  out.n = v;
}

/** Vocabularies up to 2^21 tokens fit 32 bits of logit order plus the id in a double's 53 bits. */
const MAX_PACKED_VOCAB = 1 << 21;
let packedKeys = new Float64Array(0);

/**
 * Sort by one native numeric sort of a Float64Array (no JS comparator calls, several times faster
 * than a comparator sort for 32000 tokens): each key is an exact integer
 * `(2^32 - 1 - orderBits(logit)) * 2^idBits + id`, so ascending keys mean descending logits and,
 * among equal logits, ascending ids. `orderBits` maps a float32 to a uint32 with the same order.
 */
function sortAllPacked(logits: Float32Array, out: Candidates): void {
  const v = logits.length;
  const idBits = Math.max(1, Math.ceil(Math.log2(v)));
  const scale = 2 ** idBits;
  if (packedKeys.length < v) packedKeys = new Float64Array(v);
  const keys = packedKeys.subarray(0, v);
  const bits = new Uint32Array(logits.buffer, logits.byteOffset, v);
  for (let i = 0; i < v; i++) {
    const b = bits[i] === 0x80000000 ? 0 : bits[i]; // -0 ranks equal to +0
    const order = b & 0x80000000 ? ~b >>> 0 : (b | 0x80000000) >>> 0;
    keys[i] = (0xffffffff - order) * scale + i;
  }
  keys.sort();
  for (let i = 0; i < v; i++) {
    const key = keys[i];
    const id = key % scale;
    out.ids[i] = id;
    out.logits[i] = logits[id];
  }
}

function sortAllCompare(logits: Float32Array, out: Candidates): void {
  const v = logits.length;
  const ids = out.ids.subarray(0, v);
  for (let i = 0; i < v; i++) ids[i] = i;
  // -Infinity - -Infinity is NaN, which is falsy, so equal infinities fall back to the id order.
  ids.sort((a, b) => logits[b] - logits[a] || a - b);
  for (let i = 0; i < v; i++) out.logits[i] = logits[ids[i]];
}
