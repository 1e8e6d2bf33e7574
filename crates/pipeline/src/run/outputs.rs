//! A finished run's outputs, written into the staging directory: the rest of the pruned
//! model (blocks after the last target, final norm, head, config and tokenizer), the
//! report, the masks and the figure (`error.svg`, `error.png`).

use crate::config::PipelineConfig;
use crate::error::{io_err, PipelineError, Result};
use crate::memory::MemoryReport;
use crate::report::{mean_median, PplReport, RunReport};
use crate::staging::Manifest;
use sparseswaps_core::Pattern;
use sparseswaps_model::{Model, ModelWriter};
use sparseswaps_tensor_io::shards::{PlannedTensor, ShardPlan, ShardWriter};
use sparseswaps_tensor_io::write_atomic;
use std::collections::BTreeMap;
use std::path::Path;

/// Everything the outputs are made of.
pub struct Finished<'a> {
    /// The config as run.
    pub cfg: &'a PipelineConfig,
    /// The final manifest: inputs, report rows, dense perplexity.
    pub manifest: &'a Manifest,
    /// Calibration tokens.
    pub calibration_tokens: usize,
    /// Perplexity of the pruned model, when evaluated.
    pub pruned_ppl: Option<PplReport>,
    /// The pattern.
    pub pattern: &'a Pattern,
    /// The warm start's name.
    pub warm_start: &'a str,
    /// The backend's name, and why `auto` chose the CPU.
    pub backend: (&'a str, Option<&'a str>),
    /// The memory plan and the measured peaks.
    pub memory: MemoryReport,
}

/// Writes what the block loop left of the staged model: the blocks after the last
/// target, copied from the source in order, the final norm and the head, then the
/// config, tokenizer and shard index.
pub fn finish_model(model: &mut Model, mut writer: ModelWriter) -> Result<()> {
    while let Some(l) = writer.next_block() {
        let block = model.block(l)?;
        writer.write_block(l, &block)?;
        drop(block);
        model.release_block(l);
    }
    let head = match model.config().tie_word_embeddings {
        true => None,
        false => Some(model.lm_head()?),
    };
    writer.write_head(model.final_norm(), head.as_ref())?;
    drop(head);
    model.release_tables();
    writer.finish(model)?;
    Ok(())
}

/// The run report of `f` (its `total_seconds` and `peak_memory_bytes` filled in by
/// [`write()`]).
pub fn report(f: &Finished<'_>) -> RunReport {
    let layers = f.manifest.layers.clone();
    let reductions: Vec<f64> = layers.iter().map(|r| r.reduction).collect();
    let (mean_reduction, median_reduction) = mean_median(&reductions);
    let refit: Vec<f64> = layers
        .iter()
        .filter_map(|r| r.budget.refit.as_ref().map(|f| f.refit_reduction))
        .collect();
    let mean_refit_reduction = (!refit.is_empty()).then(|| mean_median(&refit).0);
    let (pruned, total) = layers.iter().fold((0.0, 0.0), |(p, t), r| {
        let n = (r.shape[0] * r.shape[1]) as f64;
        (p + r.sparsity * n, t + n)
    });
    RunReport {
        version: env!("CARGO_PKG_VERSION").into(),
        config: f.cfg.clone(),
        seed: f.cfg.calibration.seed,
        calibration_tokens: f.calibration_tokens,
        inputs: f.manifest.inputs.clone(),
        layers,
        dense_ppl: f.manifest.dense_ppl,
        pruned_ppl: f.pruned_ppl,
        mean_reduction,
        median_reduction,
        mean_refit_reduction,
        sparsity: if total > 0.0 { pruned / total } else { 0.0 },
        total_seconds: 0.0,
        peak_memory_bytes: None,
        memory: Some(f.memory.clone()),
        backend: f.backend.0.to_string(),
        backend_note: f.backend.1.map(str::to_string),
    }
}

/// Writes the outputs of `f` into `dir` and returns the report; `elapsed` gives the
/// run's seconds so far.
pub fn write(f: &Finished<'_>, dir: &Path, elapsed: &dyn Fn() -> f64) -> Result<RunReport> {
    let mut report = report(f);
    if !f.cfg.output.model {
        // The staged model was the checkpoint of the pruned weights, not an output.
        let m = dir.join("model");
        std::fs::remove_dir_all(&m).map_err(io_err(&m))?;
    }
    write_masks(f, dir)?;
    if f.cfg.output.plot {
        let svg = crate::plot::run_plot_svg(&report);
        write_atomic(&dir.join("error.svg"), svg.as_bytes())?;
        // Rendering our own SVG does not fail in practice; if it did, only the PNG would
        // be lost, never the run (the figure can be drawn again from `report.json`:
        // example `run_figure`).
        if let Ok(png) = crate::plot::run_plot_png(&report) {
            write_atomic(&dir.join("error.png"), &png)?;
        }
    }
    report.total_seconds = elapsed();
    report.peak_memory_bytes = f.memory.measured.iter().filter_map(|p| p.peak_bytes).max();
    let json =
        serde_json::to_string_pretty(&report).map_err(|e| PipelineError::Input(e.to_string()))?;
    write_atomic(&dir.join("report.json"), json.as_bytes())?;
    Ok(report)
}

/// Writes `masks.safetensors` (one u8 tensor per target, 1 = kept) from the masks each
/// block's checkpoint holds, one block at a time: a model's masks are a byte per weight
/// (1.7 GB for two blocks of a 70B model), too much to gather in memory. The file has
/// the bytes `safetensors::serialize` gives for the same tensors.
fn write_masks(f: &Finished<'_>, dir: &Path) -> Result<()> {
    let meta = BTreeMap::from([
        ("pattern".to_string(), f.pattern.to_string()),
        ("warm_start".to_string(), f.warm_start.to_string()),
        (
            "convention".to_string(),
            "u8, 1 = kept; N:M = N kept of M".to_string(),
        ),
    ]);
    // Block by block, each block's targets by name: the order the checkpoint holds them.
    let mut layers: Vec<&crate::report::LayerReport> = f.manifest.layers.iter().collect();
    layers.sort_by(|a, b| (a.block, &a.name).cmp(&(b.block, &b.name)));
    let list = layers
        .iter()
        .map(|r| PlannedTensor::new(&r.name, safetensors::Dtype::U8, r.shape.to_vec()))
        .collect();
    let path = dir.join("masks.safetensors");
    if layers.is_empty() {
        let meta = meta.into_iter().collect();
        sparseswaps_tensor_io::write_safetensors_atomic(&path, &[], Some(meta))?;
        return Ok(());
    }
    let mut plan = ShardPlan::new(&path, list, u64::MAX, &meta)?;
    plan.name_single_file("masks.safetensors");
    let mut w = ShardWriter::create(dir, plan)?;
    for l in 0..f.manifest.blocks {
        for (name, mask) in crate::staging::read_block(dir, l)? {
            w.write(&name, &mask.bytes)?;
        }
    }
    w.finish()?;
    Ok(())
}
