//! Cross-row moves of the re-fitted objective, for the budget modes (`layer`, `band`).
//!
//! A move prunes kept `u` in row `r1` and keeps pruned `q` in row `r2 ≠ r1`. Rows do not
//! interact in the objective, so the change has no cross term:
//!
//! ```text
//! Δ*_cross = x_u² / P[u,u]  (in r1)  −  r_q² / s_q  (in r2)
//! ```
//!
//! (the removal and addition halves of a swap, `docs/algorithm.md`). Rounds run as the
//! mask objective's budget engine runs them: every row offers its cheapest removal and
//! its best addition, read off a fresh state, where its bounds allow; donors by
//! increasing cost each take the unused recipient of largest gain, and the move is
//! taken when `Δ*_cross < −tol`; a row takes part in at most one move per round. The
//! rows a round touched are factorised afresh on their new kept sets (each with the
//! damping `λ` of its first state, so that `E*` stays one function of the kept set and
//! the predicted change is exact) and run their 1-swaps of `E*` again, which gives their
//! next offers. Rounds end when no move is taken. `max_swaps` caps each row's swaps plus
//! moves.
//!
//! Memory: between rounds a row keeps only its offer (four numbers); states live only
//! while a row is worked on, at most one per thread of the pool, as in the per-row phase.
//! Selection is sequential with fixed tie-breaking, so results do not depend on the
//! number of threads.

use super::options::{RefitRow, RefitSwapOptions};
use super::search::run_row;
use super::state::RefitRowState;
use rayon::prelude::*;
use sparseswaps_core::LayerProblem;

/// What a row offers a round of moves, read off a fresh state.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RowOffer {
    /// The cheapest removal `(x_u² / P[u,u], u)`; ties go to the lower column.
    pub remove: Option<(f64, usize)>,
    /// The best addition `(r_q² / s_q, q)`; ties go to the lower column.
    pub add: Option<(f64, usize)>,
    /// `E*` of the state it was read from.
    pub error: f64,
    /// `wᵀ G w` of the row.
    pub energy: f64,
}

impl RowOffer {
    /// The offer of a (fresh) state.
    pub fn of(st: &RefitRowState<'_>) -> RowOffer {
        let mut remove: Option<(f64, usize)> = None;
        for &u in &st.kept {
            let Some(c) = st.removal_cost(u).filter(|c| c.is_finite()) else {
                continue;
            };
            if remove.is_none_or(|(bc, bu)| c < bc || (c == bc && u < bu)) {
                remove = Some((c, u));
            }
        }
        let mut add: Option<(f64, usize)> = None;
        for &q in &st.pruned {
            let Some(g) = st.addition_gain(q).filter(|g| g.is_finite()) else {
                continue;
            };
            if add.is_none_or(|(bg, bq)| g > bg || (g == bg && q < bq)) {
                add = Some((g, q));
            }
        }
        RowOffer {
            remove,
            add,
            error: st.error(),
            energy: st.energy(),
        }
    }
}

/// One move of a round: row `donor` prunes `u`, row `recipient` keeps `q`.
#[derive(Debug, Clone, Copy)]
struct Move {
    donor: usize,
    u: usize,
    recipient: usize,
    q: usize,
}

/// Rounds of cross-row moves from the per-row result: `masks`, `rows` and `offers` (one
/// per row, from fresh states of `masks`) are brought up to date. Returns the rounds
/// run and the moves taken.
pub(crate) fn run_rounds(
    problem: &LayerProblem<'_>,
    masks: &mut [Vec<u8>],
    rows: &mut [RefitRow],
    offers: &mut [RowOffer],
    (lo, hi): (usize, usize),
    opts: &RefitSwapOptions,
) -> (u32, u64) {
    let mut counts: Vec<usize> = masks
        .iter()
        .map(|m| m.iter().filter(|&&v| v == 1).count())
        .collect();
    let (mut rounds, mut total) = (0u32, 0u64);
    loop {
        let moves = select(&counts, rows, offers, (lo, hi), opts);
        if moves.is_empty() {
            return (rounds, total);
        }
        for m in &moves {
            masks[m.donor][m.u] = 0;
            masks[m.recipient][m.q] = 1;
            counts[m.donor] -= 1;
            counts[m.recipient] += 1;
            rows[m.donor].moves += 1;
            rows[m.recipient].moves += 1;
        }
        rounds += 1;
        total += moves.len() as u64;
        let touched: Vec<usize> = moves.iter().flat_map(|m| [m.donor, m.recipient]).collect();
        let redone: Vec<(Vec<u8>, RefitRow, RowOffer)> = touched
            .par_iter()
            .map(|&r| {
                let mut mask = masks[r].clone();
                let left = opts
                    .max_swaps
                    .map(|cap| cap.saturating_sub(changes(&rows[r])));
                let o = RefitSwapOptions {
                    max_swaps: left,
                    ..*opts
                };
                let lambda = Some(rows[r].lambda);
                let (rep, offer) =
                    run_row(problem.row(r), &mut mask, problem.gram(), None, &o, lambda);
                (mask, rep, offer)
            })
            .collect();
        for (&r, (mask, rep, offer)) in touched.iter().zip(redone) {
            masks[r] = mask;
            merge(&mut rows[r], &rep);
            offers[r] = offer;
        }
    }
}

/// A row's swaps plus moves, against `max_swaps`.
fn changes(row: &RefitRow) -> u32 {
    row.swaps + row.moves
}

/// The moves of one round (sequential, fixed tie-breaking).
fn select(
    counts: &[usize],
    rows: &[RefitRow],
    offers: &[RowOffer],
    (lo, hi): (usize, usize),
    opts: &RefitSwapOptions,
) -> Vec<Move> {
    let open = |r: usize| opts.max_swaps.is_none_or(|cap| changes(&rows[r]) < cap);
    let mut donors: Vec<(f64, usize, usize)> = (0..counts.len())
        .filter(|&r| counts[r] > lo && open(r))
        .filter_map(|r| offers[r].remove.map(|(c, u)| (c, r, u)))
        .collect();
    donors.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut recipients: Vec<(f64, usize, usize)> = (0..counts.len())
        .filter(|&r| counts[r] < hi && open(r))
        .filter_map(|r| offers[r].add.map(|(g, q)| (g, r, q)))
        .collect();
    recipients.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut used = vec![false; counts.len()];
    let mut moves = Vec::new();
    for &(cost, donor, u) in &donors {
        if used[donor] {
            continue;
        }
        let Some(&(gain, recipient, q)) =
            recipients.iter().find(|&&(_, r, _)| !used[r] && r != donor)
        else {
            break;
        };
        let (a, b) = (&offers[donor], &offers[recipient]);
        let tol = opts.rel_tol * (a.error.max(0.0) + b.error.max(0.0))
            + 64.0 * f64::EPSILON * (a.energy + b.energy);
        if cost - gain < -tol {
            used[donor] = true;
            used[recipient] = true;
            moves.push(Move {
                donor,
                u,
                recipient,
                q,
            });
        }
    }
    moves
}

/// Adds a later run of a row (after a move) to its record.
fn merge(row: &mut RefitRow, later: &RefitRow) {
    row.final_error = later.final_error;
    row.swaps += later.swaps;
    row.steps += later.steps;
    row.pairs += later.pairs;
    row.refreshes += later.refreshes;
    row.max_drift = row.max_drift.max(later.max_drift);
    row.state_bytes = row.state_bytes.max(later.state_bytes);
    row.stop = later.stop;
    row.diverged |= later.diverged;
}
