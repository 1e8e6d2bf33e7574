//! `run`: a whole pipeline — calibration, the block loop, evaluation and the outputs —
//! in a staging directory that is renamed into place once everything is written.
//!
//! The jobs live in their own modules: [`crate::staging`] decides between a fresh run, a
//! resumed one and a refusal, holds the checkpoints and publishes; [`calibration`]
//! tokenises and draws the windows; [`targets`] selects the layers; [`blocks`] is the
//! block loop, each layer going through [`crate::layer`]; [`outputs`] writes the results.

pub mod blocks;
pub mod calibration;
pub mod outputs;
pub mod targets;

pub use crate::events::{Event, Events};
pub use calibration::{draw_windows, sha256_path};

use crate::compute::{search_name, Compute};
use crate::config::{expand_path, Objective, PipelineConfig};
use crate::error::{PipelineError, Result};
use crate::report::RunReport;
use crate::staging::{self, Manifest, Staging, Start};
use crate::warm::WarmStart;
use calibration::{Inputs, Texts};
use sparseswaps_core::{Pattern, RefineOptions};
use sparseswaps_model::{Model, SaveDtype};
use sparseswaps_reconstruct::{ReconstructOptions, RefitSwapOptions};
use std::path::{Path, PathBuf};
use std::time::Instant;
use targets::Targets;

/// Options that come from the command line rather than the config.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Replace an existing output directory, and discard the checkpoint of an
    /// unfinished run.
    pub force: bool,
    /// Continue the unfinished run whose checkpoint is in the staging directory
    /// (`.NAME.partial` beside `output.dir`), after checking that the config, inputs and
    /// version match it.
    pub resume: bool,
    /// Extra directories searched for warm-start plugins.
    pub plugin_dirs: Vec<PathBuf>,
}

/// Runs a pipeline: loads, calibrates, prunes block by block, evaluates and writes the
/// outputs into `cfg.output.dir` (which appears only when everything succeeded).
///
/// Every finished block is checkpointed in the staging directory (see
/// [`crate::staging`]); with [`RunOptions::resume`] a stopped run continues from its
/// last finished block and gives the same masks and report as an uninterrupted run.
pub fn run(
    cfg: &PipelineConfig,
    config_path: &Path,
    opts: &RunOptions,
    events: Events<'_>,
) -> Result<RunReport> {
    let start = Instant::now();
    let pattern = cfg.pattern(config_path)?;
    let out_dir = expand_path(&cfg.output.dir);
    staging::check_output(&out_dir, opts.force, opts.resume)?;
    let compute = Compute::select(cfg.backend_kind(config_path)?)?;
    if let Some(n) = compute.note() {
        events(Event::Note(format!("backend auto: using the CPU ({n})")));
    }
    let ropts = cfg.refine_options(config_path, compute.default_search())?;
    // The config as run: the search the backend chose when none was asked for is
    // recorded in the checkpoint and the report.
    let mut cfg = cfg.clone();
    cfg.refine.search = Some(search_name(ropts.search).to_string());
    let cfg = &cfg;
    let config_json = serde_json::to_value(cfg).map_err(|e| PipelineError::Input(e.to_string()))?;
    // What is in the staging directory decides between a fresh run and a resumed one,
    // before any expensive work.
    let begin = staging::decide(&out_dir, opts.force, opts.resume, &config_json, events)?;
    let inputs = Inputs::of(cfg)?;
    let save_dtype: SaveDtype = cfg.model.dtype.parse().map_err(|e| PipelineError::Config {
        path: config_path.into(),
        reason: format!("model.dtype: {e}"),
    })?;
    let warm = crate::warm::resolve(
        &cfg.warm_start.name,
        &cfg.warm_start.options,
        &opts.plugin_dirs,
    )?;
    if let Some(n) = &warm.fallback {
        events(Event::Note(n.clone()));
    }
    let mut staging = Staging::open(&begin)?;

    events(Event::Stage("checksumming inputs".into()));
    let checksums = inputs.checksums()?;
    if let Some(m) = &begin.manifest {
        staging::check_resumable(m, staging.path(), &config_json, Some(&checksums))?;
    }
    events(Event::Stage(format!("loading {}", inputs.model.display())));
    let model = sparseswaps_model::load(&inputs.model)?;
    let targets = targets::select_targets(&model, cfg)?;
    targets::check_widths(&model, &targets, &pattern)?;
    events(Event::Stage(
        "tokenizing calibration and evaluation text".into(),
    ));
    let texts = calibration::tokenize(&model, cfg, &inputs)?;

    // Blocks after the last one with a target change no mask: the loop stops there.
    let blocks = targets.keys().next_back().map_or(0, |&l| l + 1);
    let Start {
        manifest: resumed,
        force,
        ..
    } = begin;
    let fresh = resumed.is_none();
    let manifest = staging.manifest(
        resumed,
        Manifest {
            format: staging::FORMAT,
            version: env!("CARGO_PKG_VERSION").into(),
            config: config_json,
            inputs: checksums,
            force: opts.force,
            blocks,
            blocks_done: 0,
            layers: Vec::new(),
            dense_ppl: None,
            seconds: 0.0,
        },
    )?;
    let job = Job {
        cfg,
        config_path,
        model,
        targets: &targets,
        texts: &texts,
        pattern: &pattern,
        warm: warm.warm.as_ref(),
        compute: &compute,
        ropts: &ropts,
        save_dtype,
        out_dir: &out_dir,
        start,
        force,
        fresh,
    };
    prune_and_write(job, manifest, &mut staging, events).map_err(|error| {
        if !staging.is_kept() {
            return error;
        }
        let done = staging::read_manifest(staging.path())
            .ok()
            .flatten()
            .map_or(0, |m| m.blocks_done);
        PipelineError::Checkpointed {
            error: Box::new(error),
            note: format!(
                "{done} of {blocks} blocks are checkpointed in {}; rerun with --resume to continue",
                staging.path().display()
            ),
        }
    })
}

/// What [`prune_and_write`] works with, prepared by [`run`].
struct Job<'a> {
    cfg: &'a PipelineConfig,
    config_path: &'a Path,
    model: Model,
    targets: &'a Targets,
    texts: &'a Texts,
    pattern: &'a Pattern,
    warm: &'a dyn WarmStart,
    compute: &'a Compute,
    ropts: &'a RefineOptions,
    save_dtype: SaveDtype,
    out_dir: &'a Path,
    start: Instant,
    force: bool,
    /// No checkpoint was resumed: the manifest is new.
    fresh: bool,
}

/// Dense evaluation, the block loop with its checkpoints, pruned evaluation and the
/// final outputs, in the staging directory; renames it into place at the end.
fn prune_and_write(
    job: Job<'_>,
    mut manifest: Manifest,
    staging: &mut Staging,
    events: Events<'_>,
) -> Result<RunReport> {
    let Job {
        cfg,
        config_path,
        mut model,
        targets,
        texts,
        pattern,
        warm,
        compute,
        ropts,
        save_dtype,
        out_dir,
        start,
        force,
        fresh,
    } = job;
    let seconds_before = manifest.seconds;
    let elapsed = || seconds_before + start.elapsed().as_secs_f64();

    let dense = match &cfg.eval {
        Some(e) if e.dense && manifest.dense_ppl.is_none() => {
            calibration::evaluate(&model, cfg, texts, "dense", events)?
        }
        _ => None,
    };
    // The first manifest pins the config and inputs from the start; a resumed one is
    // rewritten only when it gains the dense evaluation.
    if fresh || dense.is_some() {
        manifest.dense_ppl = manifest.dense_ppl.or(dense);
        manifest.seconds = elapsed();
        staging::write_manifest(staging.path(), &manifest)?;
        // A dense evaluation is worth keeping (it can take longer than the pruning).
        if manifest.dense_ppl.is_some() {
            staging.keep();
        }
    }

    // Blocks finished by an earlier process: their pruned weights and masks.
    let mut masks = blocks::restore(&mut model, staging, targets, manifest.blocks_done)?;
    events(Event::PruneStart {
        blocks: manifest.blocks,
        targets: targets.values().map(|v| v.len()).sum(),
    });
    if !fresh {
        events(Event::Resumed {
            from_block: manifest.blocks_done,
            blocks: manifest.blocks,
            checkpoint: staging::manifest_path(staging.path()),
        });
    }
    let plan = blocks::Plan {
        targets,
        calibration: &texts.calibration,
        seq_len: cfg.calibration.seq_len,
        micro_batch: cfg.calibration.micro_batch,
        pattern,
        sequential: cfg.sequential(config_path)?,
        warm,
        compute,
        refine: ropts,
        reconstruct: cfg.refine.reconstruct.then(ReconstructOptions::default),
        refit: (cfg.objective(config_path)? == Objective::Refit).then(RefitSwapOptions::default),
        save_grams: cfg.output.save_grams,
    };
    blocks::prune_blocks(
        &mut model,
        &plan,
        &mut manifest,
        staging,
        &mut masks,
        &elapsed,
        events,
    )?;

    let pruned_ppl = calibration::evaluate(&model, cfg, texts, "pruned", events)?;
    events(Event::Stage(format!("writing {}", out_dir.display())));
    let finished = outputs::Finished {
        cfg,
        model: &model,
        masks: &masks,
        manifest: &manifest,
        calibration_tokens: texts.calibration.len(),
        pruned_ppl,
        pattern,
        warm_start: warm.name(),
        backend: (compute.backend().name(), compute.note()),
        save_dtype,
    };
    let report = outputs::write(&finished, staging.path(), &elapsed)?;
    staging.publish(out_dir, force, events)?;
    Ok(report)
}
