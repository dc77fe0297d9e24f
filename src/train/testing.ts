/** Fixtures for the training tests: small vocabularies and tiny random models. */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeSyntheticModel, type SyntheticSpec } from "../model/synthetic.js";
import { GgmlType } from "../quant/format.js";
import type { Vocab } from "../tokenizer/vocab.js";

/** A vocabulary of n pieces (<unk>, <s>, </s>, then "▁a0".. ), enough for models that never tokenize. */
export function tinyVocab(n: number): Vocab {
  const tokens = ["<unk>", "<s>", "</s>"];
  for (let i = 3; i < n; i++) tokens.push(`\u2581t${i}`);
  const types = new Int32Array(n).fill(1);
  types[0] = 2; types[1] = 3; types[2] = 3;
  return {
    tokens, scores: new Float32Array(n), types, bosId: 1, eosId: 2, unkId: 0, padId: -1,
    addBos: true, addEos: false, addSpacePrefix: true,
  };
}

export const TINY_SPEC: SyntheticSpec = {
  name: "tiny-train", nEmbd: 32, nLayer: 2, nHead: 4, nHeadKv: 2, nExpert: 4, nExpertUsed: 2, nFf: 40, nCtx: 64,
  seed: 7, type: GgmlType.F32, std: 0.15,
};

/** Write a tiny random model (vocabulary of nVocab pieces) into a fresh temporary folder. */
export function tinyModelFile(over: Partial<SyntheticSpec> = {}, nVocab = 64): string {
  const dir = mkdtempSync(join(tmpdir(), "cmx-train-"));
  const path = join(dir, "tiny.gguf");
  writeSyntheticModel(path, { ...TINY_SPEC, ...over }, tinyVocab(nVocab));
  return path;
}
