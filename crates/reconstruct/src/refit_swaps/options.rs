//! Options and reports of the swaps of the re-fitted objective.

use crate::ReconstructOptions;
use serde::{Deserialize, Serialize};
use sparseswaps_core::StopReason;

/// Options of [`super::refit_swaps`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RefitSwapOptions {
    /// Most swaps per row (`None`: stop only at the certificate).
    pub max_swaps: Option<u32>,
    /// Recompute the row's state exactly after this many accepted swaps (0: only
    /// before a stop certificate, a marginal swap, and at the end of the row).
    pub recompute_every: u32,
    /// A swap is accepted only when `Δ* < −(rel_tol · E* + 64 ε_f64 · wᵀGw)`.
    pub rel_tol: f64,
    /// A candidate with `Δ* > −recheck_rel · E*` found on a state that has taken swaps
    /// since its last recomputation is re-judged on a fresh state before it is taken.
    pub recheck_rel: f64,
    /// Most rows whose state is alive at once (0: one per thread of the current rayon
    /// pool). Fewer than the pool's threads runs the rows on a pool of that size.
    pub max_rows_in_flight: usize,
    /// Damping and retries: the same as the re-fit's (they define `λ` of each row).
    pub reconstruct: ReconstructOptions,
    /// The kept counts a row may reach by cross-row moves, `(lo, hi)` inclusive
    /// (`sparseswaps_core::Budget::row_bounds`); `None` (the row budget), or `lo == hi`,
    /// makes no move. Unstructured patterns only.
    #[serde(default)]
    pub row_bounds: Option<(usize, usize)>,
}

impl Default for RefitSwapOptions {
    fn default() -> Self {
        RefitSwapOptions {
            max_swaps: Some(300),
            recompute_every: 100,
            rel_tol: 1e-9,
            recheck_rel: 1e-6,
            max_rows_in_flight: 0,
            reconstruct: ReconstructOptions::default(),
            row_bounds: None,
        }
    }
}

/// One row's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RefitRow {
    /// The engine's `E*` (damped objective) of the starting mask.
    pub start_error: f64,
    /// The engine's `E*` of the final mask (from a fresh factorisation).
    pub final_error: f64,
    /// Swaps taken.
    pub swaps: u32,
    /// Searches run.
    pub steps: u32,
    /// Pairs whose `Δ*` was evaluated.
    pub pairs: u64,
    /// Exact recomputations of the state (the initial factorisation not counted).
    pub refreshes: u32,
    /// Largest `|E*_running − E*_fresh| / E*_fresh` seen at a recomputation.
    pub max_drift: f64,
    /// The row's damping `λ` (0 when the row had nothing to swap).
    pub lambda: f64,
    /// Bytes of the row's state at its peak (state plus a recomputation's temporaries).
    pub state_bytes: usize,
    /// Why the row stopped.
    pub stop: StopReason,
    /// Re-fitted error of the starting mask, as [`crate::reconstruct`] measures it.
    pub refit_before: f64,
    /// Re-fitted error of the row as written.
    pub refit_after: f64,
    /// Whether the row went back to its starting mask because the re-fit measured no
    /// gain (rounding, or the damping of the final solve differs from the engine's).
    pub reverted: bool,
    /// Whether an exact recomputation found the error not lowered by the swaps since
    /// the previous one (a numerical failure of the incremental state; the row then
    /// stops as capped). Never seen with correct updates: a diagnostic.
    #[serde(default)]
    pub diverged: bool,
    /// Cross-row moves the row took part in (they count toward `max_swaps` with its
    /// swaps; always 0 without `row_bounds`).
    #[serde(default)]
    pub moves: u32,
}

/// A layer's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefitSwapReport {
    /// The re-fitted weights of the final mask, row-major `[d_out, d_in]` (0 where
    /// pruned): what the layer should store.
    pub weights: Vec<f32>,
    /// Re-fitted layer error of the starting mask (swaps + re-fit).
    pub refit_before: f64,
    /// Re-fitted layer error of the final mask (never above `refit_before`).
    pub refit_after: f64,
    /// Error of the starting mask with the original weights.
    pub mask_error_before: f64,
    /// Error of the final mask with the original weights.
    pub mask_error_after: f64,
    /// `||W X||²`.
    pub energy: f64,
    /// Swaps over all rows (reverted rows included).
    pub swaps: u64,
    /// Rows that stopped with the certificate (or had nothing to swap).
    pub rows_optimal: usize,
    /// Rows stopped by the swap cap.
    pub rows_capped: usize,
    /// Rows put back to their starting mask.
    pub rows_reverted: usize,
    /// Pairs evaluated over all rows.
    pub pairs_evaluated: u64,
    /// Largest per-row peak state size in bytes.
    pub peak_row_bytes: usize,
    /// Rows whose state could be alive at once.
    pub rows_in_flight: usize,
    /// Wall-clock seconds (the two re-fits included).
    pub seconds: f64,
    /// Per-row outcomes, in row order.
    pub rows: Vec<RefitRow>,
    /// Cross-row moves kept (0 without `row_bounds`, or when the layer went back to the
    /// per-row result because the moves measured no gain).
    #[serde(default)]
    pub cross_moves: u64,
    /// Rounds of moves run.
    #[serde(default)]
    pub move_rounds: u32,
}

impl RefitSwapReport {
    /// `refit_before / energy` (0 when the energy is 0).
    pub fn before_relative(&self) -> f64 {
        self.ratio(self.refit_before)
    }

    /// `refit_after / energy` (0 when the energy is 0).
    pub fn after_relative(&self) -> f64 {
        self.ratio(self.refit_after)
    }

    /// `1 − refit_after / refit_before` (0 when `refit_before` is 0).
    pub fn reduction(&self) -> f64 {
        if self.refit_before > 0.0 {
            1.0 - self.refit_after / self.refit_before
        } else {
            0.0
        }
    }

    /// Bound on the memory of the row states alive at once.
    pub fn peak_bytes_in_flight(&self) -> usize {
        self.peak_row_bytes * self.rows_in_flight
    }

    fn ratio(&self, e: f64) -> f64 {
        if self.energy > 0.0 {
            e / self.energy
        } else {
            0.0
        }
    }

    /// A one-screen summary for terminals.
    pub fn summary(&self) -> String {
        format!(
            "re-fitted error    {:.6e} -> {:.6e}  (relative {:.6} -> {:.6}, {:.2}% lower)\n\
             mask error         {:.6e} -> {:.6e}\n\
             swaps              {} ({} rows optimal, {} capped, {} reverted)\n\
             pairs evaluated    {}\n\
             state per row      {:.1} KiB peak, {} rows in flight\n\
             seconds            {:.3}",
            self.refit_before,
            self.refit_after,
            self.before_relative(),
            self.after_relative(),
            100.0 * self.reduction(),
            self.mask_error_before,
            self.mask_error_after,
            self.swaps,
            self.rows_optimal,
            self.rows_capped,
            self.rows_reverted,
            self.pairs_evaluated,
            self.peak_row_bytes as f64 / 1024.0,
            self.rows_in_flight,
            self.seconds,
        )
    }
}
