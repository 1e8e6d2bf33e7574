//! The hot loop of the re-fitted objective's search, written over fixed-width chunks so
//! LLVM vectorises it, and compiled twice: for the baseline target and, on x86-64
//! machines that have it, for AVX2 (chosen at run time).
//!
//! Both versions give bit-identical results: Rust never contracts `a * b + c` into a
//! fused multiply-add, IEEE division is exact-rounded in every width, and the running
//! maximum is a plain comparison, so the choice of path cannot change a mask.

/// Lanes per chunk: one AVX2 register of f64.
const L: usize = 4;

/// The gain of one addition after a removal, exactly as the search computes it:
/// `(r + α v)² / (s + β v²)`, or `−∞` when the denominator is not above the pivot
/// floor (the pair would make the kept block singular).
#[inline(always)]
pub(crate) fn addition_gain(v: f64, s: f64, r: f64, floor: f64, beta: f64, alpha: f64) -> f64 {
    let den = s + beta * v * v;
    let num = r + alpha * v;
    let g = num * num / den;
    if den > floor {
        g
    } else {
        f64::NEG_INFINITY
    }
}

#[inline(always)]
fn gains_body(
    v: &[f64],
    s: &[f64],
    r: &[f64],
    floor: &[f64],
    beta: f64,
    alpha: f64,
    out: &mut [f64],
) -> f64 {
    let mut acc = [f64::NEG_INFINITY; L];
    let chunks = v
        .chunks_exact(L)
        .zip(s.chunks_exact(L))
        .zip(r.chunks_exact(L))
        .zip(floor.chunks_exact(L))
        .zip(out.chunks_exact_mut(L));
    for ((((vc, sc), rc), fc), oc) in chunks {
        for l in 0..L {
            let g = addition_gain(vc[l], sc[l], rc[l], fc[l], beta, alpha);
            oc[l] = g;
            // NaN gains never win (as `g > best` in a scalar scan).
            acc[l] = if g > acc[l] { g } else { acc[l] };
        }
    }
    let mut best = f64::NEG_INFINITY;
    for a in acc {
        best = if a > best { a } else { best };
    }
    for t in v.len() / L * L..v.len() {
        let g = addition_gain(v[t], s[t], r[t], floor[t], beta, alpha);
        out[t] = g;
        best = if g > best { g } else { best };
    }
    best
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,avx2")]
unsafe fn gains_avx2(
    v: &[f64],
    s: &[f64],
    r: &[f64],
    floor: &[f64],
    beta: f64,
    alpha: f64,
    out: &mut [f64],
) -> f64 {
    gains_body(v, s, r, floor, beta, alpha, out)
}

/// Writes every pruned position's [`addition_gain`] for one kept position (its row `v`
/// of `V`, `β = 1/P[u,u]`, `α = x_u β`) into `out` and returns the largest (`−∞` when
/// none is admissible). All slices have the same length.
#[inline]
#[allow(clippy::too_many_arguments)] // the five row vectors and two scalars of one kept position
pub(crate) fn addition_gains(
    avx2: bool,
    v: &[f64],
    s: &[f64],
    r: &[f64],
    floor: &[f64],
    beta: f64,
    alpha: f64,
    out: &mut [f64],
) -> f64 {
    debug_assert!(s.len() == v.len() && r.len() == v.len() && floor.len() == v.len());
    debug_assert!(out.len() == v.len());
    #[cfg(target_arch = "x86_64")]
    if avx2 {
        // SAFETY: `avx2` is true only when the CPU reports AVX2
        // (`sparseswaps_core::has_avx2`).
        return unsafe { gains_avx2(v, s, r, floor, beta, alpha, out) };
    }
    let _ = avx2;
    gains_body(v, s, r, floor, beta, alpha, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_agree_bitwise_and_match_the_scalar_gain() {
        let n = 39;
        let mk = |k: usize| -> Vec<f64> {
            (0..n)
                .map(|i| (((i * 7919 + k * 104729) % 1000) as f64 - 500.0) / 37.0)
                .collect()
        };
        let (v, r) = (mk(1), mk(2));
        let s: Vec<f64> = mk(3).iter().map(|x| x.abs() + 0.5).collect();
        let mut floor: Vec<f64> = s.iter().map(|x| 1e-12 * x).collect();
        floor[5] = f64::INFINITY; // an inadmissible pair
        let (mut a, mut b) = (vec![0.0; n], vec![0.0; n]);
        let x = addition_gains(false, &v, &s, &r, &floor, 0.7, -1.3, &mut a);
        let y = addition_gains(
            sparseswaps_core::has_avx2(),
            &v,
            &s,
            &r,
            &floor,
            0.7,
            -1.3,
            &mut b,
        );
        assert_eq!(x.to_bits(), y.to_bits());
        assert_eq!(
            a.iter().map(|g| g.to_bits()).collect::<Vec<_>>(),
            b.iter().map(|g| g.to_bits()).collect::<Vec<_>>()
        );
        assert_eq!(a[5], f64::NEG_INFINITY);
        let want = (0..n)
            .map(|t| addition_gain(v[t], s[t], r[t], floor[t], 0.7, -1.3))
            .fold(f64::NEG_INFINITY, f64::max);
        assert_eq!(x, want);
    }
}
