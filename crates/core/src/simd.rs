//! The two hot loops of the engine, written as plain loops over fixed-width chunks so
//! LLVM vectorises them, and compiled twice: for the baseline target and, on x86-64
//! machines that have it, for AVX2 (chosen at run time).
//!
//! Both versions compute bit-identical results: Rust never contracts `a * b + c` into a
//! fused multiply-add, and `min` is exact, so the choice of path cannot change a mask.

/// Lanes per chunk: one AVX2 register of f32.
const L: usize = 8;

/// For each of four `u` (rows `g[j]` of the Gram matrix restricted to a column tile, and
/// scales `s[j] = w_u`), the minimum over the tile of `b[q] + s * (h[q] * G[u, q])`.
///
/// `h[q] = -2 w_q` and `b[q] = w_q² G[q,q] - 2 w_q c_q` for pruned `q`; kept `q` carry
/// `h = 0`, `b = +inf`, so they never win.
#[inline(always)]
fn min4_body(g: [&[f32]; 4], h: &[f32], b: &[f32], s: [f32; 4]) -> [f32; 4] {
    let n = h.len();
    let mut acc = [[f32::INFINITY; L]; 4];
    let full = n / L * L;
    for c in (0..full).step_by(L) {
        let hb: &[f32; L] = h[c..c + L].try_into().unwrap();
        let bb: &[f32; L] = b[c..c + L].try_into().unwrap();
        for j in 0..4 {
            let gb: &[f32; L] = g[j][c..c + L].try_into().unwrap();
            let a = &mut acc[j];
            for l in 0..L {
                let v = bb[l] + s[j] * (hb[l] * gb[l]);
                a[l] = if v < a[l] { v } else { a[l] };
            }
        }
    }
    let mut out = [f32::INFINITY; 4];
    for j in 0..4 {
        let mut m = f32::INFINITY;
        for &v in &acc[j] {
            m = if v < m { v } else { m };
        }
        for q in full..n {
            let v = b[q] + s[j] * (h[q] * g[j][q]);
            m = if v < m { v } else { m };
        }
        out[j] = m;
    }
    out
}

/// AVX2 version of [`min4_body`] with explicit intrinsics (LLVM does not vectorise the
/// accumulator arrays of the portable version well). Same operations in the same order,
/// so the results are bit-identical: `_mm256_min_ps(v, acc)` is `if v < acc { v } else
/// { acc }` lane by lane.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,avx2")]
unsafe fn min4_avx2(g: [&[f32]; 4], h: &[f32], b: &[f32], s: [f32; 4]) -> [f32; 4] {
    use std::arch::x86_64::*;
    let n = h.len();
    let full = n / L * L;
    let (hp, bp) = (h.as_ptr(), b.as_ptr());
    let gp = g.map(|x| x.as_ptr());
    let sv = s.map(|x| _mm256_set1_ps(x));
    let inf = _mm256_set1_ps(f32::INFINITY);
    let mut acc = [inf; 4];
    let mut c = 0;
    while c < full {
        // SAFETY: c + L <= full <= n, and every slice has length n.
        let hv = _mm256_loadu_ps(hp.add(c));
        let bv = _mm256_loadu_ps(bp.add(c));
        for j in 0..4 {
            let gv = _mm256_loadu_ps(gp[j].add(c));
            let v = _mm256_add_ps(bv, _mm256_mul_ps(sv[j], _mm256_mul_ps(hv, gv)));
            acc[j] = _mm256_min_ps(v, acc[j]);
        }
        c += L;
    }
    let mut out = [f32::INFINITY; 4];
    for j in 0..4 {
        let mut lanes = [0f32; L];
        _mm256_storeu_ps(lanes.as_mut_ptr(), acc[j]);
        let mut m = f32::INFINITY;
        for &v in &lanes {
            m = if v < m { v } else { m };
        }
        for q in full..n {
            let v = b[q] + s[j] * (h[q] * g[j][q]);
            m = if v < m { v } else { m };
        }
        out[j] = m;
    }
    out
}

fn min4_base(g: [&[f32]; 4], h: &[f32], b: &[f32], s: [f32; 4]) -> [f32; 4] {
    min4_body(g, h, b, s)
}

/// The value the search minimises for one pair, exactly as [`min4`] computes it.
#[inline(always)]
pub(crate) fn pair_value(g_uq: f32, h_q: f32, b_q: f32, s_u: f32) -> f32 {
    b_q + s_u * (h_q * g_uq)
}

/// Whether the AVX2 path is used on this machine.
pub fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Dispatching wrapper of the four-row minimum (all slices the same length).
#[inline]
pub(crate) fn min4(avx2: bool, g: [&[f32]; 4], h: &[f32], b: &[f32], s: [f32; 4]) -> [f32; 4] {
    debug_assert!(g.iter().all(|x| x.len() == h.len()) && b.len() == h.len());
    #[cfg(target_arch = "x86_64")]
    if avx2 {
        // SAFETY: `avx2` is true only when the CPU reports AVX2 (see `has_avx2`).
        return unsafe { min4_avx2(g, h, b, s) };
    }
    let _ = avx2;
    min4_base(g, h, b, s)
}

#[inline(always)]
fn axpy_body(acc: &mut [f64], alpha: f64, x: &[f32]) {
    for (a, &v) in acc.iter_mut().zip(x) {
        *a += alpha * v as f64;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,avx2")]
unsafe fn axpy_avx2(acc: &mut [f64], alpha: f64, x: &[f32]) {
    axpy_body(acc, alpha, x)
}

/// `acc += alpha * x` with f32 `x` widened to f64 (the exact `c = G p` updates).
#[inline]
pub(crate) fn axpy(avx2: bool, acc: &mut [f64], alpha: f64, x: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if avx2 {
        // SAFETY: `avx2` is true only when the CPU reports AVX2.
        return unsafe { axpy_avx2(acc, alpha, x) };
    }
    let _ = avx2;
    axpy_body(acc, alpha, x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_agree_bitwise() {
        let n = 37;
        let mk = |k: usize| -> Vec<f32> {
            (0..n)
                .map(|i| (((i * 7919 + k * 104729) % 1000) as f32 - 500.0) / 37.0)
                .collect()
        };
        let (g0, g1, g2, g3, h) = (mk(1), mk(2), mk(3), mk(4), mk(5));
        let mut b = mk(6);
        b[3] = f32::INFINITY;
        let s = [0.5, -1.25, 3.0, 1e-3];
        let gs = [&g0[..], &g1[..], &g2[..], &g3[..]];
        let x = min4(false, gs, &h, &b, s);
        let y = min4(has_avx2(), gs, &h, &b, s);
        assert_eq!(x.map(f32::to_bits), y.map(f32::to_bits));
        for j in 0..4 {
            let want = (0..n)
                .map(|q| pair_value(gs[j][q], h[q], b[q], s[j]))
                .fold(f32::INFINITY, f32::min);
            assert_eq!(x[j], want);
        }
    }
}
