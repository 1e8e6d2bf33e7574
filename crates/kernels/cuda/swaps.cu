// Exact 1-swap refinement on the GPU: the kernels behind sparseswaps-kernels' CudaBackend.
//
// Goal: the same masks as the CPU engine (sparseswaps-core, exhaustive search), bit for
// bit, so that the backend can be swapped without changing a result. Every expression
// that decides a swap is the CPU's, with the same operation order and the same rounding:
//   - explicit __fmul_rn / __fadd_rn / __dmul_rn / __dadd_rn intrinsics, which the
//     compiler never contracts into fused multiply-adds (Rust never contracts either);
//     build.rs also passes --fmad=false for anything not written with intrinsics;
//   - the search in f32: value(u, q) = b_q + w_u * (h_q * G[u,q]), h_q = -2 w_q,
//     b_q = (float) (w_q^2 G[q,q] - 2 w_q c_q), kept q carry h = 0, b = +inf;
//     per kept u the minimum over q (lowest q among equal values), then
//     Delta_u = (float) a_u + min_q, argmin over u (lowest u among equal values);
//   - the exact pick (pick_best on the CPU): every pair whose f32 value is within
//     1e-6 * S of the f32 minimum (S bounds the size of the terms, so the window covers
//     f32 rounding) is re-evaluated in f64 from the f64 state c = G p, and the smallest
//     f64 Delta wins (ties: lower u, then lower q), so near ties in f32 decide as the CPU
//     does; the pick is accepted only when Delta < -rel_tol * max(E, 0);
//   - c updated as (c + w_u G[u,:]) + (-w_q) G[q,:] and recomputed exactly from the mask
//     (sums over j in ascending order) every `recompute_every` swaps and when a row stops.
//
// Layout: a chunk of `rows` rows, row-major [rows, d]; the Gram matrix G is [d, d] f32,
// symmetric. Per-row state: status (0 active, 1 optimal, 2 max swaps, 3 nothing to swap),
// err (running E, f64), energy, swaps, steps, since (swaps since the last recompute),
// need (recompute c and E before the next step).
//
// Offsets are size_t: rows * d exceeds 2^31 on large chunks.

#include "device.cuh"

// ---------------------------------------------------------------------------------------
// Exact recompute of c = G p (and optionally y = G (w - p) for the dense energy) for the
// rows with need[r] set. Thread = one column i of RC_RB rows; G is read once per block
// for all its rows, coalesced along i. Terms are added in ascending j, starting from +0,
// exactly as the CPU's axpy loop; the CPU skips kept j and j with w_j == 0, which adds
// nothing here either (w_j * G is +-0 and +0 + -0 = +0, x + -0 = x).

#define RC_RB 8
#define RC_TJ 128

extern "C" __global__ void __launch_bounds__(256)
recompute_c(const float* __restrict__ G, const float* __restrict__ W,
            const unsigned char* __restrict__ mask, const int* __restrict__ need,
            double* __restrict__ c, double* __restrict__ y, int want_y, int rows, int d) {
    __shared__ double pc[RC_RB][RC_TJ];
    __shared__ double pk[RC_RB][RC_TJ];
    __shared__ int any;
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    const int r0 = blockIdx.y * RC_RB;
    if (threadIdx.x == 0) {
        int a = 0;
        for (int rr = 0; rr < RC_RB; ++rr) {
            int r = r0 + rr;
            if (r < rows && need[r]) a = 1;
        }
        any = a;
    }
    __syncthreads();
    if (!any) return;
    double acc[RC_RB];
    double accy[RC_RB];
#pragma unroll
    for (int rr = 0; rr < RC_RB; ++rr) {
        acc[rr] = 0.0;
        accy[rr] = 0.0;
    }
    for (int j0 = 0; j0 < d; j0 += RC_TJ) {
        __syncthreads();
        for (int idx = threadIdx.x; idx < RC_RB * RC_TJ; idx += blockDim.x) {
            int rr = idx / RC_TJ, jj = idx % RC_TJ;
            int r = r0 + rr, j = j0 + jj;
            double wj = 0.0;
            unsigned char m = 1;
            if (r < rows && j < d) {
                wj = (double)W[(size_t)r * d + j];
                m = mask[(size_t)r * d + j];
            }
            pc[rr][jj] = m ? 0.0 : wj;
            pk[rr][jj] = m ? wj : 0.0;
        }
        __syncthreads();
        if (i < d) {
            int jn = min(RC_TJ, d - j0);
            for (int jj = 0; jj < jn; ++jj) {
                double g = (double)G[(size_t)(j0 + jj) * d + i];
#pragma unroll
                for (int rr = 0; rr < RC_RB; ++rr) acc[rr] = __dadd_rn(acc[rr], __dmul_rn(pc[rr][jj], g));
                if (want_y) {
#pragma unroll
                    for (int rr = 0; rr < RC_RB; ++rr)
                        accy[rr] = __dadd_rn(accy[rr], __dmul_rn(pk[rr][jj], g));
                }
            }
        }
    }
    if (i >= d) return;
#pragma unroll
    for (int rr = 0; rr < RC_RB; ++rr) {
        int r = r0 + rr;
        if (r < rows && need[r]) {
            c[(size_t)r * d + i] = acc[rr];
            if (want_y) y[(size_t)r * d + i] = accy[rr];
        }
    }
}

// E = sum over pruned j of w_j c_j (and the dense energy sum_j w_j (y_j + c_j)), summed
// sequentially in ascending j like the CPU's iterator sums (which start from -0.0), for
// rows with need[r]; clears need[r]. One thread per row: a sequential sum cannot be split
// without changing its rounding.
extern "C" __global__ void row_sums(const float* __restrict__ W, const unsigned char* __restrict__ mask,
                                    const double* __restrict__ c, const double* __restrict__ y,
                                    int want_y, int* __restrict__ need, double* __restrict__ err,
                                    double* __restrict__ energy, int rows, int d) {
    int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= rows || !need[r]) return;
    const float* w = W + (size_t)r * d;
    const unsigned char* m = mask + (size_t)r * d;
    const double* cr = c + (size_t)r * d;
    double e = -0.0;
    for (int j = 0; j < d; ++j)
        if (!m[j]) e = __dadd_rn(e, __dmul_rn((double)w[j], cr[j]));
    err[r] = e;
    if (want_y) {
        const double* yr = y + (size_t)r * d;
        double s = -0.0;
        for (int j = 0; j < d; ++j) s = __dadd_rn(s, __dmul_rn((double)w[j], __dadd_rn(yr[j], cr[j])));
        energy[r] = s;
    }
    need[r] = 0;
}

// ---------------------------------------------------------------------------------------
// Unstructured rows, one step = prep_unstructured, search_unstructured,
// pick_apply_unstructured.

// hb[r, q] = (h_q, b_q) for pruned q, (0, +inf) for kept q (RowSearch::prepare).
// Grid: x = rows, y = column blocks (rows can exceed the 65535 limit of grid.y).
extern "C" __global__ void prep_unstructured(const float* __restrict__ G, const float* __restrict__ W,
                                             const unsigned char* __restrict__ mask,
                                             const double* __restrict__ c,
                                             const int* __restrict__ status, float2* __restrict__ hb,
                                             int rows, int d) {
    int r = blockIdx.x;
    int q = blockIdx.y * blockDim.x + threadIdx.x;
    if (r >= rows || q >= d || status[r] != ST_ACTIVE) return;
    size_t o = (size_t)r * d;
    float2 v;
    if (mask[o + q]) {
        v = make_float2(0.0f, INF_F);
    } else {
        v = make_float2(__fmul_rn(-2.0f, W[o + q]), __double2float_rn(b_of(G, W + o, c + o, d, q)));
    }
    hb[o + q] = v;
}

// The O(k (d - k)) part. Block = S_RB rows x S_TU candidate u; it walks all q in tiles of
// S_TQ, with the G tile [S_TU x S_TQ] and the (h, b) tile [S_RB x S_TQ] in shared memory:
// each G value loaded serves S_RB rows, each (h, b) serves S_TU u. Lane = u (S_UPT u per
// lane, 32 apart: conflict-free with the padded stride), warp = rows (S_RPT rows per warp,
// broadcast reads). Each thread keeps S_RPT x S_UPT running minima (values only: one
// min instruction per pair; the pairs near the minimum are found afterwards by value and
// re-evaluated in f64 by pick_apply_unstructured, as the CPU's pick_best does).
// Pruned u are evaluated too (their result is ignored): predication would not save SIMT
// work, and per-row compaction of kept u would break the sharing of G tiles across rows.

#define S_UPT 4
#define S_TU (32 * S_UPT)
#define S_RPT 4
#define S_RB (8 * S_RPT)
#define S_TQ 32

extern "C" __global__ void __launch_bounds__(256)
search_unstructured(const float* __restrict__ G, const float* __restrict__ W,
                    const float2* __restrict__ hb, const int* __restrict__ status,
                    float* __restrict__ minv, int rows, int d) {
    __shared__ float gs[S_TU][S_TQ + 1];
    __shared__ float2 hbs[S_RB][S_TQ];
    __shared__ int any;
    const int u0 = blockIdx.x * S_TU;
    const int r0 = blockIdx.y * S_RB;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (threadIdx.x == 0) {
        int a = 0;
        for (int rr = 0; rr < S_RB; ++rr) {
            int r = r0 + rr;
            if (r < rows && status[r] == ST_ACTIVE) a = 1;
        }
        any = a;
    }
    __syncthreads();
    if (!any) return;

    float s[S_RPT][S_UPT];
    float best[S_RPT][S_UPT];
#pragma unroll
    for (int t = 0; t < S_RPT; ++t) {
        int r = r0 + warp * S_RPT + t;
#pragma unroll
        for (int k = 0; k < S_UPT; ++k) {
            int u = u0 + lane + 32 * k;
            s[t][k] = (r < rows && u < d) ? W[(size_t)r * d + u] : 0.0f;
            best[t][k] = INF_F;
        }
    }
    for (int q0 = 0; q0 < d; q0 += S_TQ) {
        __syncthreads();
        for (int idx = threadIdx.x; idx < S_TU * S_TQ; idx += blockDim.x) {
            int uu = idx / S_TQ, qq = idx % S_TQ;
            int u = u0 + uu, q = q0 + qq;
            gs[uu][qq] = (u < d && q < d) ? G[(size_t)u * d + q] : 0.0f;
        }
        for (int idx = threadIdx.x; idx < S_RB * S_TQ; idx += blockDim.x) {
            int rr = idx / S_TQ, qq = idx % S_TQ;
            int r = r0 + rr, q = q0 + qq;
            hbs[rr][qq] = (r < rows && q < d) ? hb[(size_t)r * d + q] : make_float2(0.0f, INF_F);
        }
        __syncthreads();
        const int qn = min(S_TQ, d - q0);
        for (int qq = 0; qq < qn; ++qq) {
            float g[S_UPT];
#pragma unroll
            for (int k = 0; k < S_UPT; ++k) g[k] = gs[lane + 32 * k][qq];
#pragma unroll
            for (int t = 0; t < S_RPT; ++t) {
                float2 v = hbs[warp * S_RPT + t][qq];
#pragma unroll
                for (int k = 0; k < S_UPT; ++k) {
                    // fminf ignores a NaN operand, as the CPU's `v < m` keeps m.
                    best[t][k] = fminf(best[t][k], pair_value(g[k], v.x, v.y, s[t][k]));
                }
            }
        }
    }
#pragma unroll
    for (int t = 0; t < S_RPT; ++t) {
        int r = r0 + warp * S_RPT + t;
        if (r >= rows) continue;
#pragma unroll
        for (int k = 0; k < S_UPT; ++k) {
            int u = u0 + lane + 32 * k;
            if (u < d) minv[(size_t)r * d + u] = best[t][k];
        }
    }
}

// One block per row: the CPU's pick_best, then the f64 decision and the update.
//   1. the f32 minimum best32 over kept u of (float) a_u + minv_u, and the scale
//      S = max |a_u| + max |b_q| + 2 max sigma_u max sigma_q (sigma_j = |w_j| sqrt(G[j,j]),
//      u kept, q pruned), all computed as the CPU computes them;
//   2. thr = best32 + 1e-6 S; one warp per kept u whose f32 minimum is within thr walks
//      its pruned q, and every pair whose f32 value is within thr has its Delta
//      evaluated in f64; the block takes the smallest (Delta, u, q).
// Usually only a few u pass the window, so step 2 costs about one pass over the row.
// With apply == 0 the pair is only written to picks[2r], picks[2r + 1] (-1 when none): one
// search step with nothing applied, as the CPU's best_swaps_unstructured.
extern "C" __global__ void __launch_bounds__(256)
pick_apply_unstructured(const float* __restrict__ G, const float* __restrict__ W,
                        unsigned char* __restrict__ mask, double* __restrict__ c,
                        const float* __restrict__ minv, const float2* __restrict__ hb,
                        int* __restrict__ status, double* __restrict__ err, int* __restrict__ swaps,
                        int* __restrict__ steps, int* __restrict__ since, int* __restrict__ need,
                        int rows, int d, long long max_swaps, int recompute_every, double rel_tol,
                        int apply, int* __restrict__ picks) {
    const int r = blockIdx.x;
    if (r >= rows || status[r] != ST_ACTIVE) return;
    const size_t o = (size_t)r * d;
    const float* w = W + o;
    unsigned char* mk = mask + o;
    double* cr = c + o;

    float best32 = INF_F;
    double amax = 0.0, bmax = 0.0, su = 0.0, sq = 0.0;
    for (int j = threadIdx.x; j < d; j += blockDim.x) {
        const double sigma =
            __dmul_rn(fabs((double)w[j]), __dsqrt_rn((double)G[(size_t)j * d + j]));
        if (mk[j]) {
            const double a = a_of(G, w, cr, d, j);
            const float v = __fadd_rn(__double2float_rn(a), minv[o + j]);
            if (v < best32) best32 = v;
            amax = fmax(amax, fabs(a));
            su = fmax(su, sigma);
        } else {
            bmax = fmax(bmax, fabs(b_of(G, w, cr, d, j)));
            sq = fmax(sq, sigma);
        }
    }
    best32 = block_reduce(best32, MinF());
    amax = block_reduce(amax, MaxD());
    bmax = block_reduce(bmax, MaxD());
    su = block_reduce(su, MaxD());
    sq = block_reduce(sq, MaxD());

    double bd = INF_D;
    int bu = NO_INDEX, bq = NO_INDEX;
    // No pair when the f32 minimum is not finite, as the CPU's `!best32.is_finite()`.
    if (best32 > -INF_F && best32 < INF_F) {
        const double thr = __dadd_rn(
            (double)best32,
            __dmul_rn(1e-6, __dadd_rn(__dadd_rn(amax, bmax), __dmul_rn(__dmul_rn(2.0, su), sq))));
        const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
        const int nwarps = blockDim.x >> 5;
        for (int u = warp; u < d; u += nwarps) {
            if (!mk[u]) continue;
            const float a32 = __double2float_rn(a_of(G, w, cr, d, u));
            if ((double)__fadd_rn(a32, minv[o + u]) > thr) continue;
            const float s = w[u];
            const float* gu = G + (size_t)u * d;
            // A lane visits its pairs in ascending (u, q): strict < keeps the first of
            // equal Deltas, as the CPU's scan does.
            for (int q = lane; q < d; q += 32) {
                if (mk[q]) continue;
                const float2 v = hb[o + q];
                const float val = __fadd_rn(a32, pair_value(gu[q], v.x, v.y, s));
                if ((double)val <= thr) {
                    const double delta = delta_of(G, w, cr, d, u, q);
                    if (delta < bd) {
                        bd = delta;
                        bu = u;
                        bq = q;
                    }
                }
            }
        }
    }
    block_argmin<double>(bd, bu, bq);
    // Found only for a Delta below +inf, as the CPU's `delta < best64` from +inf.
    const bool found = bu != NO_INDEX;
    if (!apply) {
        if (threadIdx.x == 0) {
            picks[2 * (size_t)r] = found ? bu : -1;
            picks[2 * (size_t)r + 1] = found ? bq : -1;
        }
        return;
    }
    decide_apply(r, found, bu, bq, G, w, mk, cr, status, err, swaps, steps, since, need, d,
                 max_swaps, recompute_every, rel_tol);
}

// ---------------------------------------------------------------------------------------
// N:M rows: candidates only inside each group of m (refine_row_nm on the CPU), Delta in
// f64 directly. One block per row; a thread walks whole groups in ascending order (u, then
// q, strict <), so within a thread ties keep the lowest (u, q); across threads the groups
// are disjoint, so (Delta, u) decides.
extern "C" __global__ void __launch_bounds__(256)
step_nm(const float* __restrict__ G, const float* __restrict__ W, unsigned char* __restrict__ mask,
        double* __restrict__ c, int* __restrict__ status, double* __restrict__ err,
        int* __restrict__ swaps, int* __restrict__ steps, int* __restrict__ since,
        int* __restrict__ need, int rows, int d, int m, long long max_swaps, int recompute_every,
        double rel_tol) {
    const int r = blockIdx.x;
    if (r >= rows || status[r] != ST_ACTIVE) return;
    const size_t o = (size_t)r * d;
    const float* w = W + o;
    unsigned char* mk = mask + o;
    double* cr = c + o;
    double bd = INF_D;
    int bu = NO_INDEX, bq = -1;
    const int groups = d / m;
    for (int gi = threadIdx.x; gi < groups; gi += blockDim.x) {
        const int g0 = gi * m;
        for (int u = g0; u < g0 + m; ++u) {
            if (!mk[u]) continue;
            const double a = a_of(G, w, cr, d, u);
            const double wu = (double)w[u];
            for (int q = g0; q < g0 + m; ++q) {
                if (mk[q]) continue;
                double pair = __dmul_rn(__dmul_rn(__dmul_rn(2.0, wu), (double)w[q]),
                                        (double)G[(size_t)u * d + q]);
                double delta = __dsub_rn(__dadd_rn(a, b_of(G, w, cr, d, q)), pair);
                if (delta < bd) {
                    bd = delta;
                    bu = u;
                    bq = q;
                }
            }
        }
    }
    block_argmin<double>(bd, bu, bq);
    const bool found = bu != NO_INDEX && bd < INF_D;
    decide_apply(r, found, bu, bq, G, w, mk, cr, status, err, swaps, steps, since, need, d,
                 max_swaps, recompute_every, rel_tol);
}

// ---------------------------------------------------------------------------------------
// Gram helper: copies the upper triangle (row-major i < j) onto the lower, so the Gram
// matrix from cuBLAS is exactly symmetric (GEMM may round G[i,j] and G[j,i] differently).
extern "C" __global__ void symmetrize_upper(float* __restrict__ G, int d) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    int i = blockIdx.y * blockDim.y + threadIdx.y;
    if (i < d && j < d && i < j) G[(size_t)j * d + i] = G[(size_t)i * d + j];
}
