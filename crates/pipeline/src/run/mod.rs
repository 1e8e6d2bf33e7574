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
use crate::memory::{self, MemoryPlan, Meter};
use crate::report::RunReport;
use crate::staging::{self, Manifest, Staging, Start};
use crate::warm::WarmStart;
use calibration::{Inputs, Texts};
use sparseswaps_core::{Pattern, RefineOptions};
use sparseswaps_model::{Model, ModelWriter, SaveDtype};
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
    /// Refuse to start when the memory plan's estimated peak exceeds this many bytes
    /// (`--max-memory`; overrides `run.max_memory`).
    pub max_memory: Option<u64>,
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
    let shard_size = cfg.shard_size(config_path)?;
    let plan = memory_plan(cfg, config_path, &model, &targets, save_dtype, shard_size)?;
    events(Event::Note(plan.summary()));
    let limit = opts.max_memory.or(cfg.max_memory(config_path)?);
    memory::check_limit(&plan, limit)?;
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
        shard_size,
        plan,
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
    shard_size: u64,
    plan: MemoryPlan,
    out_dir: &'a Path,
    start: Instant,
    force: bool,
    /// No checkpoint was resumed: the manifest is new.
    fresh: bool,
}

/// The memory plan of a run of `cfg` on `model` (its config only: no weight is read).
fn memory_plan(
    cfg: &PipelineConfig,
    config_path: &Path,
    model: &Model,
    targets: &Targets,
    save_dtype: SaveDtype,
    shard_size: u64,
) -> Result<MemoryPlan> {
    let shards = ModelWriter::plan(model, Path::new("model"), save_dtype, shard_size)?;
    let out_bytes = shards
        .tensors()
        .first()
        .map_or(4, |t| (t.dtype.bitsize() / 8) as u64);
    let stored_bytes = match model.source().dtype {
        sparseswaps_model::SourceDtype::F16 | sparseswaps_model::SourceDtype::BF16 => 2,
        _ => 4,
    };
    let sequential = cfg.sequential(config_path)?;
    // The largest group of targets pruned at once (its Grams live together).
    let group = targets
        .values()
        .flat_map(|kinds| targets::groups(kinds, sequential))
        .max_by_key(|g| g.len())
        .unwrap_or_default();
    let shapes: Vec<[usize; 2]> = targets
        .values()
        .flat_map(|kinds| kinds.iter())
        .map(|&k| sparseswaps_model::write::linear_shape(model.config(), k))
        .collect();
    let c = &cfg.calibration;
    Ok(memory::plan(&memory::PlanInputs {
        model: model.config(),
        stored_bytes,
        // The model streams its blocks: one is resident (two at a pruned block's
        // hand-off, which the plan's block term covers with the captured activations).
        residency: memory::Residency::OneBlock,
        calibration: (c.samples, c.seq_len, c.micro_batch),
        hidden_bytes: match cfg.hidden_dtype(config_path)? {
            sparseswaps_model::DType::F32 => 4,
            _ => 2,
        },
        eval: cfg.eval.as_ref().map(|e| (e.windows, e.seq_len)),
        group: &group,
        targets: &shapes,
        model_disk: shards.disk_size(),
        out_bytes,
        save_grams: cfg.output.save_grams,
    }))
}

/// The writer of the staged model `dir`: a fresh one, its embedding written and synced
/// before the first manifest can count it, or the one a resumed run continues after
/// its `blocks_done` finished blocks.
fn open_writer(
    model: &Model,
    dir: &Path,
    dtype: SaveDtype,
    shard_size: u64,
    resume_after: Option<usize>,
) -> Result<ModelWriter> {
    if let Some(done) = resume_after {
        return Ok(ModelWriter::resume(model, dir, dtype, shard_size, done)?);
    }
    std::fs::create_dir_all(dir).map_err(crate::error::io_err(dir))?;
    let mut w = ModelWriter::begin(model, dir, dtype, shard_size)?;
    w.write_embedding(&model.embed_tokens()?)?;
    w.sync()?;
    Ok(w)
}

/// The pruned perplexity of the model as written in `dir` (its dtype; the finished blocks
/// of an earlier process included), loaded once `model` is dropped, so that one model is
/// resident at a time.
fn evaluate_written(
    model: Model,
    dir: &Path,
    cfg: &PipelineConfig,
    texts: &Texts,
    events: Events<'_>,
) -> Result<Option<crate::report::PplReport>> {
    if cfg.eval.is_none() {
        return Ok(None);
    }
    drop(model);
    let written = sparseswaps_model::load(dir)?;
    // The load read both tables; the evaluation reads each only while it needs it.
    written.release_tables();
    calibration::evaluate(&written, cfg, texts, "pruned", events)
}

/// Dense evaluation, the block loop with its checkpoints (each block written to the
/// staged model as it finishes), the rest of the model written, pruned evaluation and
/// the final outputs, in the staging directory; renames it into place at the end.
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
        shard_size,
        plan: mem_plan,
        out_dir,
        start,
        force,
        fresh,
    } = job;
    let seconds_before = manifest.seconds;
    let elapsed = || seconds_before + start.elapsed().as_secs_f64();
    let mut meter = Meter::default();
    let model_dir = staging.path().join("model");
    let mut writer = open_writer(
        &model,
        &model_dir,
        save_dtype,
        shard_size,
        (!fresh).then_some(manifest.blocks_done),
    )?;

    // The load read both vocabulary tables and the writer used the embedding; from here
    // on each is read only while it is needed.
    model.release_tables();
    let dense = match &cfg.eval {
        Some(e) if e.dense && manifest.dense_ppl.is_none() => {
            meter.start("dense eval", &mem_plan);
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

    // No table is held here (released above, and by the dense evaluation itself); the
    // prune loop reads the embedding for the calibration windows and releases it.
    meter.start("prune loop", &mem_plan);
    // Blocks finished by an earlier process: their masks are in the checkpoint (their
    // weights in the staged shards).
    blocks::check_restored(staging, targets, manifest.blocks_done)?;
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
        hidden_dtype: cfg.hidden_dtype(config_path)?,
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
        &mut writer,
        &plan,
        &mut manifest,
        staging,
        &elapsed,
        events,
    )?;

    meter.start("writing", &mem_plan);
    events(Event::Stage(format!("writing {}", model_dir.display())));
    outputs::finish_model(&mut model, writer)?;

    meter.start("pruned eval", &mem_plan);
    let pruned_ppl = evaluate_written(model, &model_dir, cfg, texts, events)?;
    let memory = meter.report(&mem_plan);
    events(Event::Stage(format!("writing {}", out_dir.display())));
    let finished = outputs::Finished {
        cfg,
        manifest: &manifest,
        calibration_tokens: texts.calibration.len(),
        pruned_ppl,
        pattern,
        warm_start: warm.name(),
        backend: (compute.backend().name(), compute.note()),
        memory,
    };
    let report = outputs::write(&finished, staging.path(), &elapsed)?;
    staging.publish(out_dir, force, events)?;
    Ok(report)
}
