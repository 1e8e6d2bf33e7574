//! The running state of one row (`c = G p` and `E` in f64, with the exact update
//! formulas of a swap and of each half of a cross-row move) and the per-row bookkeeping
//! shared by every search: acceptance at the tolerance, the cap, the exact stop.
//!
//! Below the searches, the driver and the budget engine; it reads only the options,
//! the report types and the SIMD kernels.

use crate::options::RefineOptions;
use crate::report::{RefineReport, RowReport, StopReason};
use crate::row_walk::{self, WalkRow};
use crate::simd;

/// Running state of one row: `c = G p` and `E = pᵀ G p` in f64.
///
/// Exposed so that tests and other backends can check the update formulas.
#[derive(Debug, Clone)]
pub struct RowState<'a> {
    pub(crate) w: &'a [f32],
    pub(crate) gram: &'a [f32],
    c: Vec<f64>,
    error: f64,
    energy: f64,
    avx2: bool,
}

impl<'a> RowState<'a> {
    /// Builds `c` and `E` exactly from the mask row; also the dense energy `wᵀ G w`.
    pub fn new(w: &'a [f32], mask_row: &[u8], gram: &'a [f32]) -> Self {
        Self::new_batch(&[(w, mask_row)], gram).remove(0)
    }

    /// [`RowState::new`] of several rows at once, in one walk of `G` (bit-identical to
    /// building each alone, and faster: see `row_walk`).
    pub fn new_batch(rows: &[(&'a [f32], &[u8])], gram: &'a [f32]) -> Vec<Self> {
        let avx2 = simd::has_avx2();
        let mut states: Vec<Self> = rows
            .iter()
            .map(|&(w, _)| RowState {
                w,
                gram,
                c: vec![0.0; w.len()],
                error: 0.0,
                energy: 0.0,
                avx2,
            })
            .collect();
        let mut kept: Vec<Vec<f64>> = rows.iter().map(|(w, _)| vec![0.0; w.len()]).collect();
        let mut walk_rows: Vec<WalkRow<'_>> = states
            .iter_mut()
            .zip(kept.iter_mut())
            .zip(rows)
            .map(|((s, k), &(w, mask))| WalkRow {
                w,
                mask,
                c: &mut s.c,
                kept: Some(k),
            })
            .collect();
        if let Some(first) = rows.first() {
            row_walk::walk(gram, first.0.len(), &mut walk_rows, avx2);
        }
        for ((s, k), &(_, mask)) in states.iter_mut().zip(&kept).zip(rows) {
            s.error = s.pruned_error(mask);
            s.energy = (0..k.len()).map(|j| s.w[j] as f64 * (k[j] + s.c[j])).sum();
        }
        states
    }

    /// Recomputes `c` and `E` of several rows exactly, in one walk of `G`; bit-identical
    /// to [`RowState::recompute`] of each.
    pub fn recompute_batch(rows: &mut [(&mut RowState<'a>, &[u8])]) {
        let Some(first) = rows.first() else {
            return;
        };
        let (gram, d, avx2) = (first.0.gram, first.0.w.len(), first.0.avx2);
        let mut walk_rows: Vec<WalkRow<'_>> = rows
            .iter_mut()
            .map(|(s, mask)| WalkRow {
                w: s.w,
                mask,
                c: &mut s.c,
                kept: None,
            })
            .collect();
        row_walk::walk(gram, d, &mut walk_rows, avx2);
        for (s, mask) in rows.iter_mut() {
            s.error = s.pruned_error(mask);
        }
    }

    /// `E = Σ_{j pruned} w_j c_j`, in column order.
    fn pruned_error(&self, mask_row: &[u8]) -> f64 {
        (0..self.w.len())
            .filter(|&j| mask_row[j] == 0)
            .map(|j| self.w[j] as f64 * self.c[j])
            .sum()
    }

    /// Recomputes `c` and `E` exactly from the mask row (drift removal).
    pub fn recompute(&mut self, mask_row: &[u8]) {
        Self::recompute_batch(&mut [(self, mask_row)]);
    }

    /// The running row error `E`.
    pub fn error(&self) -> f64 {
        self.error
    }

    /// The dense row energy `wᵀ G w`.
    pub fn energy(&self) -> f64 {
        self.energy
    }

    /// The running `c = G p`.
    pub fn c(&self) -> &[f64] {
        &self.c
    }

    /// Cost of pruning kept `u`: `a_u = w_u² G[u,u] + 2 w_u c_u`.
    pub fn a(&self, u: usize) -> f64 {
        let d = self.w.len();
        let wu = self.w[u] as f64;
        wu * wu * self.gram[u * d + u] as f64 + 2.0 * wu * self.c[u]
    }

    /// Gain of restoring pruned `q`: `b_q = w_q² G[q,q] - 2 w_q c_q`.
    pub fn b(&self, q: usize) -> f64 {
        let d = self.w.len();
        let wq = self.w[q] as f64;
        wq * wq * self.gram[q * d + q] as f64 - 2.0 * wq * self.c[q]
    }

    /// Exact change of error for swapping kept `u` out and pruned `q` in.
    pub fn delta(&self, u: usize, q: usize) -> f64 {
        let d = self.w.len();
        self.a(u) + self.b(q)
            - 2.0 * self.w[u] as f64 * self.w[q] as f64 * self.gram[u * d + q] as f64
    }

    /// Applies the swap (kept `u` → pruned, pruned `q` → kept) to the mask row and the
    /// state; returns the `Δ` that was added to `E`.
    pub fn apply(&mut self, mask_row: &mut [u8], u: usize, q: usize) -> f64 {
        debug_assert!(mask_row[u] == 1 && mask_row[q] == 0);
        let delta = self.delta(u, q);
        self.add_gram_column(u, self.w[u] as f64);
        self.add_gram_column(q, -(self.w[q] as f64));
        self.error += delta;
        mask_row[u] = 0;
        mask_row[q] = 1;
        delta
    }

    /// Prunes kept `u` alone (one half of a cross-row move): `c += w_u G[:,u]` and
    /// `E += a_u`. Returns the `Δ = a_u` that was added to `E`.
    pub fn prune(&mut self, mask_row: &mut [u8], u: usize) -> f64 {
        debug_assert!(mask_row[u] == 1);
        let delta = self.a(u);
        self.add_gram_column(u, self.w[u] as f64);
        self.error += delta;
        mask_row[u] = 0;
        delta
    }

    /// Restores pruned `q` alone (the other half of a cross-row move):
    /// `c -= w_q G[:,q]` and `E += b_q`. Returns the `Δ = b_q` that was added to `E`.
    pub fn restore(&mut self, mask_row: &mut [u8], q: usize) -> f64 {
        debug_assert!(mask_row[q] == 0);
        let delta = self.b(q);
        self.add_gram_column(q, -(self.w[q] as f64));
        self.error += delta;
        mask_row[q] = 1;
        delta
    }

    /// `c += scale · G[:,i]`: the one update of `c` behind every swap and move
    /// (`G` is symmetric, so its row `i` is the column).
    fn add_gram_column(&mut self, i: usize, scale: f64) {
        let d = self.w.len();
        simd::axpy(
            self.avx2,
            &mut self.c,
            scale,
            &self.gram[i * d..(i + 1) * d],
        );
    }
}

/// One row being refined.
pub(crate) struct RowJob<'a> {
    pub(crate) state: RowState<'a>,
    pub(crate) mask: &'a mut [u8],
    pub(crate) report: RowReport,
    pub(crate) since_recompute: u32,
    pub(crate) done: bool,
    /// Cross-row moves this row took part in; they count toward `max_swaps` with its
    /// swaps (always 0 under the row budget).
    pub(crate) moves: u32,
    /// Recompute `c` and `E` exactly when the row stops (always, except between the
    /// rounds of the budget engine, which recomputes once at the very end).
    pub(crate) exact_stop: bool,
    /// Which search decided this row's steps (unstructured rows).
    pub(crate) tally: SearchTally,
}

/// Steps of one row (or a layer) decided by the bounded search, and by the exhaustive
/// pass it falls back to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SearchTally {
    pub(crate) bounded: u64,
    pub(crate) fallback: u64,
}

impl SearchTally {
    /// The sum of the tallies, for a layer report.
    pub(crate) fn sum(tallies: impl IntoIterator<Item = SearchTally>) -> SearchTally {
        tallies
            .into_iter()
            .fold(SearchTally::default(), |acc, t| SearchTally {
                bounded: acc.bounded + t.bounded,
                fallback: acc.fallback + t.fallback,
            })
    }

    /// Records the tally in the layer report.
    pub(crate) fn record(self, rep: &mut RefineReport) {
        rep.bounded_steps = self.bounded;
        rep.bounded_fallback_steps = self.fallback;
    }
}

impl<'a> RowJob<'a> {
    /// Jobs of consecutive rows (`ws[i]` and the `i`-th row of `masks`), their states
    /// built in one walk of `G`. With `exact_stop == false` the rows stop without their
    /// exact recompute, which [`finish_exact`] then does for all in one walk.
    pub(crate) fn new_batch(
        ws: &[&'a [f32]],
        masks: &'a mut [u8],
        gram: &'a [f32],
        exact_stop: bool,
    ) -> Vec<Self> {
        let d = masks.len() / ws.len().max(1);
        let rows: Vec<(&'a [f32], &[u8])> = ws.iter().copied().zip(masks.chunks(d)).collect();
        let states = RowState::new_batch(&rows, gram);
        drop(rows);
        masks
            .chunks_mut(d)
            .zip(states)
            .map(|(m, st)| {
                let mut job = RowJob::new(st, m);
                job.exact_stop = exact_stop;
                job
            })
            .collect()
    }

    pub(crate) fn new(state: RowState<'a>, mask: &'a mut [u8]) -> Self {
        let report = RowReport {
            warm_error: state.error(),
            final_error: state.error(),
            energy: state.energy(),
            swaps: 0,
            steps: 0,
            pairs: 0,
            stop: StopReason::Optimal,
        };
        RowJob {
            state,
            mask,
            report,
            since_recompute: 0,
            done: false,
            moves: 0,
            exact_stop: true,
            tally: SearchTally::default(),
        }
    }

    /// Swaps and cross-row moves so far, against `max_swaps`.
    pub(crate) fn changes(&self) -> u32 {
        self.report.swaps + self.moves
    }

    fn tol(&self, opts: &RefineOptions) -> f64 {
        opts.rel_tol * self.state.error().max(0.0)
    }

    /// Accepts or rejects the best candidate `(u, q)`; marks the row done when it stops.
    pub(crate) fn decide(
        &mut self,
        best: Option<(usize, usize)>,
        pairs: u64,
        opts: &RefineOptions,
    ) {
        self.report.steps += 1;
        self.report.pairs += pairs;
        let Some((u, q)) = best else {
            self.finish(StopReason::NothingToSwap);
            return;
        };
        let delta = self.state.delta(u, q);
        if delta >= -self.tol(opts) {
            self.finish(StopReason::Optimal);
            return;
        }
        self.state.apply(self.mask, u, q);
        self.report.swaps += 1;
        self.since_recompute += 1;
        if opts.recompute_every > 0 && self.since_recompute >= opts.recompute_every {
            self.state.recompute(self.mask);
            self.since_recompute = 0;
        }
        if opts.max_swaps.is_some_and(|cap| self.changes() >= cap) {
            self.finish(StopReason::MaxSwaps);
        }
    }

    /// Checks the cap before any search (a cap of 0 means: report only).
    pub(crate) fn check_cap(&mut self, opts: &RefineOptions) {
        if opts.max_swaps.is_some_and(|cap| self.changes() >= cap) {
            self.finish(StopReason::MaxSwaps);
        }
    }

    pub(crate) fn finish(&mut self, stop: StopReason) {
        // With no swap since the last exact state, a recompute would give the same bits.
        if self.exact_stop && self.since_recompute > 0 {
            self.state.recompute(self.mask);
            self.since_recompute = 0;
        }
        self.report.final_error = self.state.error();
        self.report.stop = stop;
        self.done = true;
    }
}

/// The exact recompute of `c` and `E` that rows stopped without, in one walk of `G`, and
/// their final errors. `all == false` skips rows with no swap since their last exact
/// state (bit-identical: the recompute would give the same values).
pub(crate) fn finish_exact(jobs: &mut [RowJob<'_>], all: bool) {
    let mut pending: Vec<(&mut RowState<'_>, &[u8])> = jobs
        .iter_mut()
        .filter(|j| all || j.since_recompute > 0)
        .map(|j| (&mut j.state, &*j.mask))
        .collect();
    RowState::recompute_batch(&mut pending);
    for job in jobs {
        job.since_recompute = 0;
        job.report.final_error = job.state.error();
    }
}
