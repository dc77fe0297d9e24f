#!/usr/bin/env python3
"""Golden blocks for the importance-matrix quantizers (src/quant/*Weighted).

Calls ggml's own quantize_<type>(src, dst, nrow, n_per_row, quant_weights) from the libggml-base.so
that node-llama-cpp ships (a devDependency: prebuilt llama.cpp CPU binaries) through ctypes, on the
reference quantizer input (../shared/reference/quant/input.f32, [8, 512]) and two importance
vectors of 512 values, and writes test/golden/quant-imatrix/<type>.<imp>.bin plus imp1.f32, imp2.f32.
Needs python3 with numpy. Run from the repository root:  python3 scripts/make-imatrix-golden.py
"""
import ctypes
import glob
import json
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("CMX_SHARED", os.path.join(ROOT, "..", "shared"))
OUT = os.path.join(ROOT, "test", "golden", "quant-imatrix")
# (name, block size, bytes per block)
TYPES = [("q4_0", 32, 18), ("q4_1", 32, 20), ("q5_0", 32, 22), ("q5_1", 32, 24),
         ("q2_K", 256, 84), ("q3_K", 256, 110), ("q4_K", 256, 144), ("q5_K", 256, 176), ("q6_K", 256, 210)]


def main():
    libs = glob.glob(os.path.join(ROOT, "node_modules", "@node-llama-cpp", "linux-x64", "bins", "*", "libggml-base.so"))
    if not libs:
        sys.exit("libggml-base.so not found under node_modules/@node-llama-cpp/linux-x64 (npm ci first)")
    lib = ctypes.CDLL(libs[0])
    x = np.fromfile(os.path.join(SHARED, "reference", "quant", "input.f32"), dtype=np.float32)
    assert x.size == 8 * 512
    rng = np.random.RandomState(20250301)
    imps = {
        # mean squares of activations: positive, a few times apart
        "imp1": rng.uniform(0.05, 3.0, 512).astype(np.float32),
        # a wide dynamic range with dead columns (zeros), as real imatrix entries have
        "imp2": (np.exp(rng.uniform(-9.0, 4.0, 512)) * (rng.uniform(0, 1, 512) > 0.1)).astype(np.float32),
    }
    os.makedirs(OUT, exist_ok=True)
    files = {}
    for name, imp in imps.items():
        imp.tofile(os.path.join(OUT, f"{name}.f32"))
        for t, bs, ts in TYPES:
            f = getattr(lib, "quantize_" + t)
            f.restype = ctypes.c_size_t
            f.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
            out = np.zeros(8 * 512 // bs * ts, dtype=np.uint8)
            n = f(x.ctypes.data, out.ctypes.data, 8, 512, imp.ctypes.data)
            assert n == out.size
            out.tofile(os.path.join(OUT, f"{t}.{name}.bin"))
            files[f"{t}.{name}.bin"] = int(out.size)
    meta = {"library": os.path.relpath(libs[0], ROOT), "input": "reference/quant/input.f32 [8, 512]", "seed": 20250301, "files": files}
    with open(os.path.join(OUT, "manifest.json"), "w") as fh:
        json.dump(meta, fh, indent=1)
    print(f"wrote {len(files)} files to {OUT}")


if __name__ == "__main__":
    main()
