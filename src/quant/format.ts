/**
 * ggml tensor types: ids as stored in GGUF tensor infos, block sizes and bytes per block.
 * Facts of the format (ggml.h / ggml.c type_traits).
 */
export enum GgmlType {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22, IQ4_XS = 23,
  I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30,
  TQ1_0 = 34, TQ2_0 = 35,
}

export interface BlockFormat {
  type: GgmlType;
  name: string;
  /** elements per block */
  blockSize: number;
  /** bytes per block */
  typeSize: number;
}

const QK_K = 256;

const TABLE: BlockFormat[] = [
  { type: GgmlType.F32, name: "F32", blockSize: 1, typeSize: 4 },
  { type: GgmlType.F16, name: "F16", blockSize: 1, typeSize: 2 },
  { type: GgmlType.BF16, name: "BF16", blockSize: 1, typeSize: 2 },
  { type: GgmlType.F64, name: "F64", blockSize: 1, typeSize: 8 },
  { type: GgmlType.I8, name: "I8", blockSize: 1, typeSize: 1 },
  { type: GgmlType.I16, name: "I16", blockSize: 1, typeSize: 2 },
  { type: GgmlType.I32, name: "I32", blockSize: 1, typeSize: 4 },
  { type: GgmlType.I64, name: "I64", blockSize: 1, typeSize: 8 },
  { type: GgmlType.Q4_0, name: "Q4_0", blockSize: 32, typeSize: 18 },
  { type: GgmlType.Q4_1, name: "Q4_1", blockSize: 32, typeSize: 20 },
  { type: GgmlType.Q5_0, name: "Q5_0", blockSize: 32, typeSize: 22 },
  { type: GgmlType.Q5_1, name: "Q5_1", blockSize: 32, typeSize: 24 },
  { type: GgmlType.Q8_0, name: "Q8_0", blockSize: 32, typeSize: 34 },
  { type: GgmlType.Q8_1, name: "Q8_1", blockSize: 32, typeSize: 36 },
  { type: GgmlType.Q2_K, name: "Q2_K", blockSize: QK_K, typeSize: 84 },
  { type: GgmlType.Q3_K, name: "Q3_K", blockSize: QK_K, typeSize: 110 },
  { type: GgmlType.Q4_K, name: "Q4_K", blockSize: QK_K, typeSize: 144 },
  { type: GgmlType.Q5_K, name: "Q5_K", blockSize: QK_K, typeSize: 176 },
  { type: GgmlType.Q6_K, name: "Q6_K", blockSize: QK_K, typeSize: 210 },
  { type: GgmlType.Q8_K, name: "Q8_K", blockSize: QK_K, typeSize: 292 },
  { type: GgmlType.IQ2_XXS, name: "IQ2_XXS", blockSize: QK_K, typeSize: 66 },
  { type: GgmlType.IQ2_XS, name: "IQ2_XS", blockSize: QK_K, typeSize: 74 },
  { type: GgmlType.IQ3_XXS, name: "IQ3_XXS", blockSize: QK_K, typeSize: 98 },
  { type: GgmlType.IQ1_S, name: "IQ1_S", blockSize: QK_K, typeSize: 50 },
  { type: GgmlType.IQ4_NL, name: "IQ4_NL", blockSize: 32, typeSize: 18 },
  { type: GgmlType.IQ3_S, name: "IQ3_S", blockSize: QK_K, typeSize: 110 },
  { type: GgmlType.IQ2_S, name: "IQ2_S", blockSize: QK_K, typeSize: 82 },
  { type: GgmlType.IQ4_XS, name: "IQ4_XS", blockSize: QK_K, typeSize: 136 },
  { type: GgmlType.IQ1_M, name: "IQ1_M", blockSize: QK_K, typeSize: 56 },
  { type: GgmlType.TQ1_0, name: "TQ1_0", blockSize: QK_K, typeSize: 54 },
  { type: GgmlType.TQ2_0, name: "TQ2_0", blockSize: QK_K, typeSize: 66 },
];

const BY_TYPE = new Map<number, BlockFormat>(TABLE.map((f) => [f.type, f]));
const BY_NAME = new Map<string, BlockFormat>(TABLE.map((f) => [f.name, f]));

/** Layout of a ggml type id, or undefined when the id is not a known ggml type. */
export function blockFormat(type: number): BlockFormat | undefined {
  return BY_TYPE.get(type);
}

export function typeByName(name: string): BlockFormat | undefined {
  return BY_NAME.get(name.toUpperCase());
}

export function typeName(type: number): string {
  return BY_TYPE.get(type)?.name ?? `type#${type}`;
}

/** Bytes of a row of n elements (n must be a multiple of the block size). */
export function rowBytes(type: GgmlType, n: number): number {
  const f = BY_TYPE.get(type)!;
  return (n / f.blockSize) * f.typeSize;
}
