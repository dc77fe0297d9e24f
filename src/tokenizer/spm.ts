/**
 * SentencePiece-BPE tokenizer with llama.cpp's exact behaviour (llm_tokenizer_spm, b4748):
 *
 *  - special-token partition: with parseSpecial, CONTROL / UNKNOWN / USER_DEFINED token texts are cut
 *    out of the text first (longest text first); USER_DEFINED ones are cut out even without parseSpecial;
 *  - every raw-text fragment that is at the start of the text or follows a cut-out token gets a space
 *    prepended when addSpacePrefix; then every " " becomes U+2581;
 *  - the fragment is split into Unicode characters, and the adjacent pair whose concatenation is a
 *    vocabulary piece with the highest score is merged, repeatedly (ties: leftmost pair);
 *  - a final symbol that is not a piece is emitted as its UTF-8 bytes (<0xXX> pieces).
 */
import { ArgumentError } from "../errors.js";
import { SPACE_SYMBOL, TokenType, bytePiece, parseBytePiece, type Vocab } from "./vocab.js";

export interface EncodeOptions {
  /** Prepend BOS (default vocab.addBos). */
  addBos?: boolean;
  /** Append EOS (default vocab.addEos). */
  addEos?: boolean;
  /** Turn the texts of CONTROL/UNKNOWN tokens ("<s>", "</s>", "<unk>") into their ids (default false). */
  parseSpecial?: boolean;
}

export interface DecodeOptions {
  /** Drop CONTROL and UNKNOWN tokens instead of rendering their text. */
  skipSpecial?: boolean;
}

export interface StreamDecoderOptions extends DecodeOptions {
  /**
   * Remove the leading space of the first text token even if no BOS was pushed before it
   * (as decode() does for a whole sequence). Default false: only the first text token after a pushed
   * BOS loses its leading space, so that streaming generated tokens keeps their spaces.
   */
  stripLeadingSpace?: boolean;
}

export interface StreamDecoder {
  /** Returns the text that is complete after this token (possibly ""). */
  push(id: number): string;
  /** Returns what is still held (an incomplete UTF-8 sequence becomes U+FFFD) and resets. */
  flush(): string;
}

const EOG_TEXTS = new Set(["<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>"]);

/** Binary max-heap of bigram candidates ordered by (score desc, left asc). */
class BigramQueue {
  private left: number[] = [];
  private right: number[] = [];
  private score: number[] = [];
  private size: number[] = [];
  private n = 0;

  get length(): number {
    return this.n;
  }

  private before(i: number, j: number): boolean {
    const si = this.score[i]!;
    const sj = this.score[j]!;
    return si > sj || (si === sj && this.left[i]! < this.left[j]!);
  }

  private swap(i: number, j: number): void {
    const l = this.left, r = this.right, s = this.score, z = this.size;
    let t = l[i]!; l[i] = l[j]!; l[j] = t;
    t = r[i]!; r[i] = r[j]!; r[j] = t;
    t = s[i]!; s[i] = s[j]!; s[j] = t;
    t = z[i]!; z[i] = z[j]!; z[j] = t;
  }

  push(left: number, right: number, score: number, size: number): void {
    let i = this.n++;
    this.left[i] = left;
    this.right[i] = right;
    this.score[i] = score;
    this.size[i] = size;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.before(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }

  /** Pops the top into out = [left, right, size]. */
  pop(out: number[]): void {
    out[0] = this.left[0]!;
    out[1] = this.right[0]!;
    out[2] = this.size[0]!;
    const last = --this.n;
    if (last > 0) {
      this.left[0] = this.left[last]!;
      this.right[0] = this.right[last]!;
      this.score[0] = this.score[last]!;
      this.size[0] = this.size[last]!;
      let i = 0;
      for (;;) {
        const a = 2 * i + 1;
        const b = a + 1;
        let m = i;
        if (a < last && this.before(a, m)) m = a;
        if (b < last && this.before(b, m)) m = b;
        if (m === i) break;
        this.swap(i, m);
        i = m;
      }
    }
  }
}

type Fragment = string | number; // raw text or a token id

export class SpmTokenizer {
  private static readonly encoder = new TextEncoder();
  readonly vocab: Vocab;
  readonly nVocab: number;
  private readonly pieceToId = new Map<string, number>();
  private readonly byteIds = new Int32Array(256).fill(-1);
  /** Token ids whose text is cut out before BPE, longest text first. */
  private readonly specialIds: number[];
  private readonly eog = new Set<number>();
  /** Rendered bytes of each token for decoding (null: special token, rendered from its text on demand). */
  private readonly pieceBytes: (Uint8Array | null)[];

  constructor(vocab: Vocab) {
    const n = vocab.tokens.length;
    if (vocab.scores.length !== n || vocab.types.length !== n) {
      throw new ArgumentError(`vocab: ${n} tokens but ${vocab.scores.length} scores and ${vocab.types.length} types`);
    }
    this.vocab = vocab;
    this.nVocab = n;
    this.pieceBytes = new Array(n);
    const special: number[] = [];
    for (let id = 0; id < n; id++) {
      const piece = vocab.tokens[id]!;
      const type = vocab.types[id]!;
      this.pieceToId.set(piece, id); // the last duplicate wins, as in llama.cpp
      if ((type === TokenType.CONTROL || type === TokenType.USER_DEFINED || type === TokenType.UNKNOWN) && piece.length > 0) {
        special.push(id);
      }
      if (type === TokenType.CONTROL && EOG_TEXTS.has(piece)) this.eog.add(id);
      this.pieceBytes[id] = this.renderPiece(id);
    }
    // byte pieces are looked up by text whatever their type, as llama.cpp's byte_to_token does
    for (let b = 0; b < 256; b++) {
      const id = this.pieceToId.get(bytePiece(b)) ?? (b < 0x80 ? this.pieceToId.get(String.fromCharCode(b)) : undefined);
      if (id !== undefined) this.byteIds[b] = id;
    }
    const lens = special.map((id) => Buffer.byteLength(vocab.tokens[id]!, "utf8")); // llama.cpp sorts by byte length
    this.specialIds = special
      .map((id, i) => [id, lens[i]!] as const)
      .sort((a, b) => b[1] - a[1] || a[0] - b[0])
      .map((x) => x[0]);
    if (vocab.eosId >= 0) this.eog.add(vocab.eosId);
    for (const id of vocab.eogIds ?? []) this.eog.add(id);
  }

  private renderPiece(id: number): Uint8Array | null {
    const enc = SpmTokenizer.encoder;
    const piece = this.vocab.tokens[id]!;
    switch (this.vocab.types[id]) {
      case TokenType.CONTROL:
      case TokenType.UNKNOWN:
        return null;
      case TokenType.BYTE: {
        const b = parseBytePiece(piece);
        if (b >= 0) return Uint8Array.of(b);
        return enc.encode(piece);
      }
      case TokenType.USER_DEFINED:
        return enc.encode(piece); // llama.cpp copies user-defined texts as they are
      case TokenType.UNUSED:
        return new Uint8Array(0);
      default:
        return enc.encode(piece.split(SPACE_SYMBOL).join(" "));
    }
  }

  private checkId(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.nVocab) {
      throw new ArgumentError(`token id ${id} is out of range (vocab size ${this.nVocab})`);
    }
  }

  tokenToPiece(id: number): string {
    this.checkId(id);
    return this.vocab.tokens[id]!;
  }

  /** Id of an exact piece, or undefined. */
  pieceId(piece: string): number | undefined {
    return this.pieceToId.get(piece);
  }

  isEog(id: number): boolean {
    return this.eog.has(id);
  }

  isControl(id: number): boolean {
    const t = this.vocab.types[id];
    return t === TokenType.CONTROL || t === TokenType.UNKNOWN;
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    const v = this.vocab;
    const addBos = opts.addBos ?? v.addBos;
    const addEos = opts.addEos ?? v.addEos;
    const out: number[] = [];
    if (addBos) {
      if (v.bosId < 0) throw new ArgumentError("addBos: this vocabulary has no BOS token");
      out.push(v.bosId);
    }
    let prevSpecial = true; // the first fragment gets the space prefix
    for (const frag of this.partition(text, opts.parseSpecial ?? false)) {
      if (typeof frag === "number") {
        out.push(frag);
        prevSpecial = true;
      } else {
        const s = v.addSpacePrefix && prevSpecial ? " " + frag : frag;
        this.bpe(s.replaceAll(" ", SPACE_SYMBOL), out);
        prevSpecial = false;
      }
    }
    if (addEos) {
      if (v.eosId < 0) throw new ArgumentError("addEos: this vocabulary has no EOS token");
      out.push(v.eosId);
    }
    return out;
  }

  /** Splits text into raw fragments (non-empty) and special-token ids (llama.cpp tokenizer_st_partition). */
  private partition(text: string, parseSpecial: boolean): Fragment[] {
    if (text.length === 0) return [];
    let frags: Fragment[] = [text];
    for (const id of this.specialIds) {
      const type = this.vocab.types[id];
      if (!parseSpecial && type !== TokenType.USER_DEFINED) continue;
      const st = this.vocab.tokens[id]!;
      let next: Fragment[] | null = null;
      for (let i = 0; i < frags.length; i++) {
        const f = frags[i]!;
        if (typeof f === "number" || f.indexOf(st) < 0) {
          next?.push(f);
          continue;
        }
        next ??= frags.slice(0, i);
        let from = 0;
        for (let at = f.indexOf(st); at >= 0; at = f.indexOf(st, from)) {
          if (at > from) next.push(f.slice(from, at));
          next.push(id);
          from = at + st.length;
        }
        if (from < f.length) next.push(f.slice(from));
      }
      if (next) frags = next;
    }
    return frags;
  }

  /** Greedy SentencePiece-BPE over the characters of `text` (already escaped), appending ids to out. */
  private bpe(text: string, out: number[]): void {
    // symbols: UTF-16 [start, end) ranges of characters, in a doubly linked list
    const cap = text.length;
    const start = new Int32Array(cap);
    const end = new Int32Array(cap);
    const prev = new Int32Array(cap);
    const next = new Int32Array(cap);
    let n = 0;
    for (let i = 0; i < text.length; ) {
      const c = text.charCodeAt(i);
      const w = c >= 0xd800 && c <= 0xdbff && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00 ? 2 : 1;
      start[n] = i;
      end[n] = i + w;
      prev[n] = n - 1;
      next[n] = n + 1;
      n++;
      i += w;
    }
    if (n === 0) return;
    next[n - 1] = -1;

    const scores = this.vocab.scores;
    const map = this.pieceToId;
    const queue = new BigramQueue();
    const tryAdd = (l: number, r: number): void => {
      if (l < 0 || r < 0) return;
      const id = map.get(text.slice(start[l]!, end[r]!));
      if (id === undefined) return;
      queue.push(l, r, scores[id]!, end[r]! - start[l]!);
    };
    for (let i = 1; i < n; i++) tryAdd(i - 1, i);

    const top = [0, 0, 0];
    while (queue.length > 0) {
      queue.pop(top);
      const l = top[0]!, r = top[1]!, size = top[2]!;
      const ln = end[l]! - start[l]!;
      const rn = end[r]! - start[r]!;
      // skip candidates made stale by an earlier merge
      if (ln === 0 || rn === 0 || ln + rn !== size) continue;
      end[l] = end[r]!;
      start[r] = end[r]!; // empty
      next[l] = next[r]!;
      if (next[r]! >= 0) prev[next[r]!] = l;
      tryAdd(prev[l]!, l);
      tryAdd(l, next[l]!);
    }

    for (let i = 0; i !== -1; i = next[i]!) {
      const s = text.slice(start[i]!, end[i]!);
      const id = map.get(s);
      if (id !== undefined) {
        out.push(id);
        continue;
      }
      for (const b of SpmTokenizer.encoder.encode(s)) {
        const bid = this.byteIds[b]!;
        if (bid >= 0) out.push(bid);
        else if (this.vocab.unkId >= 0) out.push(this.vocab.unkId);
        else throw new ArgumentError(`cannot encode byte 0x${b.toString(16)}: no byte piece and no <unk>`);
      }
    }
  }

  /** The bytes token `id` renders to, or null when it renders to nothing. */
  private tokenBytes(id: number, skipSpecial: boolean): Uint8Array | null {
    const b = this.pieceBytes[id];
    if (b !== null && b !== undefined) return b;
    if (skipSpecial) return null;
    return SpmTokenizer.encoder.encode(this.vocab.tokens[id]!);
  }


  /**
   * Like sentencepiece decode / llama_detokenize: U+2581 -> space, byte pieces -> bytes (invalid UTF-8
   * becomes U+FFFD), and the leading space of the first text token (after any leading control
   * tokens such as BOS) is removed when the vocabulary adds a space prefix. CONTROL/UNKNOWN tokens
   * render as their text unless skipSpecial.
   */
  decode(ids: number[], opts: DecodeOptions = {}): string {
    const skip = opts.skipSpecial ?? false;
    const parts: Uint8Array[] = [];
    let total = 0;
    let atStart = this.vocab.addSpacePrefix;
    for (const id of ids) {
      this.checkId(id);
      let b = this.tokenBytes(id, skip);
      if (this.isControl(id)) {
        if (b) { parts.push(b); total += b.length; }
        continue;
      }
      if (atStart && b && b.length > 0 && b[0] === 0x20) b = b.subarray(1);
      atStart = false;
      if (b && b.length) { parts.push(b); total += b.length; }
    }
    const all = new Uint8Array(total);
    let o = 0;
    for (const p of parts) { all.set(p, o); o += p.length; }
    return new TextDecoder("utf-8", { ignoreBOM: true }).decode(all);
  }

  /**
   * Incremental decoder: each push returns the text completed by that token; bytes of a character
   * split across byte tokens are held until the character is complete.
   */
  createStreamDecoder(opts: StreamDecoderOptions = {}): StreamDecoder {
    const skip = opts.skipSpecial ?? false;
    let dec = new TextDecoder("utf-8", { ignoreBOM: true });
    // strip the leading space of the first text token: after a pushed BOS, or from the start if asked
    let strip = (opts.stripLeadingSpace ?? false) && this.vocab.addSpacePrefix;
    let seenText = false;
    return {
      push: (id: number): string => {
        this.checkId(id);
        let b = this.tokenBytes(id, skip);
        if (this.isControl(id)) {
          if (id === this.vocab.bosId && !seenText && this.vocab.addSpacePrefix) strip = true;
        } else {
          if (strip && !seenText && b && b.length > 0 && b[0] === 0x20) b = b.subarray(1);
          seenText = true;
          strip = false;
        }
        if (!b || b.length === 0) return "";
        return dec.decode(b, { stream: true });
      },
      flush: (): string => {
        const s = dec.decode();
        dec = new TextDecoder("utf-8", { ignoreBOM: true });
        return s;
      },
    };
  }
}
