//! The one path of a layer, shared by `run`'s block loop and `refine-layer`: weights and
//! Gram matrix in; warm start, exact 1-swap refinement on the chosen backend, under
//! `refine.objective = "refit"` the exact swaps of the re-fitted objective from where
//! those ended, and the final weights (masked, or re-fitted) out, with the figures of
//! its report.

use crate::error::{PipelineError, Result};
use crate::events::{Event, Events};
use crate::refit::{finish_layer, refit_layer, BudgetFigures};
use crate::report::LayerReport;
use crate::warm::WarmStart;
use sparseswaps_core::{Backend, Budget, LayerProblem, Mask, Pattern, RefineOptions, RefineReport};
use sparseswaps_reconstruct::{
    ReconstructOptions, Reconstruction, RefitSwapOptions, RefitSwapReport,
};
use std::time::Instant;

/// One layer to prune.
pub struct LayerJob<'a> {
    /// What messages call the layer (its name, or the files it came from).
    pub label: &'a str,
    /// Dense weights, row-major `d_out x d_in`.
    pub weights: &'a [f32],
    /// Rows.
    pub d_out: usize,
    /// Columns.
    pub d_in: usize,
    /// The Gram matrix of the layer's inputs, row-major `d_in x d_in`.
    pub gram: &'a [f32],
    /// The sparsity pattern.
    pub pattern: &'a Pattern,
    /// The warm start.
    pub warm: &'a dyn WarmStart,
    /// The refinement backend.
    pub backend: &'a dyn Backend,
    /// Swap cap, search and budget of the refinement.
    pub refine: &'a RefineOptions,
    /// Re-fit the kept weights once the mask is final, with these options (ignored
    /// when `refit` is given: that re-fits with its own).
    pub reconstruct: Option<ReconstructOptions>,
    /// `refine.objective = "refit"`: after the ordinary swaps, exact swaps of the
    /// re-fitted objective with these options; the layer keeps their re-fitted weights.
    pub refit: Option<RefitSwapOptions>,
}

/// What a pruned layer became.
#[derive(Debug, Clone)]
pub struct LayerOutcome {
    /// The final mask (1 = kept).
    pub mask: Mask,
    /// The final weights, row-major: masked, or re-fitted with reconstruction.
    pub weights: Vec<f32>,
    /// The refinement's report, with the reconstructed error when re-fitted (under the
    /// refit objective its final error is the final mask's: see
    /// [`crate::refit::refit_layer`]).
    pub refine: RefineReport,
    /// The reconstruction's figures (its `weights` moved into [`Self::weights`]).
    pub reconstruction: Option<Reconstruction>,
    /// The swaps of the re-fitted objective (its `weights` moved into
    /// [`Self::weights`]), under `refine.objective = "refit"`.
    pub refit: Option<RefitSwapReport>,
    /// Budget and reconstruction figures of the layer's report row.
    pub figures: BudgetFigures,
    /// Seconds of warm start, refinement, refit swaps and reconstruction.
    pub seconds: f64,
}

/// Prunes one layer: warm start, validation of its mask, refinement (`LayerStart` and
/// `Rows` events), and the final weights.
pub fn prune_layer(job: &LayerJob<'_>, events: Events<'_>) -> Result<LayerOutcome> {
    let t = Instant::now();
    let label = job.label;
    let core = |error| PipelineError::Core {
        layer: label.to_string(),
        error,
    };
    let problem = LayerProblem::new(job.weights, job.d_out, job.d_in, job.gram).map_err(core)?;
    let warm_err = |reason: String| PipelineError::WarmStart {
        name: job.warm.name().into(),
        reason: format!("{label}: {reason}"),
    };
    let mut mask = job.warm.mask(&problem, job.pattern).map_err(warm_err)?;
    mask.validate(job.pattern)
        .map_err(|e| warm_err(format!("returned an invalid mask: {e}")))?;
    events(Event::LayerStart {
        name: label.to_string(),
        rows: job.d_out,
    });
    let mut refine = job
        .backend
        .refine(&problem, job.pattern, &mut mask, job.refine, &|n| {
            events(Event::Rows(n))
        })
        .map_err(core)?;
    if let Some(opts) = &job.refit {
        // Under a budget mode the re-fitted objective moves weights between rows too,
        // within the same bounds as the ordinary phase.
        let budget = job.refine.budget;
        let opts = RefitSwapOptions {
            row_bounds: (budget != Budget::Row)
                .then(|| budget.row_bounds(job.pattern.kept_per_row(job.d_in), job.d_in)),
            ..*opts
        };
        let (weights, figures, refit) =
            refit_layer(label, &problem, job.pattern, &mut mask, &mut refine, &opts)?;
        return Ok(LayerOutcome {
            mask,
            weights,
            refine,
            reconstruction: None,
            refit: Some(refit),
            figures,
            seconds: t.elapsed().as_secs_f64(),
        });
    }
    let (weights, figures, reconstruction) =
        finish_layer(label, &problem, &mask, &refine, job.reconstruct)?;
    if let Some(r) = &reconstruction {
        refine.set_reconstructed(r.reconstructed_error);
    }
    Ok(LayerOutcome {
        mask,
        weights,
        refine,
        reconstruction,
        refit: None,
        figures,
        seconds: t.elapsed().as_secs_f64(),
    })
}

impl LayerOutcome {
    /// The layer's row of the run report.
    pub fn report(
        &self,
        name: &str,
        block: usize,
        pattern: &Pattern,
        warm_start: &str,
    ) -> LayerReport {
        let rep = &self.refine;
        let (d_out, d_in) = (rep.d_out, rep.d_in);
        let zeros = self.mask.as_slice().iter().filter(|&&m| m == 0).count();
        LayerReport {
            name: name.to_string(),
            block,
            shape: [d_out, d_in],
            pattern: pattern.to_string(),
            warm_start: warm_start.into(),
            backend: rep.backend.clone(),
            warm_error: rep.warm_error,
            refined_error: rep.final_error,
            energy: rep.energy,
            warm_relative: rep.warm_relative,
            refined_relative: rep.final_relative,
            reduction: rep.reduction,
            swaps: rep.swaps,
            rows_optimal: rep.rows_optimal,
            rows_capped: rep.rows_capped,
            pairs_evaluated: rep.pairs_evaluated,
            sparsity: zeros as f64 / (d_out * d_in) as f64,
            seconds: self.seconds,
            budget: self.figures.clone(),
        }
    }
}
