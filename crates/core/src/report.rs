//! What a refinement run reports: per row and per layer.
//!
//! A leaf of the engine: the searches, the driver and the budget engine fill these
//! types; this module reads only the options.

use crate::options::Budget;
use crate::pattern::Pattern;
use serde::{Deserialize, Serialize};

/// Why a row stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// No admissible swap lowers the error beyond the tolerance: 1-swap optimal.
    Optimal,
    /// The row took `max_swaps` swaps.
    MaxSwaps,
    /// The row has no admissible pair (nothing kept, or nothing pruned).
    NothingToSwap,
}

/// One row's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RowReport {
    /// Error of the warm-start mask (exact).
    pub warm_error: f64,
    /// Error of the refined mask (exact recompute).
    pub final_error: f64,
    /// Dense energy `wᵀ G w` of the row.
    pub energy: f64,
    /// Swaps taken.
    pub swaps: u32,
    /// Searches run (swaps plus the final one that found nothing better).
    pub steps: u32,
    /// Pairs whose `Δ` was evaluated over all steps.
    pub pairs: u64,
    /// Why the row stopped.
    pub stop: StopReason,
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

/// A whole layer's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefineReport {
    /// Backend that ran ("cpu", "cuda").
    pub backend: String,
    /// Rows (`d_out`).
    pub d_out: usize,
    /// Columns (`d_in`).
    pub d_in: usize,
    /// The pattern the mask follows.
    pub pattern: Pattern,
    /// Weights kept per row.
    pub kept_per_row: usize,
    /// Cap on swaps per row (`None`: no cap).
    pub max_swaps: Option<u32>,
    /// Layer error of the warm start.
    pub warm_error: f64,
    /// Layer error after refinement.
    pub final_error: f64,
    /// `||W X||²`.
    pub energy: f64,
    /// `warm_error / energy`.
    pub warm_relative: f64,
    /// `final_error / energy`.
    pub final_relative: f64,
    /// `1 - final_error / warm_error` (0 when the warm error is 0).
    pub reduction: f64,
    /// Swaps taken over all rows.
    pub swaps: u64,
    /// Rows that stopped 1-swap optimal (or had nothing to swap).
    pub rows_optimal: usize,
    /// Rows stopped by the swap cap.
    pub rows_capped: usize,
    /// Admissible pairs whose `Δ` was evaluated, over all rows and steps.
    pub pairs_evaluated: u64,
    /// Wall-clock seconds of the refinement.
    pub seconds: f64,
    /// Per-row outcomes, in row order.
    pub rows: Vec<RowReport>,
    /// The budget the mask follows (`row` unless a wider budget was asked for).
    #[serde(default)]
    pub budget: Budget,
    /// Cross-row moves applied (0 under the row budget).
    #[serde(default)]
    pub cross_moves: u64,
    /// Rounds of cross-row moves that applied at least one move.
    #[serde(default)]
    pub cross_rounds: u32,
    /// Layer error after the per-row phase, before any cross-row move (what the row
    /// budget reaches from the same warm start); `None` under the row budget.
    #[serde(default)]
    pub row_phase_error: Option<f64>,
    /// Distribution of the kept counts over the rows.
    #[serde(default)]
    pub kept: KeptStats,
    /// Layer error after the kept weights were re-fitted (reconstruction), when they
    /// were; `final_error` stays the error of the mask with the original weights.
    #[serde(default)]
    pub reconstructed_error: Option<f64>,
    /// `reconstructed_error / energy`.
    #[serde(default)]
    pub reconstructed_relative: Option<f64>,
    /// Search steps of unstructured rows decided by the bounded search's ordered walk
    /// (`search = bounded`; 0 on other backends).
    #[serde(default)]
    pub bounded_steps: u64,
    /// Search steps where the bounded search ruled out too few pairs and one exhaustive
    /// pass decided instead (it finds the same pair).
    #[serde(default)]
    pub bounded_fallback_steps: u64,
}

impl RefineReport {
    /// Builds layer totals from per-row reports (summed in row order: deterministic).
    #[allow(clippy::too_many_arguments)]
    pub fn from_rows(
        rows: Vec<RowReport>,
        d_out: usize,
        d_in: usize,
        pattern: Pattern,
        kept_per_row: usize,
        max_swaps: Option<u32>,
        seconds: f64,
        backend: &str,
    ) -> Self {
        let warm_error: f64 = rows.iter().map(|r| r.warm_error).sum();
        let final_error: f64 = rows.iter().map(|r| r.final_error).sum();
        let energy: f64 = rows.iter().map(|r| r.energy).sum();
        let ratio = |e: f64| if energy > 0.0 { e / energy } else { 0.0 };
        RefineReport {
            backend: backend.to_string(),
            d_out,
            d_in,
            pattern,
            kept_per_row,
            max_swaps,
            warm_error,
            final_error,
            energy,
            warm_relative: ratio(warm_error),
            final_relative: ratio(final_error),
            reduction: if warm_error > 0.0 {
                1.0 - final_error / warm_error
            } else {
                0.0
            },
            swaps: rows.iter().map(|r| r.swaps as u64).sum(),
            rows_optimal: rows
                .iter()
                .filter(|r| r.stop != StopReason::MaxSwaps)
                .count(),
            rows_capped: rows
                .iter()
                .filter(|r| r.stop == StopReason::MaxSwaps)
                .count(),
            pairs_evaluated: rows.iter().map(|r| r.pairs).sum(),
            seconds,
            rows,
            budget: Budget::Row,
            cross_moves: 0,
            cross_rounds: 0,
            row_phase_error: None,
            kept: KeptStats::uniform(d_out, kept_per_row),
            reconstructed_error: None,
            reconstructed_relative: None,
            bounded_steps: 0,
            bounded_fallback_steps: 0,
        }
    }

    /// Records the layer error after reconstruction of the kept weights.
    pub fn set_reconstructed(&mut self, error: f64) {
        self.reconstructed_error = Some(error);
        self.reconstructed_relative = Some(if self.energy > 0.0 {
            error / self.energy
        } else {
            0.0
        });
    }

    /// A one-screen summary for terminals.
    pub fn summary(&self) -> String {
        let cap = self
            .max_swaps
            .map_or_else(|| "none".to_string(), |c| c.to_string());
        let mut extra = String::new();
        let rel = |e: f64| {
            if self.energy > 0.0 {
                e / self.energy
            } else {
                0.0
            }
        };
        if let Some(e) = self.row_phase_error {
            extra.push_str(&format!(
                "\nbudget             {} ({} cross-row moves in {} rounds)\n\
                 row-budget error   {e:.6e}  (relative {:.6}; before cross-row moves)",
                self.budget,
                self.cross_moves,
                self.cross_rounds,
                rel(e)
            ));
        }
        extra.push_str(&format!("\nkept per row       {}", self.kept.summary()));
        if let (Some(e), Some(r)) = (self.reconstructed_error, self.reconstructed_relative) {
            extra.push_str(&format!(
                "\nreconstructed error {e:.6e}  (relative {r:.6}; kept weights re-fitted)"
            ));
        }
        let base = format!(
            "layer [{d_out} x {d_in}], pattern {pat} ({k} kept per row), backend {be}\n\
             warm-start error   {we:.6e}  (relative {wr:.6})\n\
             refined error      {fe:.6e}  (relative {fr:.6})\n\
             reduction          {red:.2}%\n\
             swaps              {sw} (max {cap} per row)\n\
             rows 1-swap optimal {opt} / {d_out} ({capped} stopped at the cap)\n\
             pairs evaluated    {pairs}\n\
             seconds            {secs:.3}",
            d_out = self.d_out,
            d_in = self.d_in,
            pat = self.pattern,
            k = self.kept_per_row,
            be = self.backend,
            we = self.warm_error,
            wr = self.warm_relative,
            fe = self.final_error,
            fr = self.final_relative,
            red = 100.0 * self.reduction,
            sw = self.swaps,
            opt = self.rows_optimal,
            capped = self.rows_capped,
            pairs = self.pairs_evaluated,
            secs = self.seconds,
        );
        base + &extra
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
