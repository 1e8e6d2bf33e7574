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

use crate::engine::{
    column_correlation_bound, run_row_unstructured, RefineOptions, RowJob, RowState, Search,
};
use crate::error::{CoreError, Result};
use crate::mask::Mask;
use crate::objective::LayerProblem;
use crate::pattern::Pattern;
use crate::report::RefineReport;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Instant;

/// How the kept weights of an unstructured layer may be spread over its rows.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Budget {
    /// Every row keeps exactly `k` (the paper; rows are independent).
    #[default]
    Row,
    /// The layer total is fixed and every row keeps between `k·(1−δ)` and `k·(1+δ)`.
    Band {
        /// `δ ≥ 0`: the largest relative deviation of a row's kept count from `k`.
        max_row_imbalance: f64,
    },
    /// Only the layer total is fixed; every row keeps at least one weight.
    Layer,
}

impl Budget {
    /// Builds a budget from its name (`row`, `band`, `layer`) and, for `band`, the
    /// imbalance `δ` (ignored by the other modes).
    pub fn parse(mode: &str, max_row_imbalance: f64) -> Result<Budget> {
        let b = match mode.trim() {
            "row" => Budget::Row,
            "band" => Budget::Band { max_row_imbalance },
            "layer" => Budget::Layer,
            other => {
                return Err(CoreError::InvalidOptions(format!(
                    "budget '{other}': expected row, band or layer"
                )))
            }
        };
        b.validate()?;
        Ok(b)
    }

    /// Checks `δ` (finite and `≥ 0`).
    pub fn validate(&self) -> Result<()> {
        if let Budget::Band { max_row_imbalance } = *self {
            if !max_row_imbalance.is_finite() || max_row_imbalance < 0.0 {
                return Err(CoreError::InvalidOptions(format!(
                    "max_row_imbalance {max_row_imbalance} must be finite and >= 0"
                )));
            }
        }
        Ok(())
    }

    /// The mode's name: `row`, `band` or `layer`.
    pub fn name(&self) -> &'static str {
        match self {
            Budget::Row => "row",
            Budget::Band { .. } => "band",
            Budget::Layer => "layer",
        }
    }

    /// The kept counts a row may have, `(lo, hi)` inclusive, for `k` kept per row on
    /// average and rows of width `d_in`.
    pub fn row_bounds(&self, k: usize, d_in: usize) -> (usize, usize) {
        // Every row keeps at least one weight when the layer keeps any.
        let floor = k.min(1);
        match *self {
            Budget::Row => (k, k),
            Budget::Layer => (floor, d_in),
            Budget::Band {
                max_row_imbalance: delta,
            } => {
                // Rounded inward (with slack for the binary value of δ), so the bounds
                // hold literally: 288 · 0.75 = 216 stays 216.
                let lo = (k as f64 * (1.0 - delta) - 1e-9).ceil().max(0.0) as usize;
                let hi = (k as f64 * (1.0 + delta) + 1e-9).floor() as usize;
                (lo.max(floor).min(k), hi.min(d_in).max(k))
            }
        }
    }
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Budget::Band { max_row_imbalance } => write!(f, "band ±{max_row_imbalance}"),
            other => f.write_str(other.name()),
        }
    }
}

/// Distribution of the kept counts over the rows of a layer.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct KeptStats {
    /// The fewest weights a row keeps.
    pub min: usize,
    /// The most weights a row keeps.
    pub max: usize,
    /// Mean kept per row (the layer total / `d_out`).
    pub mean: f64,
    /// Quantiles 5%, 25%, 50%, 75%, 95% (nearest rank).
    pub quantiles: [usize; 5],
    /// Rows keeping fewer than `k`.
    pub rows_below_k: usize,
    /// Rows keeping more than `k`.
    pub rows_above_k: usize,
    /// The budget's lower bound on a row's kept count.
    pub lower_bound: usize,
    /// The budget's upper bound on a row's kept count.
    pub upper_bound: usize,
}

impl KeptStats {
    /// Statistics of `counts` (one per row) around `k`, with the budget's bounds.
    pub fn from_counts(counts: &[usize], k: usize, bounds: (usize, usize)) -> Self {
        if counts.is_empty() {
            return KeptStats {
                lower_bound: bounds.0,
                upper_bound: bounds.1,
                ..KeptStats::default()
            };
        }
        let mut s = counts.to_vec();
        s.sort_unstable();
        let n = s.len();
        let q = |p: f64| s[((p * (n - 1) as f64).round() as usize).min(n - 1)];
        KeptStats {
            min: s[0],
            max: s[n - 1],
            mean: s.iter().sum::<usize>() as f64 / n as f64,
            quantiles: [q(0.05), q(0.25), q(0.5), q(0.75), q(0.95)],
            rows_below_k: s.iter().filter(|&&c| c < k).count(),
            rows_above_k: s.iter().filter(|&&c| c > k).count(),
            lower_bound: bounds.0,
            upper_bound: bounds.1,
        }
    }

    /// Every one of `rows` rows keeps `k` (the row budget and N:M patterns).
    pub fn uniform(rows: usize, k: usize) -> Self {
        KeptStats::from_counts(&vec![k; rows], k, (k, k))
    }

    /// One line: `min … max, mean, quartiles`.
    pub fn summary(&self) -> String {
        let [p5, p25, p50, p75, p95] = self.quantiles;
        format!(
            "min {} / p5 {p5} / p25 {p25} / median {p50} / p75 {p75} / p95 {p95} / max {} (mean {:.2}; bounds {}..={})",
            self.min, self.max, self.mean, self.lower_bound, self.upper_bound
        )
    }
}

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
        .par_chunks_mut(d)
        .enumerate()
        .map(|(r, mrow)| {
            let st = RowState::new(problem.row(r), mrow, gram);
            let mut job = RowJob::new(st, mrow);
            run_row_unstructured(&mut job, rho, gram, opts);
            progress(1);
            job
        })
        .collect();
    let row_phase_error: f64 = jobs.iter().map(|j| j.report.final_error).sum();
    for job in &mut jobs {
        // Between rounds only the periodic recompute runs; one exact recompute ends.
        job.exact_stop = false;
    }

    let mut offers: Vec<Offer> = jobs
        .par_iter()
        .map(|j| Offer::of(j, bounds, opts))
        .collect();
    let (mut rounds, mut moves_total) = (0u32, 0u64);
    if bounds.0 < bounds.1 {
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
                    run_row_unstructured(job, rho, gram, opts);
                    *offer = Offer::of(job, bounds, opts);
                });
            moves_total += moves.len() as u64;
            rounds += 1;
        }
    }

    // One exact recompute of every row: the reported errors carry no drift.
    jobs.par_iter_mut().for_each(|job| {
        job.state.recompute(job.mask);
        job.report.final_error = job.state.error();
    });
    let counts: Vec<usize> = jobs
        .iter()
        .map(|j| j.mask.iter().filter(|&&m| m == 1).count())
        .collect();
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
    Ok(rep)
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

    #[test]
    fn bounds_round_inward() {
        let band = Budget::Band {
            max_row_imbalance: 0.25,
        };
        assert_eq!(band.row_bounds(288, 576), (216, 360));
        assert_eq!(band.row_bounds(10, 12), (8, 12));
        assert_eq!(band.row_bounds(3, 6), (3, 3)); // 2.25 -> 3, 3.75 -> 3
        assert_eq!(
            Budget::Band {
                max_row_imbalance: 2.0
            }
            .row_bounds(4, 8),
            (1, 8)
        );
        assert_eq!(Budget::Layer.row_bounds(4, 8), (1, 8));
        assert_eq!(Budget::Layer.row_bounds(0, 8), (0, 8));
        assert_eq!(Budget::Row.row_bounds(4, 8), (4, 4));
        assert!(Budget::parse("band", -0.1).is_err());
        assert!(Budget::parse("band", f64::NAN).is_err());
        let e = Budget::parse("rows", 0.25).unwrap_err().to_string();
        assert!(
            e.contains("'rows'") && e.contains("row, band or layer"),
            "{e}"
        );
        assert_eq!(Budget::parse("layer", 0.25).unwrap(), Budget::Layer);
    }

    #[test]
    fn kept_stats() {
        let s = KeptStats::from_counts(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], 6, (1, 11));
        assert_eq!((s.min, s.max), (1, 11));
        assert_eq!(s.quantiles, [2, 4, 6, 9, 11]);
        assert_eq!((s.rows_below_k, s.rows_above_k), (5, 5));
        assert!((s.mean - 6.0).abs() < 1e-12);
        let u = KeptStats::uniform(3, 4);
        assert_eq!((u.min, u.max, u.quantiles), (4, 4, [4; 5]));
    }

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
