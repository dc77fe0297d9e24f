/**
 * Named tolerances for numeric checks (ggml's test-quantize-fns habit): one constant per quantity,
 * with the reason next to it, never a bare 1e-3 in a test.
 */

/**
 * imatrix Σx² against a float64 recomputation from traced activations: the same float32 inputs
 * summed in another order, or (ffn_down) recomputed from F32 weights in float64, ~1e-6 relative.
 */
export const IMATRIX_SUMS_RTOL = 1e-4;

/**
 * Logits of a runtime LoRA (W·x + s·B·(A·x)) against the merged float32 model ((W + s·B·A)·x):
 * the same sums in another order, logits of about ±5, measured ~1e-6.
 */
export const LORA_RUNTIME_LOGITS_TOL = 1e-4;
