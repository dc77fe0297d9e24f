// Why a quantized model's next-token distribution can move by 0.1 or more between two engines that
// agree to a float32 ulp (docs/quantize.md, "Agreement with llama.cpp"): before a quantized product
// the activations are quantized per block of 32 to Q8_0, with an f16 scale d = amax/127. The block
// below is row 7, values 128..159 of ffn_norm-0 of the IQ4_NL test model of iq-model.test.ts (seed 11)
// as this toolkit's default arithmetic computed it while its RMSNorm added eps before rounding the mean
// to float: there amax/127 lands exactly on the tie between two f16 values and rounds up (to even).
// llama.cpp's amax is one ulp smaller (the float nearest the float64 value) and takes the lower f16;
// every int8 stays, and the block's share of each dot product moves by 7.3e-4 of itself.
// The expected bytes are what llama.cpp's own quantize_row_q8_0 writes for these inputs
// (node-llama-cpp 3.21.1's prebuilt x64, haswell and zen4 CPU libraries, called directly).

import assert from "node:assert/strict";
import { test } from "node:test";
import { f16ToF32 } from "./f16.js";
import { GgmlType } from "./format.js";
import { quantizeActivation, vecDot } from "./index.js";
import { IQ4_NL_BYTES } from "./iq4_nl.js";

const BLOCK = Float32Array.of(
  -0.248866767, -1.07635808, -0.425442994, -0.892261505, 0.441347420, 0.253671288, -2.65778351, 0.165661708,
  -0.379964322, -2.00555873, -0.634859443, -0.281566769, -1.24486303, 1.10567117, 0.157548755, -0.285608619,
  -0.524447143, 0.718909740, -0.615968704, -0.129577160, -0.302106619, -0.979634643, 0.156181961, 0.734186709,
  -0.177958474, 0.174787074, 2.09870744, 1.87840617, 0.737178922, 0.545372784, -1.54557621, 0.375764698,
);
const AT_TIE = "5c25f4cdecd5150c8108eea0e2f3c53508f2e722e3faf2d10723f708645a231ab612";
const ONE_ULP_LESS = "5b25f4cdecd5150c8108eea0e2f3c53508f2e722e3faf2d10723f708645a231ab612";

const q8 = (x: Float32Array): Uint8Array => quantizeActivation(GgmlType.Q8_0, x, 0, 32);
const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

test("Q8_0 activations: a scale on an f16 tie rounds to even, and one ulp of amax moves it, as in llama.cpp", () => {
  const amax = Math.abs(BLOCK[6]!);
  const d = Math.fround(amax / 127);
  const lo = f16ToF32(0x255b), hi = f16ToF32(0x255c);
  assert.equal(d, (lo + hi) / 2, "amax/127 is the midpoint of two f16 values");
  assert.equal(hex(q8(BLOCK)), AT_TIE);

  // the largest value one ulp nearer zero: the scale falls below the tie, the int8s stay
  const below = BLOCK.slice();
  const bits = new Uint32Array(below.buffer);
  bits[6] = bits[6]! - 1;
  assert.equal(hex(q8(below)), ONE_ULP_LESS);
  assert.deepEqual(q8(below).subarray(2), q8(BLOCK).subarray(2));

  // so a dot product with any weight block (here IQ4_NL) moves by the ratio of the two scales
  const w = new Uint8Array(IQ4_NL_BYTES);
  w[0] = 0x00; w[1] = 0x24; // d = 2^-6
  for (let j = 2; j < IQ4_NL_BYTES; j++) w[j] = (j * 37) & 0xff;
  const a = vecDot(GgmlType.IQ4_NL, 32, w, 0, q8(BLOCK), 0), b = vecDot(GgmlType.IQ4_NL, 32, w, 0, q8(below), 0);
  assert.ok(a !== 0);
  assert.ok(Math.abs(a / b - hi / lo) < 1e-12, `ratio ${a / b}`);
  assert.ok(Math.abs(hi / lo - 1 - 7.3e-4) < 1e-5, `relative step ${hi / lo - 1}`);
});
