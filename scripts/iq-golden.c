// Golden data for the IQ quant types (test/golden/iq), computed by ggml's own C code: the weight
// quantizers on ../shared/reference/quant/input.f32 (8 rows of 512) without and with a fixed
// importance row, and the dequantization of seeded random blocks of every IQ type.
// Built and run by scripts/make-iq-golden.sh (links llama.cpp's ggml-quants.c; see there).
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ggml.h"

// ggml-quants.c entry points (declared in ggml-quants.h, which needs ggml's private headers)
size_t quantize_iq4_xs(const float * src, void * dst, int64_t nrow, int64_t n_per_row, const float * qw);
size_t quantize_iq3_xxs(const float * src, void * dst, int64_t nrow, int64_t n_per_row, const float * qw);
size_t quantize_iq3_s(const float * src, void * dst, int64_t nrow, int64_t n_per_row, const float * qw);
size_t quantize_iq2_xs(const float * src, void * dst, int64_t nrow, int64_t n_per_row, const float * qw);
size_t quantize_iq2_xxs(const float * src, void * dst, int64_t nrow, int64_t n_per_row, const float * qw);
void iq2xs_init_impl(enum ggml_type type);
void iq3xs_init_impl(int grid_size);
void dequantize_row_iq4_xs(const void * x, float * y, int64_t k);
void dequantize_row_iq3_xxs(const void * x, float * y, int64_t k);
void dequantize_row_iq3_s(const void * x, float * y, int64_t k);
void dequantize_row_iq2_xs(const void * x, float * y, int64_t k);
void dequantize_row_iq2_xxs(const void * x, float * y, int64_t k);
void dequantize_row_iq2_s(const void * x, float * y, int64_t k);
void dequantize_row_iq1_s(const void * x, float * y, int64_t k);

// the few ggml.c functions ggml-quants.c links against
void ggml_abort(const char * file, int line, const char * fmt, ...) { fprintf(stderr, "abort %s:%d %s\n", file, line, fmt); exit(1); }
const char * ggml_type_name(enum ggml_type type) { (void)type; return "?"; }
size_t ggml_type_size(enum ggml_type type) { (void)type; return 0; }
size_t ggml_row_size(enum ggml_type type, int64_t ne) { (void)type; (void)ne; return 0; }

enum { ROWS = 8, N = 512 };
static const char * out_dir;

static void write_file(const char * name, const void * data, size_t n) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", out_dir, name);
    FILE * f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n) { perror(path); exit(1); }
    fclose(f);
}

typedef size_t (*quantize_fn)(const float *, void *, int64_t, int64_t, const float *);
typedef void (*dequant_fn)(const void *, float *, int64_t);
static float y[4 * 256];

static uint32_t rng_state = 12345;
static uint32_t rng(void) { rng_state = rng_state * 1664525u + 1013904223u; return rng_state >> 8; }

int main(int argc, char ** argv) {
    if (argc != 3) { fprintf(stderr, "usage: iq-golden input.f32 out_dir\n"); return 2; }
    out_dir = argv[2];
    static float x[ROWS * N], qw[N];
    FILE * f = fopen(argv[1], "rb");
    if (!f || fread(x, sizeof(float), ROWS * N, f) != ROWS * N) { perror(argv[1]); return 1; }
    fclose(f);
    // a fixed importance row: positive, uneven, the same for every row (as an imatrix is)
    for (int j = 0; j < N; j++) qw[j] = 0.25f + (float)((j * 37) % 101) / 25.0f;
    write_file("importance.f32", qw, sizeof qw);

    iq2xs_init_impl(GGML_TYPE_IQ2_XXS);
    iq2xs_init_impl(GGML_TYPE_IQ2_XS);
    iq3xs_init_impl(256);
    iq3xs_init_impl(512);

    struct { const char * name; size_t bytes; quantize_fn q; int needs_qw; } types[] = {
        { "iq4_xs", 136, quantize_iq4_xs, 0 }, { "iq3_xxs", 98, quantize_iq3_xxs, 0 }, { "iq3_s", 110, quantize_iq3_s, 0 },
        { "iq2_xs", 74, quantize_iq2_xs, 1 }, { "iq2_xxs", 66, quantize_iq2_xxs, 1 },
    };
    static uint8_t q[ROWS * N];
    // (llama-quantize has no IQ2_XS/IQ2_XXS without an importance matrix: ggml asserts)
    char name[256];
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        for (int with_qw = types[t].needs_qw; with_qw <= 1; with_qw++) {
            size_t n = types[t].q(x, q, ROWS, N, with_qw ? qw : NULL);
            if (n != ROWS * (N / 256) * types[t].bytes) { fprintf(stderr, "%s: %zu bytes\n", types[t].name, n); return 1; }
            snprintf(name, sizeof name, "%s%s.weights.bin", types[t].name, with_qw ? ".imatrix" : "");
            write_file(name, q, n);
        }
    }

    // random blocks of every IQ type (4 super-blocks each) and their dequantization; the f16 d
    // field is a finite half in [2^-10, 2^-6) (random bits elsewhere: every grid index, sign and scale)
    struct { const char * name; size_t bytes; dequant_fn dq; size_t d_off; } rtypes[] = {
        { "iq4_xs", 136, dequantize_row_iq4_xs, 0 }, { "iq3_xxs", 98, dequantize_row_iq3_xxs, 0 },
        { "iq3_s", 110, dequantize_row_iq3_s, 0 }, { "iq2_xs", 74, dequantize_row_iq2_xs, 0 },
        { "iq2_xxs", 66, dequantize_row_iq2_xxs, 0 }, { "iq2_s", 82, dequantize_row_iq2_s, 0 },
        { "iq1_s", 50, dequantize_row_iq1_s, 0 },
    };
    for (size_t t = 0; t < sizeof rtypes / sizeof rtypes[0]; t++) {
        uint8_t b[4 * 136];
        for (size_t i = 0; i < 4 * rtypes[t].bytes; i++) b[i] = rng() & 255;
        for (int k = 0; k < 4; k++) {
            uint16_t h = (uint16_t)(((5 + (rng() % 4)) << 10) | (rng() & 1023) | ((rng() & 1) << 15));
            memcpy(b + k * rtypes[t].bytes + rtypes[t].d_off, &h, 2);
        }
        snprintf(name, sizeof name, "%s.random.bin", rtypes[t].name);
        write_file(name, b, 4 * rtypes[t].bytes);
        rtypes[t].dq(b, y, 4 * 256);
        snprintf(name, sizeof name, "%s.random.dequant.f32", rtypes[t].name);
        write_file(name, y, 4 * 256 * sizeof(float));
    }
    return 0;
}
