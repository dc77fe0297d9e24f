/**
 * safetensors files: reading (lazy, validated), sharded checkpoints with an index, and writing.
 *
 *   const ck = SafetensorsCheckpoint.open("Mixtral-8x7B-v0.1/");   // index + shards
 *   const w = ck.readF32("model.layers.0.self_attn.q_proj.weight");
 *   writeSafetensorsSharded(dir, [{ name, dtype: "BF16", shape, data: () => bytes }], { maxShardBytes: 5e9 });
 */
export { DTYPE_SIZE, MAX_HEADER_BYTES, fromF32, isDtype, isFloatDtype, numel, toF32, type FloatDtype, type StDtype, type StTensorInfo } from "./format.js";
export { SafetensorsFile, parseHeader, type StHeader } from "./reader.js";
export { INDEX_FILE, SafetensorsCheckpoint, type ShardedTensor } from "./sharded.js";
export { planShards, tensorByteSize, writeSafetensors, writeSafetensorsSharded, type ShardedWriteResult, type StTensorSource } from "./writer.js";
