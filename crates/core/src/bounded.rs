//! The bounded search: pairs visited in increasing order of a separable lower bound of
//! `Δ`, stopping once the bound exceeds the best `Δ` found; each visited pair is
//! evaluated exactly in f64. When the bound rules out too few pairs for a step, that
//! step falls back to one exhaustive pass, which finds the same pair.

use crate::exhaustive::{exhaustive_step, RowSearch};
use crate::mask::Mask;
use crate::options::RefineOptions;
use crate::row::{RowJob, RowState};
use crate::simd;
use rayon::prelude::*;

/// Per column `j`, the largest absolute correlation with any other column of `G`:
/// `ρ_j = max_{i≠j} |G[i,j]| / sqrt(G[i,i] G[j,j])` (0 for a zero column).
///
/// It gives the bounded search a separable lower bound tighter than plain
/// Cauchy–Schwarz: `|corr(u,q)| ≤ min(ρ_u, ρ_q) ≤ sqrt(ρ_u ρ_q)`, so
/// `2 |w_u w_q G[u,q]| ≤ ρ_u σ_u² + ρ_q σ_q²` with `σ_j² = w_j² G[j,j]`, and
/// `Δ(u,q) ≥ (a_u - ρ_u σ_u²) + (b_q - ρ_q σ_q²)`. With `ρ = 1` this is the bound of
/// `docs/algorithm.md`; on real layers `ρ` is far below 1 for most columns, which
/// prunes most pairs.
pub fn column_correlation_bound(gram: &[f32], d: usize) -> Vec<f64> {
    let diag: Vec<f64> = (0..d)
        .map(|i| (gram[i * d + i] as f64).max(0.0).sqrt())
        .collect();
    (0..d)
        .into_par_iter()
        .map(|j| {
            if diag[j] == 0.0 {
                return 0.0;
            }
            let row = &gram[j * d..(j + 1) * d];
            let mut m = 0f64;
            for (i, &g) in row.iter().enumerate() {
                if i != j && diag[i] > 0.0 {
                    m = m.max((g as f64).abs() / (diag[i] * diag[j]));
                }
            }
            // Rounding of the f64 quotient must not make the bound invalid.
            (m * (1.0 + 1e-12)).min(1.0 + 1e-12)
        })
        .collect()
}

/// Scratch of the bounded search of one row.
#[derive(Default)]
struct BoundScratch {
    us: Vec<(f64, u32)>,
    qs: Vec<(f64, u32)>,
    /// `a_j` for kept `j`, `b_j` for pruned `j`, this step.
    ab: Vec<f64>,
}

/// The exact best pair of one row by bounded search, and the number of pairs evaluated.
///
/// Returns `None` when the bound rules out too few pairs for the ordered walk to beat
/// one vectorised pass over all pairs (a visited pair costs ~15x a vectorised one): the
/// caller then runs the exhaustive search for this step, which finds the same pair.
fn bounded_best(
    st: &RowState<'_>,
    mask: &[u8],
    rho: &[f64],
    sig2: &[f64],
    sc: &mut BoundScratch,
) -> Option<(Option<(usize, usize)>, u64)> {
    // Lower bound terms A_u (kept) and B_q (pruned), and the plain a/b minima for seeds.
    let (mut amin, mut bmin) = (f64::INFINITY, f64::INFINITY);
    let (mut ua, mut qb) = (usize::MAX, usize::MAX);
    let (mut araw, mut braw) = (f64::INFINITY, f64::INFINITY);
    let (mut ur, mut qr) = (usize::MAX, usize::MAX);
    let mut scale = 0f64;
    sc.us.clear();
    sc.qs.clear();
    sc.ab.resize(mask.len(), 0.0);
    let (w, c) = (st.w, st.c());
    for (j, &m) in mask.iter().enumerate() {
        // a_j and b_j exactly as `RowState::a`/`b` compute them, without the strided
        // reads of the Gram diagonal (`sig2[j] = w_j² G[j,j]`).
        let twc = 2.0 * w[j] as f64 * c[j];
        if m == 1 {
            let a = sig2[j] + twc;
            sc.ab[j] = a;
            let lb = a - rho[j] * sig2[j];
            sc.us.push((lb, j as u32));
            if lb < amin {
                (amin, ua) = (lb, j);
            }
            if a < araw {
                (araw, ur) = (a, j);
            }
            scale = scale.max(a.abs() + sig2[j]);
        } else {
            let b = sig2[j] - twc;
            sc.ab[j] = b;
            let lb = b - rho[j] * sig2[j];
            sc.qs.push((lb, j as u32));
            if lb < bmin {
                (bmin, qb) = (lb, j);
            }
            if b < braw {
                (braw, qr) = (b, j);
            }
            scale = scale.max(b.abs() + sig2[j]);
        }
    }
    if sc.us.is_empty() || sc.qs.is_empty() {
        return Some((None, 0));
    }
    let mut pairs = 0u64;
    let mut best: Option<(usize, usize)> = None;
    let mut best_d = f64::INFINITY;
    let consider = |u: usize,
                    q: usize,
                    best: &mut Option<(usize, usize)>,
                    best_d: &mut f64,
                    pairs: &mut u64| {
        *pairs += 1;
        let delta = st.delta(u, q);
        if delta < *best_d || (delta == *best_d && best.is_none_or(|b| (u, q) < b)) {
            *best_d = delta;
            *best = Some((u, q));
        }
    };
    consider(ua, qb, &mut best, &mut best_d, &mut pairs);
    if (ur, qr) != (ua, qb) {
        consider(ur, qr, &mut best, &mut best_d, &mut pairs);
    }
    // f64 rounding of bounds and Δ: a margin far above it keeps the search exact.
    let margin = 1e-9 * scale;
    let limit = |best_d: f64| best_d + margin;
    sc.us.retain(|&(lb, _)| lb + bmin <= limit(best_d));
    sc.qs.retain(|&(lb, _)| amin + lb <= limit(best_d));
    sc.us
        .sort_unstable_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
    sc.qs
        .sort_unstable_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
    let kept = mask.iter().filter(|&&m| m == 1).count() as u64;
    let admissible = kept * (mask.len() as u64 - kept);
    let mut estimate = 0u64;
    for &(au, _) in &sc.us {
        estimate += sc.qs.partition_point(|&(bq, _)| au + bq <= limit(best_d)) as u64;
        if estimate * 32 > admissible {
            return None;
        }
    }
    for &(au, u) in &sc.us {
        if au + bmin > limit(best_d) {
            break;
        }
        for &(bq, q) in &sc.qs {
            if au + bq > limit(best_d) {
                break;
            }
            if (u as usize, q as usize) == (ua, qb) || (u as usize, q as usize) == (ur, qr) {
                continue;
            }
            consider(u as usize, q as usize, &mut best, &mut best_d, &mut pairs);
        }
    }
    Some((best, pairs))
}

/// Refines one unstructured row with the bounded search (the row budget).
pub(crate) fn refine_row_bounded(
    job: &mut RowJob<'_>,
    rho: &[f64],
    gram: &[f32],
    opts: &RefineOptions,
) {
    job.check_cap(opts);
    run_row_bounded(job, rho, gram, opts);
}

/// `σ_j² = w_j² G[j,j]` for every column of the row.
fn sigma2(w: &[f32], gram: &[f32]) -> Vec<f64> {
    let d = w.len();
    (0..d)
        .map(|j| {
            let w = w[j] as f64;
            w * w * gram[j * d + j] as f64
        })
        .collect()
}

/// The bounded search loop of one row, from its current state until it stops.
pub(crate) fn run_row_bounded(
    job: &mut RowJob<'_>,
    rho: &[f64],
    gram: &[f32],
    opts: &RefineOptions,
) {
    let sig2 = sigma2(job.state.w, gram);
    let mut sc = BoundScratch::default();
    let mut rs = RowSearch::new(job.mask.len());
    let avx2 = simd::has_avx2();
    while !job.done {
        let (best, pairs) = match bounded_best(&job.state, job.mask, rho, &sig2, &mut sc) {
            Some(found) => {
                job.tally.bounded += 1;
                found
            }
            None => {
                // The bound prunes too little this step: one exhaustive pass instead.
                job.tally.fallback += 1;
                exhaustive_step(&mut rs, &job.state, job.mask, gram, avx2)
            }
        };
        job.decide(best, pairs, opts);
    }
}

/// One bounded search step for every row of an unstructured layer, applying nothing:
/// each row's best pair and the pairs evaluated. `rho` is
/// [`column_correlation_bound`] of `gram`; `states[r]` must match `mask.row(r)`.
/// Exposed for benchmarks next to [`crate::best_swaps_unstructured`].
pub fn best_swaps_bounded(
    gram: &[f32],
    rho: &[f64],
    states: &[RowState<'_>],
    mask: &Mask,
) -> Vec<(Option<(usize, usize)>, u64)> {
    let d = mask.cols();
    states
        .par_iter()
        .enumerate()
        .map_init(BoundScratch::default, |sc, (r, st)| {
            let sig2 = sigma2(st.w, gram);
            bounded_best(st, mask.row(r), rho, &sig2, sc).unwrap_or_else(|| {
                let mut rs = RowSearch::new(d);
                exhaustive_step(&mut rs, st, mask.row(r), gram, simd::has_avx2())
            })
        })
        .collect()
}
