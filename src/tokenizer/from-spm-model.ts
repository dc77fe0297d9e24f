/**
 * Loads a SentencePiece tokenizer.model (a serialized sentencepiece ModelProto) into a Vocab.
 *
 * Fields read (sentencepiece_model.proto):
 *   ModelProto      1 pieces (repeated SentencePiece), 2 trainer_spec, 3 normalizer_spec
 *   SentencePiece   1 piece (string), 2 score (float), 3 type (enum, default NORMAL)
 *   TrainerSpec     3 model_type, 35 byte_fallback, 40 unk_id, 41 bos_id, 42 eos_id, 43 pad_id
 *   NormalizerSpec  3 add_dummy_prefix (default true)
 * Everything else is skipped.
 */
import { readFileSync } from "node:fs";
import { FormatError } from "../errors.js";
import { ProtoReader, WireType } from "./protobuf.js";
import { TokenType, type Vocab } from "./vocab.js";

interface TrainerSpec {
  modelType: number;
  byteFallback: boolean;
  unkId: number;
  bosId: number;
  eosId: number;
  padId: number;
}

function readPiece(r: ProtoReader, index: number): { piece: string; score: number; type: number } {
  const at = `pieces[${index}]`;
  let piece: string | undefined;
  let score = 0;
  let type: number = TokenType.NORMAL;
  while (!r.done()) {
    const [num, wt] = r.tag(at);
    switch (num) {
      case 1:
        r.expect(`${at}.piece`, wt, WireType.LEN);
        piece = r.string(`${at}.piece`);
        break;
      case 2:
        r.expect(`${at}.score`, wt, WireType.I32);
        score = r.float(`${at}.score`);
        break;
      case 3:
        r.expect(`${at}.type`, wt, WireType.VARINT);
        type = r.int32(`${at}.type`);
        if (type < TokenType.NORMAL || type > TokenType.BYTE) r.fail(`${at}.type`, `unknown piece type ${type}`);
        break;
      default:
        r.skip(`${at}.field${num}`, wt);
    }
  }
  if (piece === undefined) r.fail(`${at}.piece`, "missing");
  return { piece, score, type };
}

function readTrainerSpec(r: ProtoReader): TrainerSpec {
  // proto2 defaults
  const spec: TrainerSpec = { modelType: 1, byteFallback: false, unkId: 0, bosId: 1, eosId: 2, padId: -1 };
  while (!r.done()) {
    const [num, wt] = r.tag("trainer_spec");
    const intField = (name: string): number => {
      r.expect(`trainer_spec.${name}`, wt, WireType.VARINT);
      return r.int32(`trainer_spec.${name}`);
    };
    switch (num) {
      case 3:
        spec.modelType = intField("model_type");
        break;
      case 35:
        r.expect("trainer_spec.byte_fallback", wt, WireType.VARINT);
        spec.byteFallback = r.bool("trainer_spec.byte_fallback");
        break;
      case 40:
        spec.unkId = intField("unk_id");
        break;
      case 41:
        spec.bosId = intField("bos_id");
        break;
      case 42:
        spec.eosId = intField("eos_id");
        break;
      case 43:
        spec.padId = intField("pad_id");
        break;
      default:
        r.skip(`trainer_spec.field${num}`, wt);
    }
  }
  return spec;
}

function readNormalizerSpec(r: ProtoReader): { addDummyPrefix: boolean } {
  let addDummyPrefix = true;
  while (!r.done()) {
    const [num, wt] = r.tag("normalizer_spec");
    if (num === 3) {
      r.expect("normalizer_spec.add_dummy_prefix", wt, WireType.VARINT);
      addDummyPrefix = r.bool("normalizer_spec.add_dummy_prefix");
    } else {
      r.skip(`normalizer_spec.field${num}`, wt);
    }
  }
  return { addDummyPrefix };
}

/** Parses the bytes of a tokenizer.model; `fileName` is only used in error messages. */
export function parseSpmModel(bytes: Uint8Array, fileName: string): Vocab {
  const r = new ProtoReader(bytes, fileName);
  const tokens: string[] = [];
  const scores: number[] = [];
  const types: number[] = [];
  let trainer: TrainerSpec | undefined;
  let normalizer: { addDummyPrefix: boolean } | undefined;
  while (!r.done()) {
    const [num, wt] = r.tag("ModelProto");
    switch (num) {
      case 1: {
        const at = `pieces[${tokens.length}]`;
        r.expect(at, wt, WireType.LEN);
        const p = readPiece(r.sub(at), tokens.length);
        tokens.push(p.piece);
        scores.push(p.score);
        types.push(p.type);
        break;
      }
      case 2:
        r.expect("trainer_spec", wt, WireType.LEN);
        trainer = readTrainerSpec(r.sub("trainer_spec"));
        break;
      case 3:
        r.expect("normalizer_spec", wt, WireType.LEN);
        normalizer = readNormalizerSpec(r.sub("normalizer_spec"));
        break;
      default:
        r.skip(`ModelProto.field${num}`, wt);
    }
  }
  if (tokens.length === 0) throw new FormatError(fileName, "pieces", "no pieces (not a SentencePiece model?)");
  const t = trainer ?? { modelType: 1, byteFallback: false, unkId: 0, bosId: 1, eosId: 2, padId: -1 };
  const n = tokens.length;
  const checkId = (name: string, id: number): number => {
    if (id < 0) return -1;
    if (id >= n) throw new FormatError(fileName, `trainer_spec.${name}`, `id ${id} is out of range (${n} pieces)`);
    return id;
  };
  return {
    tokens,
    scores: Float32Array.from(scores),
    types: Int32Array.from(types),
    unkId: checkId("unk_id", t.unkId),
    bosId: checkId("bos_id", t.bosId),
    eosId: checkId("eos_id", t.eosId),
    padId: checkId("pad_id", t.padId),
    addBos: true,
    addEos: false,
    addSpacePrefix: normalizer?.addDummyPrefix ?? true,
    byteFallback: t.byteFallback,
  };
}

export function loadSpmModel(path: string): Vocab {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new FormatError(path, "file", `cannot read: ${(e as Error).message}`);
  }
  return parseSpmModel(bytes, path);
}
