//! Budget modes for unstructured sparsity: how many weights each row may keep.
//!
//! The paper fixes `k` kept weights per row ([`Budget::Row`]), which makes the rows
//! independent problems. Two wider budgets keep the refinement exact:
//!
//! - [`Budget::Layer`]: only the layer's total of kept weights, `d_out · k`, is fixed.
//!   Every row keeps at least one weight (the floor): a row that keeps nothing outputs a
//!   constant zero, which is structured (channel) pruning rather than what a sparsity
//!   budget asks for, and it would leave that row with no 1-swap to refine.
//! - [`Budget::Band`]: the layer total is fixed as well, and every row keeps between
//!   `k·(1−δ)` and `k·(1+δ)` weights (`δ = max_row_imbalance`; bounds rounded inward,
//!   the lower one at least 1, the upper one at most `d_in`), so kernels that want
//!   balanced rows stay usable.
//!
//! Both start exactly like the row budget — the warm start (`k` per row) refined by
//! per-row 1-swaps — so their result is never worse than the row budget's from the same
//! warm start. Then they alternate:
//!
//! 1. **A round of cross-row moves.** A move prunes kept `u` of row `r1` and restores
//!    pruned `q` of row `r2 ≠ r1`; the rows do not interact in the objective, so its
//!    change is exactly `Δ = a_u(r1) + b_q(r2)` (no cross term, see
//!    `docs/algorithm.md`). Each row offers its smallest `a` (if it may lose a weight)
//!    and its smallest `b` (if it may gain one). Pairs are chosen sequentially:
//!    donors in increasing `a`, each with the unused recipient of smallest `b`, a move
//!    taken when `Δ < −rel_tol · (E_r1 + E_r2)`; every row takes part in at most one move
//!    per round, so the moves of a round touch disjoint rows, commute, and are applied in
//!    parallel. Ties go to the lower row index.
//! 2. **Per-row 1-swaps on the touched rows** (rows in parallel), whose kept counts
//!    changed, until each is 1-swap optimal again.
//!
//! until a round finds no improving move. The total kept count never changes (a move
//! removes one weight and adds one), and bounds are checked before a row is offered.
//!
//! **Caps.** `max_swaps` caps the *changes* of every row: its 1-swaps plus the cross-row
//! moves it takes part in (as donor or recipient). A row at the cap offers no move. So
//! a layer makes at most `d_out · max_swaps` changes in all, and `max_swaps = 0` is the
//! warm start in every mode; `None` runs until no swap and no move lowers the error.
//!
//! **Determinism.** Row work (searches, swaps, applying one half of a move) depends only
//! on that row; pair selection is sequential with fixed tie-breaking; sums are taken in
//! row order. Results are bit-identical for any number of threads.
//!
//! **Memory.** The row states (`c = G p` in f64) of all rows are kept across rounds:
//! `8 · d_out · d_in` bytes for the layer.

use crate::bounded::{column_correlation_bound, run_row_bounded};
use crate::error::{CoreError, Result};
use crate::exhaustive::run_row_exhaustive;
use crate::mask::Mask;
use crate::objective::LayerProblem;
use crate::options::{RefineOptions, Search};
use crate::pattern::Pattern;
use crate::report::RefineReport;
use crate::row::{finish_exact, RowJob, SearchTally};
use crate::row_walk::ROWS_PER_WALK;
use rayon::prelude::*;
use std::time::Instant;

// The budget types keep their paths under `budget`.
pub use crate::options::Budget;
pub use crate::report::KeptStats;

/// One cross-row move as the budget engine applies it, for observers and tests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CrossMove {
    /// Round of moves (from 0).
    pub round: u32,
    /// Row that loses a kept weight.
    pub donor: usize,
    /// Column pruned in the donor row.
    pub pruned: usize,
    /// Row that gains a kept weight.
    pub recipient: usize,
    /// Column restored in the recipient row.
    pub restored: usize,
    /// Predicted change of the layer error, `a_u(donor) + b_q(recipient)`, from the
    /// rows' running states.
    pub delta: f64,
}

/// What a row offers to a round: its best prune and best restore (`+inf` when it may
/// not lose, or gain, a weight).
#[derive(Debug, Clone, Copy)]
struct Offer {
    a: f64,
    u: usize,
    b: f64,
    q: usize,
    error: f64,
}

impl Offer {
    fn of(job: &RowJob<'_>, bounds: (usize, usize), opts: &RefineOptions) -> Offer {
        let mut o = Offer {
            a: f64::INFINITY,
            u: usize::MAX,
            b: f64::INFINITY,
            q: usize::MAX,
            error: job.state.error(),
        };
        if opts.max_swaps.is_some_and(|cap| job.changes() >= cap) {
            return o;
        }
        let kept = job.mask.iter().filter(|&&m| m == 1).count();
        let (can_lose, can_gain) = (kept > bounds.0, kept < bounds.1);
        for (j, &m) in job.mask.iter().enumerate() {
            // Strict `<`: ties go to the lower column.
            if m == 1 && can_lose {
                let a = job.state.a(j);
                if a < o.a {
                    (o.a, o.u) = (a, j);
                }
            } else if m == 0 && can_gain {
                let b = job.state.b(j);
                if b < o.b {
                    (o.b, o.q) = (b, j);
                }
            }
        }
        o
    }
}

/// Chooses the moves of one round over disjoint rows (sequential, deterministic).
fn plan_round(offers: &[Offer], rel_tol: f64, round: u32) -> Vec<CrossMove> {
    let mut donors: Vec<(f64, usize)> = offers
        .iter()
        .enumerate()
        .filter(|(_, o)| o.a.is_finite())
        .map(|(r, o)| (o.a, r))
        .collect();
    let mut recipients: Vec<(f64, usize)> = offers
        .iter()
        .enumerate()
        .filter(|(_, o)| o.b.is_finite())
        .map(|(r, o)| (o.b, r))
        .collect();
    let order = |x: &(f64, usize), y: &(f64, usize)| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1));
    donors.sort_unstable_by(order);
    recipients.sort_unstable_by(order);
    let mut used = vec![false; offers.len()];
    let mut first = 0usize;
    let mut moves = Vec::new();
    for &(a, r1) in &donors {
        if used[r1] {
            continue;
        }
        while first < recipients.len() && used[recipients[first].1] {
            first += 1;
        }
        let Some(&(bmin, _)) = recipients.get(first) else {
            break;
        };
        // No later donor (larger a) can do better than this one with the best recipient
        // left; the tolerance only raises the bar.
        if a + bmin >= 0.0 {
            break;
        }
        let Some(&(b, r2)) = recipients[first..]
            .iter()
            .find(|&&(_, r)| !used[r] && r != r1)
        else {
            continue;
        };
        let delta = a + b;
        let tol = rel_tol * (offers[r1].error.max(0.0) + offers[r2].error.max(0.0));
        if delta < -tol {
            used[r1] = true;
            used[r2] = true;
            moves.push(CrossMove {
                round,
                donor: r1,
                pruned: offers[r1].u,
                recipient: r2,
                restored: offers[r2].q,
                delta,
            });
        }
    }
    moves
}

/// Sees every cross-row move before it is applied: the move, then the donor's and the
/// recipient's mask rows as they are at that moment.
pub type MoveObserver<'o> = dyn FnMut(&CrossMove, &[u8], &[u8]) + 'o;

/// What a round asks of one row.
#[derive(Debug, Clone, Copy)]
enum Action {
    Prune(usize),
    Restore(usize),
}

/// The budget engine ([`Budget::Band`], [`Budget::Layer`]): per-row 1-swaps, then
/// rounds of exact cross-row moves alternating with 1-swaps on the touched rows; see the
/// module docs. `observer` sees every move before it is applied, with the donor's and
/// the recipient's mask rows as they are then. [`crate::refine`] calls this with a
/// no-op observer when `opts.budget` is not [`Budget::Row`].
pub fn refine_budget(
    problem: &LayerProblem<'_>,
    pattern: &Pattern,
    mask: &mut Mask,
    opts: &RefineOptions,
    progress: &(dyn Fn(usize) + Sync),
    observer: &mut MoveObserver<'_>,
) -> Result<RefineReport> {
    let start = Instant::now();
    opts.budget.validate()?;
    if pattern.group().is_some() && opts.budget != Budget::Row {
        return Err(CoreError::InvalidOptions(format!(
            "budget '{}' applies to unstructured sparsity only: pattern {pattern} keeps a fixed count in every group",
            opts.budget.name()
        )));
    }
    problem.check_mask(mask)?;
    mask.validate(pattern)?;
    let d = problem.d_in();
    let gram = problem.gram();
    let k = pattern.kept_per_row(d);
    let bounds = opts.budget.row_bounds(k, d);
    let rho = match opts.search {
        Search::Bounded => Some(column_correlation_bound(gram, d)),
        Search::Exhaustive => None,
    };
    let rho = rho.as_deref();

    // Phase 0: exactly the row budget's refinement (same swaps, exact stop), so the
    // result can only improve on it.
    let mut jobs: Vec<RowJob<'_>> = mask
        .as_mut_slice()
        .par_chunks_mut(d * ROWS_PER_WALK)
        .enumerate()
        .flat_map_iter(|(bi, chunk)| {
            let r0 = bi * ROWS_PER_WALK;
            let ws: Vec<&[f32]> = (r0..r0 + chunk.len() / d).map(|r| problem.row(r)).collect();
            let mut jobs = RowJob::new_batch(&ws, chunk, gram, false);
            for job in &mut jobs {
                run_row(job, rho, gram, opts);
            }
            finish_exact(&mut jobs, false);
            progress(jobs.len());
            jobs
        })
        .collect();
    let row_phase_error: f64 = jobs.iter().map(|j| j.report.final_error).sum();
    for job in &mut jobs {
        // Between rounds only the periodic recompute runs; one exact recompute ends.
        job.exact_stop = false;
    }
    let (rounds, moves_total) = if bounds.0 < bounds.1 {
        run_rounds(&mut jobs, bounds, rho, gram, opts, observer)
    } else {
        (0, 0)
    };

    // One exact recompute of every row: the reported errors carry no drift.
    jobs.par_chunks_mut(ROWS_PER_WALK)
        .for_each(|walk| finish_exact(walk, true));
    let counts: Vec<usize> = jobs
        .iter()
        .map(|j| j.mask.iter().filter(|&&m| m == 1).count())
        .collect();
    let tally = SearchTally::sum(jobs.iter().map(|j| j.tally));
    let rows = jobs.into_iter().map(|j| j.report).collect();
    let mut rep = RefineReport::from_rows(
        rows,
        problem.d_out(),
        d,
        *pattern,
        k,
        opts.max_swaps,
        start.elapsed().as_secs_f64(),
        "cpu",
    );
    rep.budget = opts.budget;
    rep.cross_moves = moves_total;
    rep.cross_rounds = rounds;
    rep.row_phase_error = Some(row_phase_error);
    rep.kept = KeptStats::from_counts(&counts, k, bounds);
    tally.record(&mut rep);
    Ok(rep)
}

/// Rounds of cross-row moves, each followed by 1-swaps on the rows it touched, until a
/// round finds no improving move. Returns the rounds that applied a move and the moves.
fn run_rounds(
    jobs: &mut [RowJob<'_>],
    bounds: (usize, usize),
    rho: Option<&[f64]>,
    gram: &[f32],
    opts: &RefineOptions,
    observer: &mut MoveObserver<'_>,
) -> (u32, u64) {
    let mut offers: Vec<Offer> = jobs
        .par_iter()
        .map(|j| Offer::of(j, bounds, opts))
        .collect();
    let (mut rounds, mut moves_total) = (0u32, 0u64);
    loop {
        let moves = plan_round(&offers, opts.rel_tol, rounds);
        if moves.is_empty() {
            break;
        }
        let mut actions: Vec<Option<Action>> = vec![None; jobs.len()];
        for m in &moves {
            observer(m, jobs[m.donor].mask, jobs[m.recipient].mask);
            actions[m.donor] = Some(Action::Prune(m.pruned));
            actions[m.recipient] = Some(Action::Restore(m.restored));
        }
        // Disjoint rows: each applies its half of a move, then its 1-swaps.
        jobs.par_iter_mut()
            .zip(offers.par_iter_mut())
            .zip(actions.par_iter())
            .for_each(|((job, offer), act)| {
                let Some(act) = *act else { return };
                match act {
                    Action::Prune(u) => job.state.prune(job.mask, u),
                    Action::Restore(q) => job.state.restore(job.mask, q),
                };
                job.moves += 1;
                job.since_recompute += 1;
                if opts.recompute_every > 0 && job.since_recompute >= opts.recompute_every {
                    job.state.recompute(job.mask);
                    job.since_recompute = 0;
                }
                run_row(job, rho, gram, opts);
                *offer = Offer::of(job, bounds, opts);
            });
        moves_total += moves.len() as u64;
        rounds += 1;
    }
    (rounds, moves_total)
}

/// Runs the 1-swap loop of one unstructured row from its current state until it stops
/// (1-swap optimal, nothing to swap, or the cap on swaps plus cross-row moves). The row
/// may keep any number of weights. `rho` selects the bounded search (`None`:
/// exhaustive); both take the same swaps, as in [`crate::refine`].
fn run_row(job: &mut RowJob<'_>, rho: Option<&[f64]>, gram: &[f32], opts: &RefineOptions) {
    job.done = false;
    job.check_cap(opts);
    if job.done {
        return;
    }
    match rho {
        Some(rho) => run_row_bounded(job, rho, gram, opts),
        None => run_row_exhaustive(job, gram, opts),
    }
}

/// Checks a mask against a budget: every row within the budget's bounds and the layer
/// total `d_out · k`. The error names the first row at fault.
pub fn validate_budget(mask: &Mask, pattern: &Pattern, budget: &Budget) -> Result<()> {
    if *budget == Budget::Row || pattern.group().is_some() {
        return mask.validate(pattern);
    }
    let k = pattern.kept_per_row(mask.cols());
    let (lo, hi) = budget.row_bounds(k, mask.cols());
    for r in 0..mask.rows() {
        let kept = mask.row(r).iter().filter(|&&m| m == 1).count();
        if kept < lo || kept > hi {
            return Err(CoreError::InvalidMask(format!(
                "row {r} keeps {kept} weights, budget {budget} allows {lo}..={hi}"
            )));
        }
    }
    if mask.kept() != mask.rows() * k {
        return Err(CoreError::InvalidMask(format!(
            "the layer keeps {} weights, budget {budget} requires {} x {k} = {}",
            mask.kept(),
            mask.rows(),
            mask.rows() * k
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Greedy pairing: disjoint rows, best donor with best other recipient, no move that
    /// does not lower the error.
    #[test]
    fn plan_pairs_disjoint_rows() {
        let o = |a: f64, b: f64| Offer {
            a,
            u: 0,
            b,
            q: 1,
            error: 1.0,
        };
        // Row 0 is both the best donor and the best recipient: it donates, row 2
        // (next best b) receives; row 1 donates to nobody (a + b >= 0 for row 3).
        let offers = [o(-3.0, -5.0), o(2.0, 0.5), o(1.0, -2.0), o(4.0, 1.0)];
        let moves = plan_round(&offers, 1e-9, 0);
        assert_eq!(moves.len(), 1);
        assert_eq!((moves[0].donor, moves[0].recipient), (0, 2));
        assert_eq!(moves[0].delta, -5.0);
        let offers = [
            o(1.0, -3.0),
            o(-1.0, 2.0),
            o(0.5, -0.2),
            o(f64::INFINITY, -1.0),
        ];
        let moves = plan_round(&offers, 1e-9, 0);
        let pairs: Vec<_> = moves.iter().map(|m| (m.donor, m.recipient)).collect();
        // Donor 1 (a = -1) takes recipient 0 (b = -3); donor 2 (a = 0.5) takes 3 (b = -1).
        assert_eq!(pairs, vec![(1, 0), (2, 3)]);
    }
}
