#!/bin/sh
# Regenerates test/golden/iq (see its README.md) with ggml's C code: the llama.cpp source that
# node-llama-cpp ships (node_modules/node-llama-cpp/llama/gitRelease.bundle), built for plain x86-64
# without FMA contraction, as llama-quantize's reference quantizers run.
set -e
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
git -c advice.detachedHead=false clone -q node_modules/node-llama-cpp/llama/gitRelease.bundle "$tmp/llama.cpp"
src="$tmp/llama.cpp/ggml"
cc -O2 -ffp-contract=off -std=gnu11 -I"$src/include" -I"$src/src" -c "$src/src/ggml-quants.c" -o "$tmp/ggml-quants.o"
cc -O2 -ffp-contract=off -std=gnu11 -I"$src/include" scripts/iq-golden.c "$tmp/ggml-quants.o" -lm -o "$tmp/iq-golden"
rm -f test/golden/iq/*.bin test/golden/iq/*.f32
"$tmp/iq-golden" ../shared/reference/quant/input.f32 test/golden/iq
ls -l test/golden/iq
