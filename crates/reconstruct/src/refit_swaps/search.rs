//! The best admissible pair of one row, and the row's swap loop.

use super::kernels;
use super::moves::RowOffer;
use super::options::{RefitRow, RefitSwapOptions};
use super::state::RefitRowState;
use sparseswaps_core::StopReason;

/// The best pair found by one search.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BestPair {
    /// `Δ*` of the pair.
    pub delta: f64,
    /// Kept column that would be pruned.
    pub u: usize,
    /// Pruned column that would be kept.
    pub q: usize,
}

/// Whether `(delta, u, q)` beats `best` under the tie rule: smaller `Δ*`, then lower
/// `u`, then lower `q`.
#[inline]
fn better(delta: f64, u: usize, q: usize, best: &Option<BestPair>) -> bool {
    match best {
        None => delta.is_finite(),
        Some(b) => delta < b.delta || (delta == b.delta && (u, q) < (b.u, b.q)),
    }
}

/// The admissible pair with the smallest `Δ*` (every kept × pruned pair, or only pairs
/// inside one group of `M` for N:M), and the number of pairs evaluated.
pub fn best_pair(st: &RefitRowState<'_>, group: Option<(usize, usize)>) -> (Option<BestPair>, u64) {
    match group {
        Some((_, gm)) => best_pair_groups(st, gm),
        None => best_pair_all(st),
    }
}

fn best_pair_all(st: &RefitRowState<'_>) -> (Option<BestPair>, u64) {
    let (k, m) = (st.kept.len(), st.pruned.len());
    let avx2 = sparseswaps_core::has_avx2();
    let mut gains = vec![0.0; m];
    let mut best: Option<BestPair> = None;
    for i in 0..k {
        let beta = 1.0 / st.p[i * k + i];
        let (xi, row) = (st.x[i], &st.v[i * m..(i + 1) * m]);
        let alpha = xi * beta;
        // The best addition after removing i: the largest r'² / s'.
        let bg =
            kernels::addition_gains(avx2, row, &st.s, &st.r, &st.floor, beta, alpha, &mut gains);
        if bg == f64::NEG_INFINITY {
            continue;
        }
        let delta = xi * alpha - bg;
        // Which pruned column gives the gain matters only if the pair can win.
        let can_win = match &best {
            None => delta.is_finite(),
            Some(b) => delta <= b.delta,
        };
        if !can_win {
            continue;
        }
        // Ties between equal gains go to the lowest pruned column.
        let mut bt = usize::MAX;
        for (t, &g) in gains.iter().enumerate() {
            if g == bg && (bt == usize::MAX || st.pruned[t] < st.pruned[bt]) {
                bt = t;
            }
        }
        if better(delta, st.kept[i], st.pruned[bt], &best) {
            best = Some(BestPair {
                delta,
                u: st.kept[i],
                q: st.pruned[bt],
            });
        }
    }
    (best, (k * m) as u64)
}

fn best_pair_groups(st: &RefitRowState<'_>, gm: usize) -> (Option<BestPair>, u64) {
    let d = st.is_kept.len();
    let mut best: Option<BestPair> = None;
    let mut pairs = 0u64;
    for g0 in (0..d).step_by(gm) {
        for u in (g0..g0 + gm).filter(|&c| st.is_kept[c] == 1) {
            for q in (g0..g0 + gm).filter(|&c| st.is_kept[c] == 0) {
                pairs += 1;
                let delta = st.delta_pos(st.pos[u], st.pos[q]);
                if better(delta, u, q, &best) {
                    best = Some(BestPair { delta, u, q });
                }
            }
        }
    }
    (best, pairs)
}

/// `λ = ε · mean(diag G[K,K])` as [`crate::reconstruct`] starts with, raised ×10 on a
/// failed factorisation (at most `retries` times); the state built with it, or `None`
/// when the row has nothing to swap or no damping gives a factorisation.
pub(crate) fn initial_state<'a>(
    w: &[f32],
    mask_row: &[u8],
    gram: &'a [f32],
    opts: &RefitSwapOptions,
    fixed_lambda: Option<f64>,
) -> Option<RefitRowState<'a>> {
    let d = w.len();
    let kept: Vec<usize> = (0..d).filter(|&j| mask_row[j] == 1).collect();
    if kept.is_empty() || kept.len() == d {
        return None;
    }
    if let Some(lambda) = fixed_lambda {
        // A row that moves keeps the damping of its first state: `E*` stays one
        // function of its kept set, so the moves' predicted changes are exact.
        return RefitRowState::new(w, mask_row, gram, lambda);
    }
    let mut mean_diag =
        kept.iter().map(|&j| gram[j * d + j] as f64).sum::<f64>() / kept.len() as f64;
    if mean_diag <= 0.0 {
        // Every kept input is dead: scale the damping by the whole diagonal instead.
        mean_diag = (0..d).map(|j| gram[j * d + j] as f64).sum::<f64>() / d as f64;
    }
    if mean_diag.is_nan() || mean_diag <= 0.0 {
        return None;
    }
    let mut lambda = opts.reconstruct.damping * mean_diag;
    for attempt in 0..=opts.reconstruct.retries {
        if let Some(st) = RefitRowState::new(w, mask_row, gram, lambda) {
            return Some(st);
        }
        if attempt < opts.reconstruct.retries {
            lambda = if lambda > 0.0 {
                lambda * 10.0
            } else {
                1e-12 * mean_diag
            };
        }
    }
    None
}

/// Runs the swaps of one row from `mask_row` (updated in place).
pub(crate) fn run_row(
    w: &[f32],
    mask_row: &mut [u8],
    gram: &[f32],
    group: Option<(usize, usize)>,
    opts: &RefitSwapOptions,
    fixed_lambda: Option<f64>,
) -> (RefitRow, RowOffer) {
    let mut out = RefitRow {
        start_error: 0.0,
        final_error: 0.0,
        swaps: 0,
        steps: 0,
        pairs: 0,
        refreshes: 0,
        max_drift: 0.0,
        lambda: 0.0,
        state_bytes: 0,
        stop: StopReason::NothingToSwap,
        refit_before: 0.0,
        refit_after: 0.0,
        reverted: false,
        diverged: false,
        moves: 0,
    };
    let Some(mut st) = initial_state(w, mask_row, gram, opts, fixed_lambda) else {
        return (out, RowOffer::default());
    };
    out.lambda = st.lambda();
    out.state_bytes = st.bytes() + st.refresh_bytes();
    out.start_error = st.error();
    let floor = 64.0 * f64::EPSILON * st.energy();
    let mut fresh = true;
    let mut since = 0u32;
    let mut last_exact = st.error();
    out.stop = loop {
        if opts.max_swaps.is_some_and(|cap| out.swaps >= cap) {
            break StopReason::MaxSwaps;
        }
        let (best, pairs) = best_pair(&st, group);
        out.steps += 1;
        out.pairs += pairs;
        let e = st.error().max(0.0);
        let tol = opts.rel_tol * e + floor;
        let improving = best.filter(|b| b.delta < -tol);
        // The stop certificate, and every marginal step, are made on a fresh state.
        let marginal = improving.is_some_and(|b| b.delta > -opts.recheck_rel * e);
        if !fresh && (improving.is_none() || marginal) {
            if !refresh(&mut st, &mut out, &mut last_exact) {
                break StopReason::MaxSwaps;
            }
            fresh = true;
            since = 0;
            continue;
        }
        let Some(b) = improving else {
            break StopReason::Optimal;
        };
        match st.apply(b.u, b.q) {
            Some(_) => {
                mask_row[b.u] = 0;
                mask_row[b.q] = 1;
            }
            None => break StopReason::Optimal,
        }
        out.swaps += 1;
        since += 1;
        fresh = false;
        if opts.recompute_every > 0 && since >= opts.recompute_every {
            if !refresh(&mut st, &mut out, &mut last_exact) {
                break StopReason::MaxSwaps;
            }
            fresh = true;
            since = 0;
        }
    };
    if !fresh {
        refresh(&mut st, &mut out, &mut last_exact);
    }
    out.final_error = st.error();
    (out, RowOffer::of(&st))
}

/// An exact recomputation; records the drift of the running error it replaces.
///
/// Returns false when the exact error did not fall since the previous exact one
/// although swaps were taken (each was accepted for lowering it): the incremental state
/// has lost the truth, and the row stops there (counted as capped, `diverged` set)
/// rather than risk cycling. Correct updates never trigger it.
fn refresh(st: &mut RefitRowState<'_>, out: &mut RefitRow, last_exact: &mut f64) -> bool {
    let running = st.error();
    // G̃[K,K] + λI with λ > 0 stays positive definite; only a rank-deficient G with
    // ε = 0 could fail here, and then the running state is kept (a failed refresh
    // changes nothing).
    if st.refresh() {
        out.refreshes += 1;
        let e = st.error().abs().max(f64::MIN_POSITIVE);
        out.max_drift = out.max_drift.max((running - st.error()).abs() / e);
    }
    let fell = st.error() < *last_exact;
    *last_exact = st.error();
    out.diverged |= !fell;
    fell
}
