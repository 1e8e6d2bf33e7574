/*
 * RIA warm start (Relative Importance and Activations; Zhang et al., "Plug-and-Play",
 * ICLR 2024) as a sparseswaps plugin written in C: a template for third-party plugins.
 *
 *   score(i, j) = ( |W_ij| / sum_j' |W_ij'|  +  |W_ij| / sum_i' |W_i'j| ) * ||X_j||^a
 *
 * with ||X_j|| = sqrt(G[j,j]) and a = 0.5 by default (option "alpha=A"). Within each row
 * the k best-scored weights are kept (or the N best of every group of M for N:M); ties
 * keep the lower column. Scores are computed in double.
 *
 * Build: cc -std=c11 -O2 -shared -fPIC -I plugins/include ria.c -lm -o libria.so
 */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sparseswaps_plugin.h"

/* One message per thread: the host reads it on the thread that got the error. */
static _Thread_local char last_error[512];

static void set_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
}

static const char *ria_last_error(void) { return last_error; }

typedef struct {
    double score;
    uint64_t index;
} scored;

/* Higher score first; equal scores: lower column first (a total order, so the kept set is
 * well defined). */
static int by_score_desc(const void *a, const void *b) {
    const scored *x = a, *y = b;
    if (x->score > y->score) return -1;
    if (x->score < y->score) return 1;
    return (x->index > y->index) - (x->index < y->index);
}

/* Keeps the `keep` best of `s[0..len)` in `out` (indices of s are relative to `out`). */
static void keep_best(scored *s, uint64_t len, uint64_t keep, uint8_t *out) {
    qsort(s, (size_t)len, sizeof *s, by_score_desc);
    for (uint64_t t = 0; t < len; t++) out[s[t].index] = t < keep ? 1 : 0;
}

/* Options: "" or "alpha=A". */
static int parse_options(const char *options, double *alpha) {
    *alpha = 0.5;
    if (options == NULL || options[0] == '\0') return 0;
    char *end = NULL;
    if (strncmp(options, "alpha=", 6) != 0) return -1;
    *alpha = strtod(options + 6, &end);
    if (end == options + 6 || *end != '\0' || !isfinite(*alpha)) return -1;
    return 0;
}

static int32_t ria_compute(const ss_mask_request *req, uint8_t *out) {
    if (req == NULL || out == NULL) {
        set_error("ria: null request or output buffer");
        return SS_ERR_INVALID_REQUEST;
    }
    if (req->struct_size < sizeof(ss_mask_request)) {
        set_error("ria: request struct_size %llu < %zu", (unsigned long long)req->struct_size,
                  sizeof(ss_mask_request));
        return SS_ERR_INVALID_REQUEST;
    }
    const uint64_t rows = req->rows, cols = req->cols;
    const float *w = req->weights;
    if (w == NULL || cols == 0) {
        set_error("ria: no weights");
        return SS_ERR_INVALID_REQUEST;
    }
    if (req->gram_diag == NULL && req->gram == NULL) {
        set_error("ria needs the Gram diagonal (activation norms); the host sent none");
        return SS_ERR_MISSING_INPUT;
    }
    double alpha;
    if (parse_options(req->options, &alpha) != 0) {
        set_error("ria: bad options '%s' (expected alpha=A)", req->options);
        return SS_ERR_INVALID_REQUEST;
    }
    const ss_pattern p = req->pattern;
    if (p.kind == SS_PATTERN_NM ? (p.m == 0 || cols % p.m != 0 || p.n > p.m)
                                : (p.kind != SS_PATTERN_UNSTRUCTURED || p.k > cols)) {
        set_error("ria: unsupported or malformed pattern (kind %u)", p.kind);
        return SS_ERR_UNSUPPORTED_PATTERN;
    }
    for (uint64_t i = 0; i < rows * cols; i++) {
        if (!isfinite(w[i])) {
            set_error("ria: non-finite weight at row %llu, column %llu",
                      (unsigned long long)(i / cols), (unsigned long long)(i % cols));
            return SS_ERR_INVALID_REQUEST;
        }
    }
    double *col_sum = calloc((size_t)cols, sizeof *col_sum);
    double *act = malloc((size_t)cols * sizeof *act);
    scored *s = malloc((size_t)cols * sizeof *s);
    if (col_sum == NULL || act == NULL || s == NULL) {
        free(col_sum), free(act), free(s);
        set_error("ria: out of memory for %llu columns", (unsigned long long)cols);
        return SS_ERR_FAILED;
    }
    for (uint64_t i = 0; i < rows; i++)
        for (uint64_t j = 0; j < cols; j++) col_sum[j] += fabs((double)w[i * cols + j]);
    for (uint64_t j = 0; j < cols; j++) {
        double g = req->gram_diag ? (double)req->gram_diag[j] : (double)req->gram[j * cols + j];
        act[j] = pow(sqrt(g > 0.0 ? g : 0.0), alpha);
    }
    for (uint64_t i = 0; i < rows; i++) {
        const float *wr = w + i * cols;
        double row_sum = 0.0;
        for (uint64_t j = 0; j < cols; j++) row_sum += fabs((double)wr[j]);
        for (uint64_t j = 0; j < cols; j++) {
            double a = fabs((double)wr[j]);
            double rel = (row_sum > 0.0 ? a / row_sum : 0.0) + (col_sum[j] > 0.0 ? a / col_sum[j] : 0.0);
            s[j].score = rel * act[j];
            s[j].index = j;
        }
        uint8_t *o = out + i * cols;
        if (p.kind == SS_PATTERN_UNSTRUCTURED) {
            keep_best(s, cols, p.k, o);
        } else {
            for (uint64_t g = 0; g < cols / p.m; g++) {
                scored *sg = s + g * p.m;
                for (uint64_t t = 0; t < p.m; t++) sg[t].index = t;
                keep_best(sg, p.m, p.n, o + g * p.m);
            }
        }
    }
    free(col_sum), free(act), free(s);
    return SS_OK;
}

static const ss_descriptor descriptor = {
    .abi_version = SPARSESWAPS_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(ss_descriptor),
    .name = "ria",
    .version = "1.0.0",
    .patterns = SS_SUPPORTS_UNSTRUCTURED | SS_SUPPORTS_NM,
    .needs = SS_NEEDS_GRAM_DIAG,
    .compute = ria_compute,
    .last_error = ria_last_error,
};

SS_PLUGIN_EXPORT const ss_descriptor *sparseswaps_plugin_v1(void) { return &descriptor; }
