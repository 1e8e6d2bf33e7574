// Device helpers of swaps.cu: row status codes, the CPU's scalar formulas in its
// evaluation order, block-wide reductions under the tie rule, and the decision and
// application of one row's best candidate. Included by swaps.cu only (one translation
// unit, so nvcc builds one PTX module); see swaps.cu for the numerics they reproduce.
#pragma once

#define ST_ACTIVE 0
#define ST_OPTIMAL 1
#define ST_MAX_SWAPS 2
#define ST_NOTHING 3

#define INF_F __int_as_float(0x7f800000)
#define INF_D __longlong_as_double(0x7ff0000000000000LL)
#define NO_INDEX 0x7fffffff

// ---------------------------------------------------------------------------------------
// The CPU's scalar formulas (RowState::a, ::b, ::delta), in its evaluation order.

// a_u = w_u * w_u * G[u,u] + 2 * w_u * c_u
__device__ __forceinline__ double a_of(const float* __restrict__ G, const float* __restrict__ w,
                                       const double* __restrict__ c, int d, int u) {
    double wu = (double)w[u];
    double g = (double)G[(size_t)u * d + u];
    return __dadd_rn(__dmul_rn(__dmul_rn(wu, wu), g), __dmul_rn(__dmul_rn(2.0, wu), c[u]));
}

// b_q = w_q * w_q * G[q,q] - 2 * w_q * c_q
__device__ __forceinline__ double b_of(const float* __restrict__ G, const float* __restrict__ w,
                                       const double* __restrict__ c, int d, int q) {
    double wq = (double)w[q];
    double g = (double)G[(size_t)q * d + q];
    return __dsub_rn(__dmul_rn(__dmul_rn(wq, wq), g), __dmul_rn(__dmul_rn(2.0, wq), c[q]));
}

// Delta(u, q) = a_u + b_q - 2 * w_u * w_q * G[u,q]
__device__ __forceinline__ double delta_of(const float* __restrict__ G, const float* __restrict__ w,
                                           const double* __restrict__ c, int d, int u, int q) {
    double pair = __dmul_rn(__dmul_rn(__dmul_rn(2.0, (double)w[u]), (double)w[q]),
                            (double)G[(size_t)u * d + q]);
    return __dsub_rn(__dadd_rn(a_of(G, w, c, d, u), b_of(G, w, c, d, q)), pair);
}

// The f32 pair value of the search (simd::pair_value on the CPU).
__device__ __forceinline__ float pair_value(float g_uq, float h_q, float b_q, float s_u) {
    return __fadd_rn(b_q, __fmul_rn(s_u, __fmul_rn(h_q, g_uq)));
}

// ---------------------------------------------------------------------------------------
// Block-wide argmin under the tie rule: smaller value, then smaller u, then smaller q.
// Every thread gets the result. Needs blockDim.x a multiple of 32 and at most 1024.

template <typename V>
__device__ __forceinline__ bool better(V v1, int u1, int q1, V v2, int u2, int q2) {
    return v1 < v2 || (v1 == v2 && (u1 < u2 || (u1 == u2 && q1 < q2)));
}

template <typename V>
__device__ void block_argmin(V& v, int& u, int& q) {
    __shared__ V sv[32];
    __shared__ int su[32];
    __shared__ int sq[32];
    const unsigned full = 0xffffffffu;
    for (int off = 16; off > 0; off >>= 1) {
        V ov = __shfl_down_sync(full, v, off);
        int ou = __shfl_down_sync(full, u, off);
        int oq = __shfl_down_sync(full, q, off);
        if (better(ov, ou, oq, v, u, q)) {
            v = ov;
            u = ou;
            q = oq;
        }
    }
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int nwarps = (blockDim.x + 31) >> 5;
    __syncthreads();
    if (lane == 0) {
        sv[warp] = v;
        su[warp] = u;
        sq[warp] = q;
    }
    __syncthreads();
    if (warp == 0) {
        if (lane < nwarps) {
            v = sv[lane];
            u = su[lane];
            q = sq[lane];
        } else {
            v = (V)INF_D;
            u = NO_INDEX;
            q = -1;
        }
        for (int off = 16; off > 0; off >>= 1) {
            V ov = __shfl_down_sync(full, v, off);
            int ou = __shfl_down_sync(full, u, off);
            int oq = __shfl_down_sync(full, q, off);
            if (better(ov, ou, oq, v, u, q)) {
                v = ov;
                u = ou;
                q = oq;
            }
        }
        if (lane == 0) {
            sv[0] = v;
            su[0] = u;
            sq[0] = q;
        }
    }
    __syncthreads();
    v = sv[0];
    u = su[0];
    q = sq[0];
    __syncthreads();
}

// Block-wide reduction with an exact, associative, commutative and idempotent `op` (min,
// max): every thread gets the result, which is the sequential one whatever the order.
// Same requirements as block_argmin.
struct MinF {
    __device__ __forceinline__ float operator()(float a, float b) const { return b < a ? b : a; }
};
// fmax drops a NaN operand, as the CPU's f64::max does.
struct MaxD {
    __device__ __forceinline__ double operator()(double a, double b) const { return fmax(a, b); }
};

template <typename V, typename Op>
__device__ V block_reduce(V v, Op op) {
    __shared__ V sv[32];
    const unsigned full = 0xffffffffu;
    for (int off = 16; off > 0; off >>= 1) v = op(v, __shfl_down_sync(full, v, off));
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int nwarps = (blockDim.x + 31) >> 5;
    __syncthreads();
    if (lane == 0) sv[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = sv[lane < nwarps ? lane : 0];
        for (int off = 16; off > 0; off >>= 1) v = op(v, __shfl_down_sync(full, v, off));
        if (lane == 0) sv[0] = v;
    }
    __syncthreads();
    v = sv[0];
    __syncthreads();
    return v;
}

// ---------------------------------------------------------------------------------------
// Decision and application of one row's best candidate (RowJob::decide on the CPU).
// Called by every thread of the row's block, with the same (found, u, q).

__device__ void decide_apply(int r, bool found, int u, int q, const float* __restrict__ G,
                             const float* __restrict__ w, unsigned char* __restrict__ mk,
                             double* __restrict__ c, int* __restrict__ status,
                             double* __restrict__ err, int* __restrict__ swaps,
                             int* __restrict__ steps, int* __restrict__ since,
                             int* __restrict__ need, int d, long long max_swaps,
                             int recompute_every, double rel_tol) {
    __shared__ int accept;
    if (threadIdx.x == 0) {
        steps[r] += 1;
        accept = 0;
        if (!found) {
            status[r] = ST_NOTHING;
            need[r] = 1;
        } else {
            double delta = delta_of(G, w, c, d, u, q);
            double tol = __dmul_rn(rel_tol, fmax(err[r], 0.0));
            if (delta >= -tol) {
                status[r] = ST_OPTIMAL;
                need[r] = 1;
            } else {
                accept = 1;
                err[r] = __dadd_rn(err[r], delta);
            }
        }
    }
    __syncthreads();
    if (!accept) return;
    // c <- (c + w_u G[u,:]) + (-w_q) G[q,:], two roundings per element as on the CPU
    // (its two axpy passes); thread 0 read c[u], c[q] above, before the barrier.
    const double wu = (double)w[u];
    const double nwq = -(double)w[q];
    const float* gu = G + (size_t)u * d;
    const float* gq = G + (size_t)q * d;
    for (int j = threadIdx.x; j < d; j += blockDim.x) {
        double t = __dadd_rn(c[j], __dmul_rn(wu, (double)gu[j]));
        c[j] = __dadd_rn(t, __dmul_rn(nwq, (double)gq[j]));
    }
    if (threadIdx.x == 0) {
        mk[u] = 0;
        mk[q] = 1;
        swaps[r] += 1;
        since[r] += 1;
        if (recompute_every > 0 && since[r] >= recompute_every) {
            need[r] = 1;
            since[r] = 0;
        }
        if (max_swaps >= 0 && (long long)swaps[r] >= max_swaps) {
            status[r] = ST_MAX_SWAPS;
            need[r] = 1;
        }
    }
}
