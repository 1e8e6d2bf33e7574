//! The block-by-block pruning loop and its outputs.

use crate::checkpoint::{self, BlockTargets, Manifest};
use crate::config::{expand_path, glob_match, PipelineConfig, Sequential};
use crate::error::{PipelineError, Result};
use crate::report::{
    mean_median, peak_memory_bytes, InputChecksum, LayerReport, PplReport, RunReport,
};
use crate::warm::{resolve as resolve_warm, WarmStart};
use sha2::{Digest, Sha256};
use sparseswaps_core::{Backend, LayerProblem, Pattern, RefineOptions};
use sparseswaps_gram::GramAccumulator;
use sparseswaps_model::{CapturePoint, LinearKind, Model, SaveDtype, Tensor};
use sparseswaps_tensor_io::{write_atomic, write_safetensors_atomic, OwnedTensor};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

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

/// Progress of a run, for a terminal or a log. Sent from worker threads too.
#[derive(Debug, Clone)]
pub enum Event {
    /// A named stage began (loading, calibration, writing...).
    Stage(String),
    /// A note to show once (e.g. why `auto` chose the CPU).
    Note(String),
    /// Perplexity evaluation began: `label` is `dense` or `pruned`.
    EvalStart {
        /// `dense` or `pruned`.
        label: String,
        /// Windows to evaluate.
        windows: usize,
    },
    /// One more window evaluated.
    EvalWindow,
    /// Evaluation done.
    EvalDone {
        /// `dense` or `pruned`.
        label: String,
        /// The perplexity.
        ppl: f64,
    },
    /// Pruning began over `blocks` blocks with `targets` target layers.
    PruneStart {
        /// Decoder blocks.
        blocks: usize,
        /// Target layers.
        targets: usize,
    },
    /// Block `index` began.
    BlockStart {
        /// Block index.
        index: usize,
    },
    /// One micro-batch of calibration activations captured in the current block.
    Captured {
        /// Micro-batches done in this pass.
        done: usize,
        /// Micro-batches per pass.
        total: usize,
    },
    /// Refinement of a layer began.
    LayerStart {
        /// Layer name.
        name: String,
        /// Rows of the layer.
        rows: usize,
    },
    /// Rows finished in the current layer (an increment).
    Rows(usize),
    /// A layer is done.
    LayerDone(Box<LayerReport>),
    /// Block `index` is done (and checkpointed).
    BlockDone {
        /// Block index.
        index: usize,
    },
    /// The run continues a checkpoint: blocks `0..from_block` were restored from it.
    Resumed {
        /// First block still to prune.
        from_block: usize,
        /// Blocks the pruning loop runs.
        blocks: usize,
        /// The checkpoint's manifest.
        checkpoint: PathBuf,
    },
}

/// Event sink; must be callable from worker threads.
pub type Events<'a> = &'a (dyn Fn(Event) + Sync);

/// Removes the staging directory on failure, unless it holds a checkpoint worth
/// resuming (`keep`) or has been renamed into place.
struct Staging {
    path: PathBuf,
    keep: bool,
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> PipelineError + '_ {
    move |error| PipelineError::Io {
        path: path.into(),
        error,
    }
}

/// sha256 of a file, or of every file of a directory (sorted by name, names included).
pub fn sha256_path(path: &Path) -> Result<String> {
    let mut h = Sha256::new();
    let mut files = Vec::new();
    if path.is_dir() {
        for e in std::fs::read_dir(path).map_err(io(path))? {
            let p = e.map_err(io(path))?.path();
            if p.is_file() {
                files.push(p);
            }
        }
        files.sort();
    } else {
        files.push(path.to_path_buf());
    }
    for f in files {
        if path.is_dir() {
            h.update(
                f.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .as_bytes(),
            );
        }
        let mut file = std::fs::File::open(&f).map_err(io(&f))?;
        std::io::copy(&mut file, &mut h).map_err(io(&f))?;
    }
    Ok(format!("{:x}", h.finalize()))
}

/// Draws `samples` distinct non-overlapping windows of `seq_len` tokens (seeded), and
/// returns them concatenated.
pub fn draw_windows(ids: &[u32], samples: usize, seq_len: usize, seed: u64) -> Option<Vec<u32>> {
    let slots = ids.len() / seq_len;
    if slots < samples {
        return None;
    }
    // Partial Fisher–Yates over slot indices with SplitMix64: reproducible everywhere.
    let mut order: Vec<usize> = (0..slots).collect();
    let mut state = seed ^ 0x5EED_5EED_5EED_5EED;
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    for i in 0..samples {
        let j = i + (next() % (slots - i) as u64) as usize;
        order.swap(i, j);
    }
    let mut out = Vec::with_capacity(samples * seq_len);
    for &s in &order[..samples] {
        out.extend_from_slice(&ids[s * seq_len..(s + 1) * seq_len]);
    }
    Some(out)
}

/// Target layers (names without `.weight`) by block, after include/exclude globs.
fn select_targets(model: &Model, cfg: &PipelineConfig) -> Result<BTreeMap<usize, Vec<LinearKind>>> {
    let names: Vec<(usize, LinearKind, String)> = (0..model.num_layers())
        .flat_map(|l| {
            LinearKind::ALL.into_iter().map(move |k| {
                let n = k.weight_name(l);
                (l, k, n.trim_end_matches(".weight").to_string())
            })
        })
        .collect();
    for g in &cfg.targets.include {
        if !names.iter().any(|(_, _, n)| glob_match(g, n)) {
            return Err(PipelineError::Input(format!(
                "targets.include glob '{g}' matches no linear layer (names look like {})",
                names
                    .first()
                    .map(|x| x.2.as_str())
                    .unwrap_or("model.layers.0.self_attn.q_proj")
            )));
        }
    }
    for g in &cfg.targets.exclude {
        if !names.iter().any(|(_, _, n)| glob_match(g, n)) {
            return Err(PipelineError::Input(format!(
                "targets.exclude glob '{g}' matches no linear layer"
            )));
        }
    }
    let mut out: BTreeMap<usize, Vec<LinearKind>> = BTreeMap::new();
    for (l, k, n) in names {
        let inc = cfg.targets.include.iter().any(|g| glob_match(g, &n));
        let exc = cfg.targets.exclude.iter().any(|g| glob_match(g, &n));
        if inc && !exc {
            out.entry(l).or_default().push(k);
        }
    }
    if out.is_empty() {
        return Err(PipelineError::Input(
            "no target layer left after targets.include and targets.exclude".into(),
        ));
    }
    Ok(out)
}

fn eval_ppl(
    model: &Model,
    ids: &[u32],
    seq_len: usize,
    windows: usize,
    label: &str,
    events: Events<'_>,
) -> Result<PplReport> {
    let t = Instant::now();
    events(Event::EvalStart {
        label: label.into(),
        windows: windows.min(ids.len() / seq_len),
    });
    let p = sparseswaps_model::perplexity(model, ids, seq_len, windows, &mut |_, _| {
        events(Event::EvalWindow)
    })?;
    events(Event::EvalDone {
        label: label.into(),
        ppl: p.ppl,
    });
    Ok(PplReport {
        ppl: p.ppl,
        mean_nll: p.mean_nll,
        tokens: p.tokens,
        windows: p.windows,
        seconds: t.elapsed().as_secs_f64(),
    })
}

/// Runs a pipeline: loads, calibrates, prunes block by block, evaluates and writes the
/// outputs into `cfg.output.dir` (which appears only when everything succeeded).
///
/// Every finished block is checkpointed in the staging directory (see
/// [`crate::checkpoint`]); with [`RunOptions::resume`] a stopped run continues from its
/// last finished block and gives the same masks and report as an uninterrupted run.
pub fn run(
    cfg: &PipelineConfig,
    config_path: &Path,
    opts: &RunOptions,
    events: Events<'_>,
) -> Result<RunReport> {
    let start = Instant::now();
    let pattern = cfg.pattern(config_path)?;
    let sequential = cfg.sequential(config_path)?;
    let out_dir = expand_path(&cfg.output.dir);
    let staging_path = checkpoint::staging_dir(&out_dir);
    if opts.resume && opts.force {
        return Err(PipelineError::Input(format!(
            "--resume and --force exclude each other: --resume continues the checkpoint in {}, --force discards it",
            staging_path.display()
        )));
    }
    if out_dir.exists() && !opts.force && !opts.resume {
        return Err(PipelineError::OutputExists(out_dir));
    }
    let config_json = serde_json::to_value(cfg).map_err(|e| PipelineError::Input(e.to_string()))?;
    // What is in the staging directory decides between a fresh run and a resumed one,
    // before any expensive work.
    let mut manifest: Option<Manifest> = None;
    if staging_path.exists() {
        if let Some(pid) = checkpoint::live_owner(&staging_path) {
            return Err(PipelineError::Unfinished(format!(
                "{} is being written by a running sparseswaps (pid {pid}); wait for it or stop it first",
                staging_path.display()
            )));
        }
        if opts.resume {
            manifest = checkpoint::read_manifest(&staging_path)?;
            match &manifest {
                Some(m) => checkpoint::check_resumable(m, &staging_path, &config_json, None)?,
                None => events(Event::Note(format!(
                    "{} holds no checkpoint manifest (the run stopped before its first checkpoint): starting from the beginning",
                    staging_path.display()
                ))),
            }
        } else if !opts.force {
            let done = match checkpoint::read_manifest(&staging_path) {
                Ok(Some(m)) => format!("{} of {} blocks checkpointed", m.blocks_done, m.blocks),
                _ => "no block checkpointed".into(),
            };
            return Err(PipelineError::Unfinished(format!(
                "{} holds an unfinished run of {} ({done}); rerun with --resume to continue it or --force to discard it",
                staging_path.display(),
                out_dir.display()
            )));
        }
    } else if opts.resume {
        return Err(PipelineError::Resume(format!(
            "no checkpoint of {} to resume: {} does not exist{}",
            out_dir.display(),
            staging_path.display(),
            if out_dir.exists() {
                " (the output is already finished)"
            } else {
                ""
            }
        )));
    }
    // A resumed run may replace an existing output only when the run it continues could.
    let force = opts.force || manifest.as_ref().is_some_and(|m| m.force);
    if out_dir.exists() && !force {
        return Err(PipelineError::OutputExists(out_dir));
    }
    let model_path = expand_path(&cfg.model.path);
    let calib_path = expand_path(&cfg.calibration.text);
    let eval_path = cfg.eval.as_ref().map(|e| expand_path(&e.text));
    for p in [Some(&model_path), Some(&calib_path), eval_path.as_ref()]
        .into_iter()
        .flatten()
    {
        if !p.exists() {
            return Err(PipelineError::Input(format!(
                "{}: no such file or directory",
                p.display()
            )));
        }
    }
    let save_dtype: SaveDtype = cfg.model.dtype.parse().map_err(|e| PipelineError::Config {
        path: config_path.into(),
        reason: format!("model.dtype: {e}"),
    })?;

    let (warm, warm_note) = resolve_warm(
        &cfg.warm_start.name,
        &cfg.warm_start.options,
        &opts.plugin_dirs,
    )
    .map_err(|reason| PipelineError::WarmStart {
        name: cfg.warm_start.name.clone(),
        reason,
    })?;
    if let Some(n) = warm_note {
        events(Event::Note(n));
    }
    let kind: sparseswaps_kernels::BackendKind =
        cfg.refine
            .backend
            .parse()
            .map_err(|e| PipelineError::Config {
                path: config_path.into(),
                reason: format!("refine.backend: {e}"),
            })?;
    let (backend, note) = sparseswaps_kernels::select_backend(kind)
        .map_err(|e| PipelineError::Backend(e.to_string()))?;
    if let Some(n) = &note {
        events(Event::Note(format!("backend auto: using the CPU ({n})")));
    }

    // The staging directory is made and claimed before the long checksumming and
    // loading, so that an unwritable output directory fails at once and a second process
    // sees this one; a failure before the first checkpoint removes it again.
    let fresh = manifest.is_none();
    let mut staging = Staging {
        path: staging_path,
        keep: !fresh,
    };
    if fresh {
        let parent = match staging.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).map_err(io(&parent))?;
        if staging.path.exists() {
            // Only reached with --force, or --resume on a directory with no manifest.
            std::fs::remove_dir_all(&staging.path).map_err(io(&staging.path))?;
        }
        std::fs::create_dir(&staging.path).map_err(io(&staging.path))?;
        let ck = staging.path.join("checkpoint");
        std::fs::create_dir(&ck).map_err(io(&ck))?;
        checkpoint::fsync_dir(&parent)?;
    }
    checkpoint::claim(&staging.path)?;

    events(Event::Stage("checksumming inputs".into()));
    let mut inputs = Vec::new();
    for p in [Some(&model_path), Some(&calib_path), eval_path.as_ref()]
        .into_iter()
        .flatten()
    {
        inputs.push(InputChecksum {
            path: p.display().to_string(),
            sha256: sha256_path(p)?,
        });
    }
    if let Some(m) = &manifest {
        checkpoint::check_resumable(m, &staging.path, &config_json, Some(&inputs))?;
    }

    events(Event::Stage(format!("loading {}", model_path.display())));
    let model = sparseswaps_model::load(&model_path)?;
    let targets = select_targets(&model, cfg)?;
    // Check the pattern against every target's width before any work.
    for (&l, kinds) in &targets {
        for &k in kinds {
            let name = k.weight_name(l);
            let d_in = model.weight(&name)?.dims()[1];
            pattern.check_width(d_in).map_err(|e| {
                PipelineError::Input(format!("{}: {e}", name.trim_end_matches(".weight")))
            })?;
        }
    }

    events(Event::Stage(
        "tokenizing calibration and evaluation text".into(),
    ));
    let c = &cfg.calibration;
    let calib_text = sparseswaps_model::read_text(&calib_path)?;
    let calib_ids = model.encode(&calib_text)?;
    let calib = draw_windows(&calib_ids, c.samples, c.seq_len, c.seed).ok_or_else(|| {
        PipelineError::Input(format!(
            "calibration text {} has {} tokens: too short for {} samples of {} tokens",
            calib_path.display(),
            calib_ids.len(),
            c.samples,
            c.seq_len
        ))
    })?;
    let eval_ids = match (&cfg.eval, &eval_path) {
        (Some(e), Some(p)) => {
            let ids = model.encode(&sparseswaps_model::read_text(p)?)?;
            if ids.len() < e.seq_len {
                return Err(PipelineError::Input(format!(
                    "evaluation text {} has {} tokens: shorter than one window of {}",
                    p.display(),
                    ids.len(),
                    e.seq_len
                )));
            }
            Some(ids)
        }
        _ => None,
    };

    let ropts = RefineOptions {
        max_swaps: cfg.refine.max_swaps.as_option(),
        search: cfg
            .refine
            .search
            .parse()
            .map_err(|reason| PipelineError::Config {
                path: config_path.into(),
                reason,
            })?,
        budget: cfg.budget(config_path)?,
        ..RefineOptions::default()
    };
    // Blocks after the last one with a target change no mask: the loop stops there.
    let blocks = targets.keys().next_back().map_or(0, |&l| l + 1);

    // Outputs: everything goes into the staging directory beside the target, renamed
    // into place at the end, so a failed run leaves nothing that looks finished.
    let manifest = match manifest {
        Some(m) => {
            if m.blocks != blocks {
                return Err(PipelineError::Checkpoint {
                    path: checkpoint::manifest_path(&staging.path),
                    reason: format!("{} blocks recorded, the config selects {blocks}", m.blocks),
                });
            }
            checkpoint::clean_leftovers(&staging.path, m.blocks_done)?;
            m
        }
        None => Manifest {
            format: checkpoint::FORMAT,
            version: env!("CARGO_PKG_VERSION").into(),
            config: config_json,
            inputs: inputs.clone(),
            force: opts.force,
            blocks,
            blocks_done: 0,
            layers: Vec::new(),
            dense_ppl: None,
            seconds: 0.0,
        },
    };
    let res = prune_and_write(
        cfg,
        Plan {
            model,
            targets,
            calib: &calib,
            eval_ids: eval_ids.as_deref(),
            pattern: &pattern,
            sequential,
            warm: warm.as_ref(),
            backend: backend.as_ref(),
            note,
            ropts: &ropts,
            save_dtype,
            out_dir: &out_dir,
            start,
            force,
            fresh,
        },
        manifest,
        &mut staging,
        events,
    );
    res.map_err(|error| {
        if !staging.keep {
            return error;
        }
        let done = checkpoint::read_manifest(&staging.path)
            .ok()
            .flatten()
            .map_or(0, |m| m.blocks_done);
        PipelineError::Checkpointed {
            error: Box::new(error),
            note: format!(
                "{done} of {blocks} blocks are checkpointed in {}; rerun with --resume to continue",
                staging.path.display()
            ),
        }
    })
}

/// What the pruning loop works with, prepared by [`run`].
struct Plan<'a> {
    model: Model,
    targets: BTreeMap<usize, Vec<LinearKind>>,
    calib: &'a [u32],
    eval_ids: Option<&'a [u32]>,
    pattern: &'a Pattern,
    sequential: Sequential,
    warm: &'a dyn WarmStart,
    backend: &'a dyn Backend,
    note: Option<String>,
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
    cfg: &PipelineConfig,
    plan: Plan<'_>,
    mut manifest: Manifest,
    staging: &mut Staging,
    events: Events<'_>,
) -> Result<RunReport> {
    let Plan {
        mut model,
        targets,
        calib,
        eval_ids,
        pattern,
        sequential,
        warm,
        backend,
        note,
        ropts,
        save_dtype,
        out_dir,
        start,
        force,
        fresh,
    } = plan;
    let c = &cfg.calibration;
    let seconds_before = manifest.seconds;
    let elapsed = || seconds_before + start.elapsed().as_secs_f64();
    let blocks = manifest.blocks;

    let dense = match (&cfg.eval, eval_ids) {
        (Some(e), Some(ids)) if e.dense && manifest.dense_ppl.is_none() => Some(eval_ppl(
            &model, ids, e.seq_len, e.windows, "dense", events,
        )?),
        _ => None,
    };
    // The first manifest pins the config and inputs from the start; a resumed one is
    // rewritten only when it gains the dense evaluation.
    if fresh || dense.is_some() {
        manifest.dense_ppl = manifest.dense_ppl.or(dense);
        manifest.seconds = elapsed();
        checkpoint::write_manifest(&staging.path, &manifest)?;
        // A dense evaluation is worth keeping (it can take longer than the pruning).
        staging.keep |= manifest.dense_ppl.is_some();
    }

    // Blocks finished by an earlier process: their pruned weights and masks.
    let mut masks: Vec<(String, OwnedTensor)> = Vec::new();
    for l in 0..manifest.blocks_done {
        let restored = checkpoint::read_block(&staging.path, l)?;
        let mut expected: Vec<String> = targets
            .get(&l)
            .map(|ks| {
                ks.iter()
                    .map(|k| k.weight_name(l).trim_end_matches(".weight").to_string())
                    .collect()
            })
            .unwrap_or_default();
        expected.sort();
        let got: Vec<String> = restored.iter().map(|r| r.0.clone()).collect();
        if got != expected {
            return Err(PipelineError::Checkpoint {
                path: staging.path.join("checkpoint"),
                reason: format!("block {l} holds targets {got:?}, the config selects {expected:?}"),
            });
        }
        for (name, mask, w) in restored {
            model.set_weight_f32(&format!("{name}.weight"), w)?;
            masks.push((name, mask));
        }
    }
    let mut layers = manifest.layers.clone();

    // Hidden states of the calibration windows, in micro-batches: from the embeddings, or
    // as the last finished block handed them on.
    let micro_batches = calib.len().div_ceil(c.micro_batch * c.seq_len);
    let mut hidden: Vec<Tensor> = if manifest.blocks_done == 0 {
        calib
            .chunks(c.micro_batch * c.seq_len)
            .map(|chunk| model.embed(chunk, chunk.len() / c.seq_len))
            .collect::<std::result::Result<_, _>>()?
    } else if manifest.blocks_done < blocks {
        checkpoint::read_hidden(&staging.path, manifest.blocks_done - 1, micro_batches)?
    } else {
        Vec::new()
    };

    let n_targets: usize = targets.values().map(|v| v.len()).sum();
    events(Event::PruneStart {
        blocks,
        targets: n_targets,
    });
    if !fresh {
        events(Event::Resumed {
            from_block: manifest.blocks_done,
            blocks,
            checkpoint: checkpoint::manifest_path(&staging.path),
        });
    }
    for l in manifest.blocks_done..blocks {
        events(Event::BlockStart { index: l });
        let mut finished: BlockTargets = Vec::new();
        if let Some(kinds) = targets.get(&l) {
            let groups: Vec<Vec<LinearKind>> = match sequential {
                Sequential::Block => vec![kinds.clone()],
                Sequential::Sublayer => [
                    vec![LinearKind::Q, LinearKind::K, LinearKind::V],
                    vec![LinearKind::O],
                    vec![LinearKind::Gate, LinearKind::Up],
                    vec![LinearKind::Down],
                ]
                .into_iter()
                .map(|g| {
                    g.into_iter()
                        .filter(|k| kinds.contains(k))
                        .collect::<Vec<_>>()
                })
                .filter(|g| !g.is_empty())
                .collect(),
            };
            for group in groups {
                let grams = capture_grams(&model, l, &hidden, &group, events)?;
                for &k in &group {
                    let dense_w = if cfg.output.save_grams {
                        weight_f32(&model, &k.weight_name(l))?
                    } else {
                        Vec::new()
                    };
                    let (rep, mask) = prune_layer(
                        &mut model,
                        l,
                        k,
                        &grams[&k.input()],
                        pattern,
                        warm,
                        backend,
                        ropts,
                        cfg.refine.reconstruct,
                        events,
                    )?;
                    if cfg.output.save_grams {
                        save_layer(
                            &staging.path,
                            &model,
                            &rep.name,
                            &grams[&k.input()],
                            &dense_w,
                        )?;
                    }
                    let wname = k.weight_name(l);
                    let pruned = OwnedTensor::f32(
                        model.weight(&wname)?.dims().to_vec(),
                        &weight_f32(&model, &wname)?,
                    );
                    finished.push((rep.name.clone(), mask.clone(), pruned));
                    masks.push((rep.name.clone(), mask));
                    events(Event::LayerDone(Box::new(rep.clone())));
                    layers.push(rep);
                }
            }
        }
        // The pruned block's outputs are what the next block sees (the last block's
        // outputs are not needed).
        if l + 1 < blocks {
            for h in hidden.iter_mut() {
                *h = model.block_forward(l, h)?;
            }
        }
        // Checkpoint: the block's files first, then the manifest that counts them; the
        // previous hidden states only once that manifest is durable.
        checkpoint::write_block(&staging.path, l, &finished)?;
        if l + 1 < blocks {
            checkpoint::write_hidden(&staging.path, l, &hidden)?;
        }
        checkpoint::fsync_dir(&staging.path.join("checkpoint"))?;
        manifest.blocks_done = l + 1;
        manifest.layers = layers.clone();
        manifest.seconds = elapsed();
        checkpoint::write_manifest(&staging.path, &manifest)?;
        staging.keep = true;
        if l > 0 {
            checkpoint::remove_hidden(&staging.path, l - 1)?;
        }
        events(Event::BlockDone { index: l });
    }
    drop(hidden);

    let pruned_ppl = match (&cfg.eval, eval_ids) {
        (Some(e), Some(ids)) => Some(eval_ppl(
            &model, ids, e.seq_len, e.windows, "pruned", events,
        )?),
        _ => None,
    };

    let reductions: Vec<f64> = layers.iter().map(|r| r.reduction).collect();
    let (mean_reduction, median_reduction) = mean_median(&reductions);
    let (pruned, total) = layers.iter().fold((0.0, 0.0), |(p, t), r| {
        let n = (r.shape[0] * r.shape[1]) as f64;
        (p + r.sparsity * n, t + n)
    });
    let mut report = RunReport {
        version: env!("CARGO_PKG_VERSION").into(),
        config: cfg.clone(),
        seed: c.seed,
        calibration_tokens: calib.len(),
        inputs: manifest.inputs.clone(),
        layers,
        dense_ppl: manifest.dense_ppl,
        pruned_ppl,
        mean_reduction,
        median_reduction,
        sparsity: if total > 0.0 { pruned / total } else { 0.0 },
        total_seconds: 0.0,
        peak_memory_bytes: None,
        backend: backend.name().to_string(),
        backend_note: note,
    };

    events(Event::Stage(format!("writing {}", out_dir.display())));
    if cfg.output.model {
        // `true`: a model directory left by a process killed while writing is replaced.
        sparseswaps_model::save_hf_dir(&model, &staging.path.join("model"), save_dtype, true)?;
    }
    let meta = HashMap::from([
        ("pattern".to_string(), pattern.to_string()),
        ("warm_start".to_string(), warm.name().to_string()),
        (
            "convention".to_string(),
            "u8, 1 = kept; N:M = N kept of M".to_string(),
        ),
    ]);
    write_safetensors_atomic(&staging.path.join("masks.safetensors"), &masks, Some(meta))?;
    if cfg.output.plot {
        let svg = crate::plot::error_plot_svg(&report.layers);
        write_atomic(&staging.path.join("error.svg"), svg.as_bytes())?;
    }
    report.total_seconds = elapsed();
    report.peak_memory_bytes = peak_memory_bytes();
    let json =
        serde_json::to_string_pretty(&report).map_err(|e| PipelineError::Input(e.to_string()))?;
    write_atomic(&staging.path.join("report.json"), json.as_bytes())?;
    let owner = staging.path.join("owner.pid");
    std::fs::remove_file(&owner).map_err(io(&owner))?;
    // Everything durable before the rename that makes it look finished.
    checkpoint::fsync_tree(&staging.path)?;
    let parent = match out_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if out_dir.exists() {
        if !force {
            return Err(PipelineError::OutputExists(out_dir.into()));
        }
        // Replace: move the old output aside first, so a failed rename loses nothing.
        let name = out_dir.file_name().unwrap_or_default().to_string_lossy();
        let old = parent.join(format!(".{name}.old-{}", std::process::id()));
        std::fs::rename(out_dir, &old).map_err(io(out_dir))?;
        if let Err(e) = std::fs::rename(&staging.path, out_dir) {
            let _ = std::fs::rename(&old, out_dir);
            return Err(io(out_dir)(e));
        }
        staging.keep = true;
        std::fs::remove_dir_all(&old).map_err(io(&old))?;
    } else {
        std::fs::rename(&staging.path, out_dir).map_err(io(out_dir))?;
        staging.keep = true;
    }
    checkpoint::fsync_dir(&parent)?;
    // The checkpoint is not an output. A process killed before this line leaves it in a
    // complete output directory, where it is harmless.
    let ck = out_dir.join("checkpoint");
    if let Err(e) = std::fs::remove_dir_all(&ck) {
        events(Event::Note(format!(
            "{}: could not remove the checkpoint: {e}",
            ck.display()
        )));
    }
    Ok(report)
}

/// Runs block `l` on every micro-batch and accumulates the Gram matrices of the inputs
/// that `group` reads.
fn capture_grams(
    model: &Model,
    l: usize,
    hidden: &[Tensor],
    group: &[LinearKind],
    events: Events<'_>,
) -> Result<HashMap<CapturePoint, GramAccumulator>> {
    // q/k/v (and gate/up) read the same input: one Gram per distinct input.
    let mut points: Vec<(CapturePoint, LinearKind)> = Vec::new();
    for &k in group {
        if !points.iter().any(|(p, _)| *p == k.input()) {
            points.push((k.input(), k));
        }
    }
    let mut grams: HashMap<CapturePoint, GramAccumulator> = HashMap::new();
    for (i, h) in hidden.iter().enumerate() {
        let (_, cap) = model.block_forward_capture(l, h)?;
        for &(point, k) in &points {
            let a = cap.get(point);
            let acc = grams
                .entry(point)
                .or_insert_with(|| GramAccumulator::new(a.cols));
            acc.add_batch(&a.data, a.rows)
                .map_err(|e| PipelineError::Gram {
                    layer: format!("input of {}", k.weight_name(l).trim_end_matches(".weight")),
                    error: e,
                })?;
        }
        events(Event::Captured {
            done: i + 1,
            total: hidden.len(),
        });
    }
    Ok(grams)
}

/// A linear layer's dense weights as row-major f32.
fn weight_f32(model: &Model, wname: &str) -> Result<Vec<f32>> {
    model
        .weight(wname)?
        .flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(|e| PipelineError::Input(format!("{wname}: reading weights: {e}")))
}

/// Saves a layer's dense weights and Gram matrix as `layers/<name>.safetensors`
/// (tensors `weight` and `gram`), so it can be re-run alone with `refine-layer`.
fn save_layer(
    dir: &Path,
    model: &Model,
    name: &str,
    gram: &GramAccumulator,
    w: &[f32],
) -> Result<()> {
    let layers = dir.join("layers");
    std::fs::create_dir_all(&layers).map_err(io(&layers))?;
    let dims = model.weight(&format!("{name}.weight"))?.dims().to_vec();
    let d_in = gram.d_in();
    let meta = HashMap::from([
        ("layer".to_string(), name.to_string()),
        ("tokens".to_string(), gram.tokens().to_string()),
    ]);
    write_safetensors_atomic(
        &layers.join(format!("{name}.safetensors")),
        &[
            ("weight".to_string(), OwnedTensor::f32(dims, w)),
            (
                "gram".to_string(),
                OwnedTensor::f32(vec![d_in, d_in], &gram.to_f32()),
            ),
        ],
        Some(meta),
    )?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn prune_layer(
    model: &mut Model,
    l: usize,
    k: LinearKind,
    gram: &GramAccumulator,
    pattern: &Pattern,
    warm: &dyn WarmStart,
    backend: &dyn Backend,
    ropts: &RefineOptions,
    reconstruct: bool,
    events: Events<'_>,
) -> Result<(LayerReport, OwnedTensor)> {
    let t = Instant::now();
    let wname = k.weight_name(l);
    let name = wname.trim_end_matches(".weight").to_string();
    let dims = model.weight(&wname)?.dims().to_vec();
    let (d_out, d_in) = (dims[0], dims[1]);
    let w = weight_f32(model, &wname)?;
    let g = gram.to_f32();
    let core = |e| PipelineError::Core {
        layer: name.clone(),
        error: e,
    };
    let problem = LayerProblem::new(&w, d_out, d_in, &g).map_err(core)?;
    let mut mask =
        warm.mask(&w, d_out, d_in, &g, pattern)
            .map_err(|reason| PipelineError::WarmStart {
                name: warm.name().into(),
                reason: format!("{name}: {reason}"),
            })?;
    mask.validate(pattern)
        .map_err(|e| PipelineError::WarmStart {
            name: warm.name().into(),
            reason: format!("{name}: returned an invalid mask: {e}"),
        })?;
    events(Event::LayerStart {
        name: name.clone(),
        rows: d_out,
    });
    let rep = backend
        .refine(&problem, pattern, &mut mask, ropts, &|n| {
            events(Event::Rows(n))
        })
        .map_err(core)?;
    // Masked (and, with reconstruction, re-fitted) weights: what the next block sees.
    let (pruned, figures) = crate::refit::finish_layer(&name, &problem, &mask, &rep, reconstruct)?;
    model.set_weight_f32(&wname, pruned)?;
    let zeros = mask.as_slice().iter().filter(|&&m| m == 0).count();
    let report = LayerReport {
        name,
        block: l,
        shape: [d_out, d_in],
        pattern: pattern.to_string(),
        warm_start: warm.name().into(),
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
        seconds: t.elapsed().as_secs_f64(),
        budget: figures,
    };
    Ok((report, OwnedTensor::u8(vec![d_out, d_in], mask.into_vec())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_distinct_and_seeded() {
        let ids: Vec<u32> = (0..1000).collect();
        let a = draw_windows(&ids, 5, 100, 1).unwrap();
        assert_eq!(a, draw_windows(&ids, 5, 100, 1).unwrap());
        assert_ne!(a, draw_windows(&ids, 5, 100, 2).unwrap());
        let mut starts: Vec<u32> = a.chunks(100).map(|w| w[0]).collect();
        assert!(a.chunks(100).all(|w| w[0] % 100 == 0 && w[99] == w[0] + 99));
        starts.sort();
        starts.dedup();
        assert_eq!(starts.len(), 5);
        assert!(draw_windows(&ids, 11, 100, 0).is_none());
    }
}
