//! `sparseswaps refine-layer` as one call: one layer's mask (and new weights) from its
//! weights and Gram matrix (or raw input activations), through the same layer path,
//! warm-start resolver and backend selection as `run`.
//!
//! Messages name the command's flags (`--budget`, `--max-row-imbalance`...), since the
//! job is that command's arguments.

use crate::compute::{Compute, GramFault};
use crate::config::Objective;
use crate::error::{PipelineError, Result};
use crate::events::{Event, Events};
use crate::layer::{prune_layer, LayerJob, LayerOutcome};
use crate::warm::{resolve_spec, PluginInfo};
use sparseswaps_core::{Budget, Pattern, RefineOptions, RefineReport};
use sparseswaps_gram::GramError;
use sparseswaps_reconstruct::{
    ReconstructOptions, Reconstruction, RefitSwapOptions, RefitSwapReport,
};
use sparseswaps_tensor_io::{
    check_output_dir, read_tensor_f32, write_atomic, write_safetensors_atomic, OwnedTensor,
    TensorSpec,
};
use std::collections::HashMap;
use std::path::PathBuf;

/// Where the layer's Gram matrix comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecondMoment {
    /// A Gram matrix `X Xᵀ` `[d_in, d_in]` (f32 or f64): `FILE[:TENSOR]`.
    Gram(String),
    /// The layer's input activations `[tokens, d_in]` (f32, f16 or bf16), accumulated
    /// here on the backend's device: `FILE[:TENSOR]`.
    Activations(String),
}

/// The arguments of `refine-layer`.
#[derive(Debug, Clone, PartialEq)]
pub struct RefineLayerJob {
    /// Weights `[d_out, d_in]` (f32, f16 or bf16): `FILE[:TENSOR]`.
    pub weight: String,
    /// The Gram matrix, or the activations it is accumulated from.
    pub second_moment: SecondMoment,
    /// Unstructured per-row sparsity (exactly one of this and `pattern`).
    pub sparsity: Option<f64>,
    /// `N:M` pattern, N kept of every M.
    pub pattern: Option<String>,
    /// Warm start: a plugin name, a plugin library path, or `mask:FILE[:TENSOR]`.
    pub warm_start: String,
    /// Extra directories searched for warm-start plugins.
    pub plugin_dirs: Vec<PathBuf>,
    /// Options handed to the warm-start plugin.
    pub plugin_options: Option<String>,
    /// Most swaps per row (`None`: no cap).
    pub max_swaps: Option<u32>,
    /// `bounded` or `exhaustive`; `None`: the backend's default.
    pub search: Option<String>,
    /// `row`, `band` or `layer`.
    pub budget: String,
    /// δ of the `band` budget.
    pub max_row_imbalance: Option<f64>,
    /// `cpu`, `cuda` or `auto`.
    pub backend: String,
    /// Re-fit the kept weights once the mask is final.
    pub reconstruct: bool,
    /// `mask` or `refit` (`--objective`): with `refit`, exact swaps of the re-fitted
    /// objective after the ordinary ones, and the re-fitted weights (it implies
    /// `reconstruct`).
    pub objective: String,
    /// ε of the reconstruction's damping (of the refit swaps' too).
    pub damping: f64,
    /// Where to write the new weights (tensor `weight`), if anywhere.
    pub weights_out: Option<PathBuf>,
    /// Where to write the mask (tensor `mask`, u8, 1 = kept).
    pub out: PathBuf,
    /// Where to write the full report as JSON, if anywhere.
    pub report: Option<PathBuf>,
}

/// What `refine-layer` did.
#[derive(Debug, Clone)]
pub struct RefineLayerOutput {
    /// The warm start as given (`--warm-start`).
    pub warm_start: String,
    /// The plugin library it resolved to, if a plugin.
    pub plugin: Option<PluginInfo>,
    /// Whether the linked-in code was used because no plugin library was found.
    pub built_in: bool,
    /// The refinement's report (`summary()` gives the terminal summary).
    pub report: RefineReport,
    /// The reconstruction's figures, when re-fitted (its weights are in the weights
    /// file).
    pub reconstruction: Option<Reconstruction>,
    /// The swaps of the re-fitted objective, with `--objective refit` (their weights
    /// are in the weights file).
    pub refit: Option<RefitSwapReport>,
    /// Why `--backend auto` chose the CPU, when it did.
    pub backend_note: Option<String>,
}

/// Tokens per batch when a Gram matrix is accumulated from an activations file.
const ACTIVATION_BATCH: usize = 4096;

/// Runs `refine-layer`: checks the arguments and outputs, reads the tensors, prunes the
/// layer through [`crate::layer`] and writes the mask, the weights and the report.
pub fn run(job: &RefineLayerJob, events: Events<'_>) -> Result<RefineLayerOutput> {
    // Fail on unusable outputs and arguments before any work.
    check_output_dir(&job.out)?;
    if let Some(r) = &job.report {
        check_output_dir(r)?;
    }
    let (pattern, budget) = pattern_and_budget(job)?;
    let objective: Objective = job
        .objective
        .parse()
        .map_err(|e| PipelineError::Input(format!("--{e}")))?;
    if let Some(p) = &job.weights_out {
        check_output_dir(p)?;
    }
    let kind = job
        .backend
        .parse()
        .map_err(|e| PipelineError::Input(format!("--backend: {e}")))?;
    let compute = Compute::select(kind)?;

    let wspec = TensorSpec::parse(&job.weight);
    let w = read_tensor_f32(&wspec, 2)?;
    let (d_out, d_in) = (w.shape[0], w.shape[1]);
    let (gspec, gram) = match &job.second_moment {
        SecondMoment::Gram(spec) => read_gram(spec, d_in, &w.name)?,
        SecondMoment::Activations(spec) => {
            let aspec = TensorSpec::parse(spec);
            let g = gram_from_activations(&compute, &aspec, d_in, &w.name)?;
            (aspec, g)
        }
    };
    pattern
        .check_width(d_in)
        .map_err(|e| PipelineError::Input(format!("weights {wspec}: {e}")))?;
    let search = match &job.search {
        Some(s) => s
            .parse()
            .map_err(|e| PipelineError::Input(format!("--{e}")))?,
        None => compute.default_search(),
    };
    let opts = RefineOptions {
        max_swaps: job.max_swaps,
        search,
        budget,
        ..RefineOptions::default()
    };
    let options = job.plugin_options.as_deref().unwrap_or("");
    let warm = resolve_spec(
        &job.warm_start,
        options,
        &job.plugin_dirs,
        [d_out, d_in],
        &pattern,
    )?;
    if let Some(n) = &warm.fallback {
        events(Event::Note(n.clone()));
    }
    let rec_opts = ReconstructOptions {
        damping: job.damping,
        ..ReconstructOptions::default()
    };
    let label = format!("weights {wspec}, Gram {gspec}");
    let outcome = prune_layer(
        &LayerJob {
            label: &label,
            weights: &w.data,
            d_out,
            d_in,
            gram: &gram,
            pattern: &pattern,
            warm: warm.warm.as_ref(),
            backend: compute.backend(),
            refine: &opts,
            reconstruct: job.reconstruct.then_some(rec_opts),
            refit: (objective == Objective::Refit).then_some(RefitSwapOptions {
                reconstruct: rec_opts,
                ..RefitSwapOptions::default()
            }),
        },
        events,
    )?;
    write_outputs(
        job,
        &wspec,
        &gspec,
        &pattern,
        &opts,
        &rec_opts,
        &outcome,
        warm.warm.plugin(),
    )?;
    Ok(RefineLayerOutput {
        warm_start: job.warm_start.clone(),
        plugin: warm.warm.plugin(),
        built_in: warm.fallback.is_some(),
        report: outcome.refine,
        reconstruction: outcome.reconstruction,
        refit: outcome.refit,
        backend_note: compute.note().map(str::to_string),
    })
}

/// The pattern (`--sparsity` or `--pattern`) and the budget (`--budget`,
/// `--max-row-imbalance`), checked together.
fn pattern_and_budget(job: &RefineLayerJob) -> Result<(Pattern, Budget)> {
    let input = |e: &dyn std::fmt::Display| PipelineError::Input(e.to_string());
    let pattern: Pattern = match (&job.sparsity, &job.pattern) {
        (Some(s), None) => Pattern::unstructured(*s).map_err(|e| input(&e))?,
        (None, Some(p)) => p.parse().map_err(|e| input(&e))?,
        _ => return Err(input(&"give exactly one of --sparsity and --pattern")),
    };
    if job.max_row_imbalance.is_some() && job.budget != "band" {
        return Err(PipelineError::Input(format!(
            "--max-row-imbalance applies to --budget band only (budget is '{}')",
            job.budget
        )));
    }
    let budget = Budget::parse(&job.budget, job.max_row_imbalance.unwrap_or(0.25))
        .map_err(|e| PipelineError::Input(format!("--budget: {e}")))?;
    if budget != Budget::Row && pattern.group().is_some() {
        return Err(PipelineError::Input(format!(
            "--budget {} needs --sparsity: N:M patterns ({pattern}) keep N in every group of M",
            budget.name()
        )));
    }
    Ok((pattern, budget))
}

/// Reads a Gram matrix `[d_in, d_in]` for weights (named `weight_name`) of width `d_in`.
fn read_gram(spec: &str, d_in: usize, weight_name: &str) -> Result<(TensorSpec, Vec<f32>)> {
    let gspec = TensorSpec::parse(spec);
    let g = read_tensor_f32(&gspec, 2)?;
    if g.shape[0] != g.shape[1] {
        return Err(PipelineError::Input(format!(
            "{gspec}: Gram matrix '{}' is not square: shape {:?}",
            g.name, g.shape
        )));
    }
    if g.shape[0] != d_in {
        return Err(PipelineError::Input(format!(
            "{gspec}: Gram matrix '{}' is [{}, {}] but weights '{weight_name}' have d_in = {d_in}",
            g.name, g.shape[0], g.shape[1]
        )));
    }
    Ok((gspec, g.data))
}

/// Reads activations `[tokens, d_in]` and accumulates their Gram matrix batch by batch,
/// on the device of `compute`.
fn gram_from_activations(
    compute: &Compute,
    spec: &TensorSpec,
    d_in: usize,
    weight_name: &str,
) -> Result<Vec<f32>> {
    let a = read_tensor_f32(spec, 2)?;
    let bad =
        |reason: String| PipelineError::Input(format!("{spec}: activations '{}' {reason}", a.name));
    if a.shape[1] != d_in {
        return Err(bad(format!(
            "are {:?} ([tokens, d_in]) but weights '{weight_name}' have d_in = {d_in}",
            a.shape
        )));
    }
    let mut acc = compute
        .gram(d_in)
        .map_err(|f| f.at(format!("{spec}: activations '{}'", a.name)))?;
    for (b, batch) in a.data.chunks(ACTIVATION_BATCH * d_in).enumerate() {
        match acc.add(batch, batch.len() / d_in) {
            Ok(()) => {}
            // Name the row of the file, not of the batch.
            Err(GramFault::Data(GramError::NonFinite {
                row, col, value, ..
            })) => {
                return Err(bad(format!(
                    "have a non-finite value {value} at row {} (token), column {col} (channel)",
                    b * ACTIVATION_BATCH + row
                )))
            }
            Err(f) => return Err(f.at(format!("{spec}: activations '{}'", a.name))),
        }
    }
    if acc.tokens() == 0 {
        return Err(bad("hold no tokens".into()));
    }
    acc.finish()
        .map_err(|f| f.at(format!("{spec}: activations '{}'", a.name)))
}

/// Writes the weights file (when asked), the mask file and the JSON report (when
/// asked).
#[allow(clippy::too_many_arguments)]
fn write_outputs(
    job: &RefineLayerJob,
    wspec: &TensorSpec,
    gspec: &TensorSpec,
    pattern: &Pattern,
    opts: &RefineOptions,
    rec_opts: &ReconstructOptions,
    outcome: &LayerOutcome,
    plugin: Option<PluginInfo>,
) -> Result<()> {
    let shape = vec![outcome.refine.d_out, outcome.refine.d_in];
    if let Some(path) = &job.weights_out {
        let meta = HashMap::from([
            ("weights".to_string(), wspec.to_string()),
            (
                "reconstructed".to_string(),
                (job.reconstruct || outcome.refit.is_some()).to_string(),
            ),
        ]);
        write_safetensors_atomic(
            path,
            &[(
                "weight".to_string(),
                OwnedTensor::f32(shape.clone(), &outcome.weights),
            )],
            Some(meta),
        )?;
    }
    let meta = HashMap::from([
        ("pattern".to_string(), pattern.to_string()),
        ("warm_start".to_string(), job.warm_start.clone()),
        ("weights".to_string(), wspec.to_string()),
        (
            "convention".to_string(),
            "1 = kept, N:M = N kept of M".to_string(),
        ),
    ]);
    write_safetensors_atomic(
        &job.out,
        &[(
            "mask".to_string(),
            OwnedTensor::u8(shape, outcome.mask.as_slice().to_vec()),
        )],
        Some(meta),
    )?;
    let Some(path) = &job.report else {
        return Ok(());
    };
    let source = match job.second_moment {
        SecondMoment::Gram(_) => "gram",
        SecondMoment::Activations(_) => "activations",
    };
    let mut json = serde_json::json!({
        "weights": wspec.to_string(),
        (source): gspec.to_string(),
        "warm_start": job.warm_start,
        "warm_start_plugin": plugin.map(|p| serde_json::json!({
            "name": p.name,
            "version": p.version,
            "library": p.library.display().to_string(),
            "options": job.plugin_options,
        })),
        "options": opts,
        "report": outcome.refine,
        "reconstruction": outcome.reconstruction.as_ref().map(|r| serde_json::json!({
            "damping": rec_opts.damping,
            "mask_error": r.mask_error,
            "reconstructed_error": r.reconstructed_error,
            "mask_relative": r.mask_relative(),
            "reconstructed_relative": r.reconstructed_relative(),
            "rows_refit": r.rows_refit,
            "rows_unchanged": r.rows_unchanged,
            "rows_redamped": r.rows_redamped,
            "seconds": r.seconds,
        })),
    });
    // Only with `--objective refit`: the report of a default run keeps its keys.
    if let Some(r) = &outcome.refit {
        json["objective"] = "refit".into();
        json["refit"] = refit_json(r, rec_opts);
    }
    let text =
        serde_json::to_string_pretty(&json).map_err(|e| PipelineError::Input(e.to_string()))?;
    write_atomic(path, text.as_bytes())?;
    Ok(())
}

/// The refit swaps' figures in the JSON report (their per-row entries included; the
/// weights are in the weights file).
fn refit_json(r: &RefitSwapReport, rec_opts: &ReconstructOptions) -> serde_json::Value {
    serde_json::json!({
        "damping": rec_opts.damping,
        "refit_error_before": r.refit_before,
        "refit_error_after": r.refit_after,
        "refit_relative_before": r.before_relative(),
        "refit_relative_after": r.after_relative(),
        "refit_reduction": r.reduction(),
        "mask_error_before": r.mask_error_before,
        "mask_error_after": r.mask_error_after,
        "swaps": r.swaps,
        "rows_optimal": r.rows_optimal,
        "rows_capped": r.rows_capped,
        "rows_reverted": r.rows_reverted,
        "pairs_evaluated": r.pairs_evaluated,
        "peak_row_bytes": r.peak_row_bytes,
        "rows_in_flight": r.rows_in_flight,
        "seconds": r.seconds,
        "rows": r.rows,
    })
}
