//! The running state of one row (`c = G p` and `E` in f64, with the exact update
//! formulas of a swap and of each half of a cross-row move) and the per-row bookkeeping
//! shared by every search: acceptance at the tolerance, the cap, the exact stop.
//!
//! Below the searches, the driver and the budget engine; it reads only the options,
//! the report types and the SIMD kernels.

use crate::options::RefineOptions;
use crate::report::{RefineReport, RowReport, StopReason};
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
        let mut s = RowState {
            w,
            gram,
            c: vec![0.0; w.len()],
            error: 0.0,
            energy: 0.0,
            avx2: simd::has_avx2(),
        };
        s.recompute_with_energy(mask_row, true);
        s
    }

    fn recompute_with_energy(&mut self, mask_row: &[u8], energy: bool) {
        let d = self.w.len();
        self.c.iter_mut().for_each(|v| *v = 0.0);
        let mut y = if energy { vec![0.0f64; d] } else { Vec::new() };
        for (j, &m) in mask_row.iter().enumerate() {
            let wj = self.w[j] as f64;
            if wj == 0.0 {
                continue;
            }
            let gj = &self.gram[j * d..(j + 1) * d];
            if m == 0 {
                simd::axpy(self.avx2, &mut self.c, wj, gj);
            } else if energy {
                simd::axpy(self.avx2, &mut y, wj, gj);
            }
        }
        self.error = (0..d)
            .filter(|&j| mask_row[j] == 0)
            .map(|j| self.w[j] as f64 * self.c[j])
            .sum();
        if energy {
            self.energy = (0..d).map(|j| self.w[j] as f64 * (y[j] + self.c[j])).sum();
        }
    }

    /// Recomputes `c` and `E` exactly from the mask row (drift removal).
    pub fn recompute(&mut self, mask_row: &[u8]) {
        self.recompute_with_energy(mask_row, false);
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
        if self.exact_stop {
            self.state.recompute(self.mask);
            self.since_recompute = 0;
        }
        self.report.final_error = self.state.error();
        self.report.stop = stop;
        self.done = true;
    }
}
