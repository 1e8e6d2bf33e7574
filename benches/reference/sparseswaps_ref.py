"""Reference implementation of SparseSwaps' exhaustive 1-swap refinement (NumPy).

This is the paper's algorithm as a GPU-minded Python implementation would write it:
rows are processed in batches, and every step evaluates *every* admissible pair of
every active row of the batch with dense array operations:

    Δ[r, u, q] = a[r, u] + b[r, q] - 2 w[r, u] w[r, q] G[u, q]

for kept u and pruned q (unstructured, k kept per row), takes the argmin per row,
applies the swaps that lower the error, and updates c = G p. Everything is float64.

It exists to be measured against the Rust engine (benches/reference/compare.py), not
to be used.
"""

import time

import numpy as np


def refine(W, G, mask, max_swaps=100, rel_tol=1e-9, batch=16):
    """Refines `mask` (bool [d_out, d_in], True = kept) in place. Returns
    (warm_error, final_error, energy, swaps, pairs_evaluated, seconds)."""
    t0 = time.perf_counter()
    W = W.astype(np.float64)
    G = G.astype(np.float64)
    d_out, d = W.shape
    diag = np.diag(G).copy()
    warm = final = energy = 0.0
    swaps = pairs = 0
    for r0 in range(0, d_out, batch):
        w = W[r0:r0 + batch]
        m = mask[r0:r0 + batch]
        R = w.shape[0]
        p = np.where(m, 0.0, w)
        c = p @ G  # [R, d]
        e = np.einsum("rd,rd->r", p, c)
        warm += e.sum()
        energy += np.einsum("rd,rd->r", w, w @ G).sum()
        active = np.ones(R, bool)
        sig2 = w * w * diag
        for _ in range(max_swaps):
            rows = np.nonzero(active)[0]
            if rows.size == 0:
                break
            for i in rows:
                K = np.nonzero(m[i])[0]
                P = np.nonzero(~m[i])[0]
                if K.size == 0 or P.size == 0:
                    active[i] = False
                    continue
                a = sig2[i, K] + 2 * w[i, K] * c[i, K]
                b = sig2[i, P] - 2 * w[i, P] * c[i, P]
                D = a[:, None] + b[None, :] - 2 * np.outer(w[i, K], w[i, P]) * G[np.ix_(K, P)]
                pairs += D.size
                j = int(np.argmin(D))
                delta = D.flat[j]
                if not delta < -rel_tol * max(e[i], 0.0):
                    active[i] = False
                    continue
                u, q = K[j // P.size], P[j % P.size]
                c[i] += w[i, u] * G[u] - w[i, q] * G[q]
                e[i] += delta
                m[i, u], m[i, q] = False, True
                swaps += 1
        p = np.where(m, 0.0, w)
        final += np.einsum("rd,rd->r", p, p @ G).sum()
    return warm, final, energy, swaps, pairs, time.perf_counter() - t0
