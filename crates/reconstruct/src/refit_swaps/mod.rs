//! Exact 1-swaps of the **re-fitted** objective (`refine.objective = "refit"`).
//!
//! Ordinary swaps choose the mask for the original kept weights; the re-fit then
//! solves for new ones. What the layer finally pays is the error after the re-fit,
//!
//! ```text
//! E*(K) = wᵀGw − b_Kᵀ G̃[K,K]⁻¹ b_K ,   b = G w ,   G̃ = G + λI
//! ```
//!
//! and this module takes exact 1-swaps of `E*` itself, per row, starting from a given
//! mask (the ordinary swaps' result). With `P = G̃[K,K]⁻¹`, `x = P b_K`, `V = P G[K,Q]`,
//! `r_q = b_q − G[q,K] x` and `s_q = G̃[q,q] − G[q,K] v_q`, the swap (kept `u` out, pruned
//! `q` in) changes `E*` by
//!
//! ```text
//! Δ*(u,q) = x_u²/P[u,u] − (r_q + x_u V[u,q]/P[u,u])² / (s_q + V[u,q]²/P[u,u])
//! ```
//!
//! (`docs/algorithm.md`, "Exact 1-swaps of the re-fitted objective").
//!
//! **Per row.** Each step evaluates every admissible pair (`k (d_in − k)` pairs
//! unstructured; for N:M only `u` and `q` in the same group of `M`, `O(d_in)` pairs) and
//! takes the best one if it improves beyond the tolerance. The swap is applied as a
//! removal then a bordered addition: `P`, `x`, `V`, `r`, `s` follow in
//! `O(k (d_in − k) + k²)` (two passes over `V`, two rank-1 passes over `P`). The state is
//! recomputed exactly (Cholesky of `G̃[K,K]`, its inverse, and one GEMM for `V`:
//! `O(k³ + k² (d_in − k))`) every [`RefitSwapOptions::recompute_every`] swaps, before
//! every stop certificate, before any marginal swap, and when the row ends.
//!
//! **Memory per row.** `P` (`k²`), `V` (`k (d_in − k)`) and `O(d_in)` vectors, all f64:
//! `8 (k² + k (d_in − k) + 6 d_in)` bytes, plus a recomputation's temporaries
//! (`8 (4k² + 2k (d_in − k))`), i.e. `O(k d_in)`. For SmolLM2 (`d_in = 576`, 50%) that is
//! about 5 MiB per row at the peak; for Llama-3.1-8B `down_proj` (`d_in = 14336`, 50%)
//! about 3.1 GiB. Rows run in parallel on rayon, at most
//! [`RefitSwapOptions::max_rows_in_flight`] at once (default: one per thread), and the
//! report gives the per-row peak ([`RefitSwapReport::peak_row_bytes`]).
//!
//! **Damping.** `λ` is the re-fit's own: `ε · mean(diag G[K₀,K₀])` of the starting kept
//! set `K₀` ([`crate::ReconstructOptions::damping`], raised ×10 on a failed
//! factorisation as the re-fit does), then fixed for the row so that `E*` is one
//! function of `K`. A pair whose Schur complement `s'_q` is at most `1e-12 · G̃[q,q]`
//! would make the kept block numerically singular and is not admissible.
//!
//! **Tolerances.** A swap is taken only when `Δ* < −tol`, `tol = rel_tol · E* +
//! 64 ε_f64 · wᵀGw` (the second term is the rounding scale of `E* = wᵀGw − b_Kᵀx`).
//! Recheck rule: the incremental state drifts from the exact one by rounding, so a
//! candidate with `Δ* > −recheck_rel · E*` (default `1e-6`) found on a state that has
//! taken swaps since its last recomputation is re-judged after an exact recomputation,
//! and a row is declared optimal (the certificate: no admissible pair with
//! `Δ* < −tol`) only by a search on a freshly factorised state. Ties: smallest `Δ*`,
//! then lower `u`, then lower `q`.
//!
//! **Never worse.** The layer's weights are re-fitted by [`crate::reconstruct`] on the
//! final mask and compared per row with its re-fit of the starting mask; a row whose
//! measured error did not fall goes back to its starting mask and weights. Counts are
//! preserved: every swap exchanges one kept and one pruned index of the same row (and
//! group).
//!
//! **Cross-row moves** (budget modes, [`RefitSwapOptions::row_bounds`]): after the
//! per-row swaps, a move prunes `u` in one row and keeps `q` in another, changing `E*`
//! by `x_u²/P[u,u] − r_q²/s_q` exactly; rounds of moves and the touched rows' swaps
//! alternate until no move pays (module `moves`). The layer keeps them only when its
//! re-fit measures a lower total than the per-row result's.
//!
//! Determinism: each row depends only on its own inputs; results are identical for any
//! number of threads.
//!
//! ```
//! use sparseswaps_core::{LayerProblem, Mask, Pattern};
//! use sparseswaps_reconstruct::{reconstruct, refit_swaps, RefitSwapOptions};
//! // Inputs 0 and 1 are nearly the same channel: keeping both wastes a weight that a
//! // re-fit of one of them recovers, while input 2 is independent.
//! let w = [1.0f32, 1.0, 0.5];
//! let g = [1.0f32, 0.99, 0.0, 0.99, 1.0, 0.0, 0.0, 0.0, 1.0];
//! let problem = LayerProblem::new(&w, 1, 3, &g).unwrap();
//! let pattern = Pattern::unstructured(1.0 / 3.0).unwrap(); // keep 2 of 3
//! let mut mask = Mask::new(1, 3, vec![1, 1, 0]).unwrap();
//! let start = reconstruct(&problem, &mask, &Default::default()).unwrap();
//! let rep = refit_swaps(&problem, &pattern, &mut mask, &RefitSwapOptions::default()).unwrap();
//! assert_eq!(mask.row(0).iter().filter(|&&m| m == 1).count(), 2);
//! assert!(rep.refit_after < start.reconstructed_error);
//! assert_eq!(rep.refit_before, start.reconstructed_error);
//! ```

mod kernels;
mod moves;
mod options;
mod search;
mod state;

pub use moves::RowOffer;
pub use options::{RefitRow, RefitSwapOptions, RefitSwapReport};
pub use search::{best_pair, BestPair};
pub use state::{RefitRowState, RefitSnapshot};

use crate::{reconstruct, ReconstructError};
use rayon::prelude::*;
use sparseswaps_core::{LayerProblem, Mask, Pattern, StopReason};
use std::time::Instant;

fn invalid(msg: impl Into<String>) -> ReconstructError {
    ReconstructError::Invalid(msg.into())
}

fn check_options(opts: &RefitSwapOptions) -> Result<(), ReconstructError> {
    let d = opts.reconstruct.damping;
    if !d.is_finite() || d < 0.0 {
        return Err(invalid(format!("damping {d} must be finite and >= 0")));
    }
    if !opts.rel_tol.is_finite() || opts.rel_tol < 0.0 {
        return Err(invalid(format!(
            "rel_tol {} must be finite and >= 0",
            opts.rel_tol
        )));
    }
    if !opts.recheck_rel.is_finite() || opts.recheck_rel < 0.0 {
        let r = opts.recheck_rel;
        return Err(invalid(format!("recheck_rel {r} must be finite and >= 0")));
    }
    Ok(())
}

/// Exact 1-swaps of the re-fitted objective on every row of `problem`, from `mask`
/// (updated in place to the final mask), then the re-fit of the final mask.
///
/// N:M patterns swap only inside groups (the mask must follow the pattern). With an
/// unstructured pattern each row keeps its own count, unless
/// [`RefitSwapOptions::row_bounds`] lets counts move: then rounds of cross-row moves of
/// `E*` follow the per-row swaps (see `moves`). The per-row result is never worse than
/// `reconstruct(problem, mask)` on the starting mask, row by row, and the moves are kept
/// only when the re-fit of the layer they reach is lower still.
pub fn refit_swaps(
    problem: &LayerProblem<'_>,
    pattern: &Pattern,
    mask: &mut Mask,
    opts: &RefitSwapOptions,
) -> Result<RefitSwapReport, ReconstructError> {
    let start = Instant::now();
    check_options(opts)?;
    problem
        .check_mask(mask)
        .map_err(|e| invalid(e.to_string()))?;
    pattern
        .check_width(problem.d_in())
        .map_err(|e| invalid(e.to_string()))?;
    let group = pattern.group();
    if group.is_some() {
        mask.validate(pattern).map_err(|e| invalid(e.to_string()))?;
    }
    let (d_out, d) = (problem.d_out(), problem.d_in());
    let gram = problem.gram();
    let start_mask = mask.clone();
    let before = reconstruct(problem, &start_mask, &opts.reconstruct)?;
    let threads = rayon::current_num_threads().max(1);
    let in_flight = match opts.max_rows_in_flight {
        0 => threads,
        n => n.min(threads),
    };
    let per_row = || -> Vec<(Vec<u8>, RefitRow, RowOffer)> {
        (0..d_out)
            .into_par_iter()
            .map(|r| {
                let mut row = start_mask.row(r).to_vec();
                let (rep, offer) =
                    search::run_row(problem.row(r), &mut row, gram, group, opts, None);
                (row, rep, offer)
            })
            .collect()
    };
    let results = in_pool(in_flight, threads, per_row)?;
    let mut rows = Vec::with_capacity(d_out);
    let mut offers = Vec::with_capacity(d_out);
    for (r, (row, rep, offer)) in results.into_iter().enumerate() {
        mask.row_mut(r).copy_from_slice(&row);
        rows.push(rep);
        offers.push(offer);
    }
    let after = reconstruct(problem, mask, &opts.reconstruct)?;
    let mut weights = Vec::with_capacity(d_out * d);
    let (mut refit_before, mut refit_after, mut mask_after) = (0.0, 0.0, 0.0);
    for (r, rep) in rows.iter_mut().enumerate() {
        let (b, a) = (before.rows[r], after.rows[r]);
        rep.refit_before = b.error;
        let span = r * d..(r + 1) * d;
        if a.error > b.error {
            rep.reverted = true;
            rep.refit_after = b.error;
            mask.row_mut(r).copy_from_slice(start_mask.row(r));
            weights.extend_from_slice(&before.weights[span]);
            mask_after += b.mask_error;
        } else {
            rep.refit_after = a.error;
            weights.extend_from_slice(&after.weights[span]);
            mask_after += a.mask_error;
        }
        refit_before += rep.refit_before;
        refit_after += rep.refit_after;
    }
    let (mut cross_moves, mut move_rounds) = (0, 0);
    if let Some(bounds) = opts.row_bounds.filter(|b| b.0 < b.1 && group.is_none()) {
        // The per-row record, restored whole if the moves are not kept: the rounds'
        // swaps, errors and stops would describe a mask that is not written.
        let per_row = rows.clone();
        let moved = in_pool(in_flight, threads, || {
            cross_row(problem, mask, &mut rows, offers, bounds, opts)
        })??;
        move_rounds = moved.rounds;
        // Kept only when the re-fit measures a gain for the layer (the moves change
        // row counts, so a row cannot go back alone).
        if let Some(m) = moved.outcome.filter(|m| m.refit_after < refit_after) {
            *mask = m.mask;
            weights = m.weights;
            refit_after = m.refit_after;
            mask_after = m.mask_after;
            cross_moves = moved.moves;
            for (rep, e) in rows.iter_mut().zip(m.row_errors) {
                rep.refit_after = e;
            }
        } else {
            rows = per_row;
        }
    }
    let capped = rows
        .iter()
        .filter(|r| r.stop == StopReason::MaxSwaps)
        .count();
    Ok(RefitSwapReport {
        weights,
        refit_before,
        refit_after,
        mask_error_before: before.mask_error,
        mask_error_after: mask_after,
        energy: before.energy,
        swaps: rows.iter().map(|r| r.swaps as u64).sum(),
        rows_optimal: d_out - capped,
        rows_capped: capped,
        rows_reverted: rows.iter().filter(|r| r.reverted).count(),
        pairs_evaluated: rows.iter().map(|r| r.pairs).sum(),
        peak_row_bytes: rows.iter().map(|r| r.state_bytes).max().unwrap_or(0),
        rows_in_flight: in_flight,
        seconds: start.elapsed().as_secs_f64(),
        rows,
        cross_moves,
        move_rounds,
    })
}

/// Runs `f` on a pool of `in_flight` threads when that is fewer than the current pool's
/// (a row's state lives while one thread works on it, so this bounds the states alive
/// at once).
fn in_pool<T: Send>(
    in_flight: usize,
    threads: usize,
    f: impl FnOnce() -> T + Send,
) -> Result<T, ReconstructError> {
    if in_flight < threads {
        Ok(rayon::ThreadPoolBuilder::new()
            .num_threads(in_flight)
            .build()
            .map_err(|e| invalid(format!("thread pool of {in_flight}: {e}")))?
            .install(f))
    } else {
        Ok(f())
    }
}

/// The layer after cross-row moves, re-fitted.
struct Moved {
    rounds: u32,
    moves: u64,
    /// `None` when no move was taken.
    outcome: Option<MovedLayer>,
}

struct MovedLayer {
    mask: Mask,
    weights: Vec<f32>,
    refit_after: f64,
    mask_after: f64,
    row_errors: Vec<f64>,
}

/// Rounds of cross-row moves from the per-row result `mask` (left as it is), then the
/// re-fit of the mask they reach. Rows put back to their starting mask offer from it.
fn cross_row(
    problem: &LayerProblem<'_>,
    mask: &Mask,
    rows: &mut [RefitRow],
    mut offers: Vec<RowOffer>,
    bounds: (usize, usize),
    opts: &RefitSwapOptions,
) -> Result<Moved, ReconstructError> {
    let (d_out, d) = (problem.d_out(), problem.d_in());
    let mut masks: Vec<Vec<u8>> = (0..d_out).map(|r| mask.row(r).to_vec()).collect();
    let stale: Vec<usize> = (0..d_out).filter(|&r| rows[r].reverted).collect();
    let fresh: Vec<RowOffer> = stale
        .par_iter()
        .map(|&r| {
            let mut row = masks[r].clone();
            let o = RefitSwapOptions {
                max_swaps: Some(0),
                ..*opts
            };
            search::run_row(
                problem.row(r),
                &mut row,
                problem.gram(),
                None,
                &o,
                Some(rows[r].lambda),
            )
            .1
        })
        .collect();
    for (&r, offer) in stale.iter().zip(fresh) {
        offers[r] = offer;
    }
    let (rounds, moves) = moves::run_rounds(problem, &mut masks, rows, &mut offers, bounds, opts);
    if moves == 0 {
        return Ok(Moved {
            rounds,
            moves,
            outcome: None,
        });
    }
    let moved = Mask::new(d_out, d, masks.concat()).map_err(|e| invalid(e.to_string()))?;
    let fit = reconstruct(problem, &moved, &opts.reconstruct)?;
    Ok(Moved {
        rounds,
        moves,
        outcome: Some(MovedLayer {
            refit_after: fit.rows.iter().map(|r| r.error).sum(),
            mask_after: fit.mask_error,
            row_errors: fit.rows.iter().map(|r| r.error).collect(),
            weights: fit.weights,
            mask: moved,
        }),
    })
}
