//! What a pruned layer becomes once its mask is final: the weights the next block's
//! forward sees and the writer stores (masked, or re-fitted with `refine.reconstruct`),
//! and the budget and reconstruction figures of its report; and, under
//! `refine.objective = "refit"`, the exact swaps of the re-fitted objective that make the
//! mask final ([`refit_layer`]).

use crate::error::{PipelineError, Result};
use serde::{Deserialize, Serialize};
use sparseswaps_core::{Budget, KeptStats, LayerProblem, Mask, Pattern, RefineReport};
use sparseswaps_reconstruct::{
    reconstruct, refit_swaps, ReconstructOptions, Reconstruction, RefitSwapOptions, RefitSwapReport,
};

/// Per-layer figures of the budget modes and of reconstruction (flattened into the
/// layer's entry of `report.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetFigures {
    /// The budget (`row`, `band` with its δ, `layer`).
    pub budget: Budget,
    /// Cross-row moves applied (0 under the row budget).
    pub cross_moves: u64,
    /// Layer error after the per-row phase, before cross-row moves (band and layer
    /// budgets only): the row budget's result from the same warm start.
    pub row_budget_error: Option<f64>,
    /// Distribution of kept counts over the rows.
    pub kept: KeptStats,
    /// Layer error with the re-fitted kept weights (`refine.reconstruct`); the
    /// `refined_error` stays the error of the mask with the original weights.
    pub reconstructed_error: Option<f64>,
    /// `reconstructed_error / energy`.
    pub reconstructed_relative: Option<f64>,
    /// Rows whose re-fitted weights were kept (the others did not improve).
    pub rows_refit: Option<usize>,
    /// Seconds of the reconstruction.
    pub reconstruct_seconds: Option<f64>,
    /// The swaps of the re-fitted objective (`refine.objective = "refit"` only; absent
    /// from the report otherwise).
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub refit: Option<RefitFigures>,
}

/// Figures of the swaps of the re-fitted objective (`refine.objective = "refit"`),
/// flattened into the layer's entry of `report.json` with the `refit_` prefix.
///
/// The layer's `refined_error` is then the error of the *final* mask with the original
/// weights (usually above the ordinary swaps' one, kept here as `refit_mask_error_before`:
/// the refit swaps trade it for a lower re-fitted error), and `reconstructed_error` is
/// `refit_error_after`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefitFigures {
    /// Re-fitted layer error of the ordinary swaps' mask (swaps + re-fit).
    pub refit_error_before: f64,
    /// Re-fitted layer error of the final mask (never above `refit_error_before`).
    pub refit_error_after: f64,
    /// `refit_error_before / energy`.
    pub refit_relative_before: f64,
    /// `refit_error_after / energy`.
    pub refit_relative_after: f64,
    /// `1 − refit_error_after / refit_error_before`.
    pub refit_reduction: f64,
    /// Error of the ordinary swaps' mask with the original weights.
    pub refit_mask_error_before: f64,
    /// Swaps of the re-fitted objective, over all rows (reverted rows included).
    pub refit_swaps: u64,
    /// Rows that stopped with the certificate (no improving re-fitted pair).
    pub refit_rows_optimal: usize,
    /// Rows stopped by the swap cap.
    pub refit_rows_capped: usize,
    /// Rows put back to the ordinary swaps' mask (the re-fit measured no gain).
    pub refit_rows_reverted: usize,
    /// Pairs evaluated.
    pub refit_pairs_evaluated: u64,
    /// Largest state of one row, in bytes.
    pub refit_peak_row_bytes: usize,
    /// Rows whose state could be alive at once.
    pub refit_rows_in_flight: usize,
    /// Seconds of the refit swaps (their two re-fits included).
    pub refit_seconds: f64,
    /// Cross-row moves of the re-fitted objective kept (budget modes only).
    #[serde(default)]
    pub refit_cross_moves: u64,
}

impl BudgetFigures {
    /// The budget figures of the refinement `rep`, with no reconstruction yet.
    fn of(rep: &RefineReport) -> Self {
        BudgetFigures {
            budget: rep.budget,
            cross_moves: rep.cross_moves,
            row_budget_error: rep.row_phase_error,
            kept: rep.kept.clone(),
            reconstructed_error: None,
            reconstructed_relative: None,
            rows_refit: None,
            reconstruct_seconds: None,
            refit: None,
        }
    }
}

impl RefitFigures {
    /// The figures of `rep`, whose starting mask had error `mask_error_before` with the
    /// original weights (as the ordinary swaps reported it).
    pub fn new(rep: &RefitSwapReport, mask_error_before: f64) -> Self {
        RefitFigures {
            refit_error_before: rep.refit_before,
            refit_error_after: rep.refit_after,
            refit_relative_before: rep.before_relative(),
            refit_relative_after: rep.after_relative(),
            refit_reduction: rep.reduction(),
            refit_mask_error_before: mask_error_before,
            refit_swaps: rep.swaps,
            refit_rows_optimal: rep.rows_optimal,
            refit_rows_capped: rep.rows_capped,
            refit_rows_reverted: rep.rows_reverted,
            refit_pairs_evaluated: rep.pairs_evaluated,
            refit_peak_row_bytes: rep.peak_row_bytes,
            refit_rows_in_flight: rep.rows_in_flight,
            refit_seconds: rep.seconds,
            refit_cross_moves: rep.cross_moves,
        }
    }
}

/// The layer's final weights (row-major f32: masked, and re-fitted when `refit` gives
/// the reconstruction's options), its budget and reconstruction figures, and the
/// reconstruction (its weights moved into the first).
pub fn finish_layer(
    label: &str,
    problem: &LayerProblem<'_>,
    mask: &Mask,
    rep: &RefineReport,
    refit: Option<ReconstructOptions>,
) -> Result<(Vec<f32>, BudgetFigures, Option<Reconstruction>)> {
    let mut fig = BudgetFigures::of(rep);
    let Some(opts) = refit else {
        return Ok((mask.apply(problem.weights()), fig, None));
    };
    let mut r = reconstruct(problem, mask, &opts)
        .map_err(|e| PipelineError::Input(format!("{label}: {e}")))?;
    fig.reconstructed_error = Some(r.reconstructed_error);
    fig.reconstructed_relative = Some(if rep.energy > 0.0 {
        r.reconstructed_error / rep.energy
    } else {
        0.0
    });
    fig.rows_refit = Some(r.rows_refit);
    fig.reconstruct_seconds = Some(r.seconds);
    let weights = std::mem::take(&mut r.weights);
    Ok((weights, fig, Some(r)))
}

/// Exact 1-swaps of the re-fitted objective from `mask` (the ordinary swaps' result,
/// updated in place to the final mask). Returns the final re-fitted weights, the layer's
/// figures and the refit report (its weights moved into the first).
///
/// `rep`, the ordinary swaps' report, is brought up to date: its `final_error`,
/// `final_relative` and `reduction` become those of the final mask with the original
/// weights (so that the layer's `refined_error` is the error of the mask written), and
/// its reconstructed error the final re-fitted one. Its per-row entries, swaps and
/// pairs stay the ordinary phase's.
pub fn refit_layer(
    label: &str,
    problem: &LayerProblem<'_>,
    pattern: &Pattern,
    mask: &mut Mask,
    rep: &mut RefineReport,
    opts: &RefitSwapOptions,
) -> Result<(Vec<f32>, BudgetFigures, RefitSwapReport)> {
    let mut r = refit_swaps(problem, pattern, mask, opts)
        .map_err(|e| PipelineError::Input(format!("{label}: refit swaps: {e}")))?;
    let figures = RefitFigures::new(&r, rep.final_error);
    let ratio = |e: f64| {
        if rep.energy > 0.0 {
            e / rep.energy
        } else {
            0.0
        }
    };
    rep.final_error = r.mask_error_after;
    rep.final_relative = ratio(rep.final_error);
    rep.reduction = if rep.warm_error > 0.0 {
        1.0 - rep.final_error / rep.warm_error
    } else {
        0.0
    };
    rep.set_reconstructed(r.refit_after);
    if r.cross_moves > 0 {
        // The moves changed the rows' kept counts: the layer's statistics follow.
        let counts: Vec<usize> = (0..mask.rows())
            .map(|i| mask.row(i).iter().filter(|&&m| m == 1).count())
            .collect();
        let bounds = opts
            .row_bounds
            .unwrap_or((rep.kept.lower_bound, rep.kept.upper_bound));
        rep.kept = KeptStats::from_counts(&counts, rep.kept_per_row, bounds);
    }
    let mut fig = BudgetFigures::of(rep);
    fig.reconstructed_error = rep.reconstructed_error;
    fig.reconstructed_relative = rep.reconstructed_relative;
    fig.refit = Some(figures);
    let weights = std::mem::take(&mut r.weights);
    Ok((weights, fig, r))
}
