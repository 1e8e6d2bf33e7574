//! What a pruned layer becomes once its mask is final: the weights the next block's
//! forward sees and the writer stores (masked, or re-fitted with `refine.reconstruct`),
//! and the budget and reconstruction figures of its report.

use crate::error::{PipelineError, Result};
use serde::{Deserialize, Serialize};
use sparseswaps_core::{Budget, KeptStats, LayerProblem, Mask, RefineReport};
use sparseswaps_reconstruct::{reconstruct, ReconstructOptions, Reconstruction};

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
    let mut fig = BudgetFigures {
        budget: rep.budget,
        cross_moves: rep.cross_moves,
        row_budget_error: rep.row_phase_error,
        kept: rep.kept.clone(),
        reconstructed_error: None,
        reconstructed_relative: None,
        rows_refit: None,
        reconstruct_seconds: None,
    };
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
