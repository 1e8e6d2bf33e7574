/*
 * sparseswaps_plugin.h — the C ABI of sparseswaps warm-start plugins (ABI version 1).
 *
 * A plugin is a shared library that exports ONE symbol, sparseswaps_plugin_v1, returning
 * a pointer to a descriptor that lives as long as the library. The host (sparseswaps)
 * allocates every buffer, validates every mask it gets back, and never unloads a library.
 * This header mirrors the Rust crate sparseswaps-plugin-abi; a test checks that sizes and
 * offsets agree. See plugins/README.md for the full contract and a worked example.
 */
#ifndef SPARSESWAPS_PLUGIN_H
#define SPARSESWAPS_PLUGIN_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SPARSESWAPS_PLUGIN_ABI_VERSION 1u
#define SPARSESWAPS_PLUGIN_ENTRY_SYMBOL "sparseswaps_plugin_v1"

/* Status codes returned by compute(). */
#define SS_OK 0
#define SS_ERR_INVALID_REQUEST 1     /* null pointer, struct_size too small, bad shape */
#define SS_ERR_UNSUPPORTED_PATTERN 2 /* the plugin does not implement this pattern */
#define SS_ERR_MISSING_INPUT 3       /* Gram diagonal / full Gram needed but absent */
#define SS_ERR_FAILED 4              /* anything else; say why through last_error() */
#define SS_ERR_PANIC 5               /* reserved for Rust plugins: a caught panic */

/* ss_pattern.kind */
#define SS_PATTERN_UNSTRUCTURED 0u /* k kept per row, anywhere in the row */
#define SS_PATTERN_NM 1u           /* n kept in every group of m consecutive inputs */

/* ss_descriptor.patterns bits */
#define SS_SUPPORTS_UNSTRUCTURED (1u << 0)
#define SS_SUPPORTS_NM (1u << 1)

/* ss_descriptor.needs bits: inputs without which the host does not call compute() */
#define SS_NEEDS_GRAM_DIAG (1u << 0) /* the Gram diagonal (the full Gram also serves) */
#define SS_NEEDS_FULL_GRAM (1u << 1) /* the full Gram matrix */

typedef struct ss_pattern {
    uint32_t kind;     /* SS_PATTERN_UNSTRUCTURED or SS_PATTERN_NM */
    uint32_t reserved; /* 0 */
    uint64_t k;        /* kept per row (both kinds; for N:M, cols / m * n) */
    uint64_t n;        /* N:M: kept per group (0 for unstructured) */
    uint64_t m;        /* N:M: group size (0 for unstructured) */
} ss_pattern;

/* Everything the host owns; valid only during the compute() call. */
typedef struct ss_mask_request {
    uint64_t struct_size;    /* sizeof(ss_mask_request) as the host knows it: a plugin
                                rejects a request smaller than the struct it was built
                                with (SS_ERR_INVALID_REQUEST); later versions append */
    uint64_t rows;           /* d_out */
    uint64_t cols;           /* d_in */
    const float *weights;    /* rows * cols, row-major; never NULL */
    const float *gram_diag;  /* cols values G[j,j] = ||X_j||^2; NULL when absent */
    const float *gram;       /* cols * cols, row-major X X^T; NULL when absent */
    ss_pattern pattern;      /* the pattern the mask must follow */
    const char *options;     /* NUL-terminated UTF-8 options; NULL when none */
} ss_mask_request;

/* Fills out_mask (rows * cols bytes, row-major, 1 = kept, 0 = pruned); returns SS_OK or an
 * SS_ERR_* code. Must be thread-safe: the host may call it from several threads. */
typedef int32_t (*ss_compute_fn)(const ss_mask_request *request, uint8_t *out_mask);

/* Message of the last failure on the calling thread: NUL-terminated, owned by the plugin,
 * valid until the next call into the plugin on that thread. */
typedef const char *(*ss_last_error_fn)(void);

typedef struct ss_descriptor {
    uint32_t abi_version;        /* SPARSESWAPS_PLUGIN_ABI_VERSION */
    uint32_t struct_size;        /* sizeof(ss_descriptor) */
    const char *name;            /* what --warm-start NAME resolves */
    const char *version;         /* the plugin's own version */
    uint32_t patterns;           /* SS_SUPPORTS_* bits */
    uint32_t needs;              /* SS_NEEDS_* bits; 0 declares nothing */
    ss_compute_fn compute;
    ss_last_error_fn last_error;
} ss_descriptor;

/* Export on every platform. */
#if defined(_WIN32)
#define SS_PLUGIN_EXPORT __declspec(dllexport)
#else
#define SS_PLUGIN_EXPORT __attribute__((visibility("default")))
#endif

/* The one entry symbol a plugin defines. */
SS_PLUGIN_EXPORT const ss_descriptor *sparseswaps_plugin_v1(void);

#ifdef __cplusplus
}
#endif

#endif /* SPARSESWAPS_PLUGIN_H */
