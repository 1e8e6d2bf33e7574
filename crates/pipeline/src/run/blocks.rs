//! The block loop: for each block, the Gram matrices of its targets' inputs from the
//! calibration hidden states, each target through the layer path, the pruned block's
//! outputs handed to the next block, the block written to the staged model's shards, and
//! a checkpoint.

use super::targets::{groups, layer_name, sorted_names, Targets};
use crate::compute::Compute;
use crate::config::Sequential;
use crate::error::{io_err as io, PipelineError, Result};
use crate::events::{Event, Events};
use crate::layer::{prune_layer, LayerJob};
use crate::report::LayerReport;
use crate::staging::{self, BlockTargets, Manifest, Staging};
use crate::warm::WarmStart;
use sparseswaps_core::{Pattern, RefineOptions};
use sparseswaps_model::{CapturePoint, DType, LinearKind, Model, ModelWriter, Tensor};
use sparseswaps_reconstruct::{ReconstructOptions, RefitSwapOptions};
use sparseswaps_tensor_io::{write_safetensors_atomic, OwnedTensor};
use std::collections::HashMap;
use std::path::Path;

/// What the block loop works with.
pub struct Plan<'a> {
    /// Target layers by block.
    pub targets: &'a Targets,
    /// The calibration windows, concatenated.
    pub calibration: &'a [u32],
    /// Tokens per window.
    pub seq_len: usize,
    /// Windows run through a block at once.
    pub micro_batch: usize,
    /// Element type the hidden states are kept in between blocks (`calibration.hidden_dtype`).
    pub hidden_dtype: DType,
    /// The sparsity pattern.
    pub pattern: &'a Pattern,
    /// Block or sublayer order.
    pub sequential: Sequential,
    /// The warm start.
    pub warm: &'a dyn WarmStart,
    /// Backend and Gram device.
    pub compute: &'a Compute,
    /// Refinement options.
    pub refine: &'a RefineOptions,
    /// Re-fit the kept weights (`refine.reconstruct`).
    pub reconstruct: Option<ReconstructOptions>,
    /// Swaps of the re-fitted objective (`refine.objective = "refit"`).
    pub refit: Option<RefitSwapOptions>,
    /// Save every target's dense weights and Gram under `layers/`.
    pub save_grams: bool,
}

/// Checks that the blocks an earlier process finished (`0..blocks_done`) hold the
/// targets the config selects. Their masks stay in the checkpoint (the final masks file
/// is written from it) and their pruned weights in the staged model's shards.
pub fn check_restored(staging: &Staging, targets: &Targets, blocks_done: usize) -> Result<()> {
    for l in 0..blocks_done {
        let restored = staging::read_block(staging.path(), l)?;
        let expected = sorted_names(targets, l);
        let got: Vec<String> = restored.iter().map(|r| r.0.clone()).collect();
        if got != expected {
            return Err(PipelineError::Checkpoint {
                path: staging.path().join("checkpoint"),
                reason: format!("block {l} holds targets {got:?}, the config selects {expected:?}"),
            });
        }
    }
    Ok(())
}

/// Drops block `l`'s weights from memory once it is written: the staged shards hold
/// them now (and serve `--resume` and the pruned evaluation).
fn release_block(model: &mut Model, l: usize) {
    model.release_block(l);
}

/// Prunes blocks `manifest.blocks_done..manifest.blocks`, writing each to the staged
/// model through `writer` and checkpointing it with its masks, appending their report
/// rows to `manifest.layers`.
#[allow(clippy::too_many_arguments)]
pub fn prune_blocks(
    model: &mut Model,
    writer: &mut ModelWriter,
    plan: &Plan<'_>,
    manifest: &mut Manifest,
    staging: &mut Staging,
    elapsed: &dyn Fn() -> f64,
    events: Events<'_>,
) -> Result<()> {
    let blocks = manifest.blocks;
    // Hidden states of the calibration windows, in micro-batches: from the embeddings, or
    // as the last finished block handed them on.
    let tokens = plan.micro_batch * plan.seq_len;
    let micro_batches = plan.calibration.len().div_ceil(tokens);
    let mut hidden: Vec<Tensor> = if manifest.blocks_done == 0 {
        plan.calibration
            .chunks(tokens)
            .map(|chunk| {
                let h = model.embed(chunk, chunk.len() / plan.seq_len)?;
                kept(h, plan.hidden_dtype)
            })
            .collect::<Result<_>>()?
    } else if manifest.blocks_done < blocks {
        let read = staging::read_hidden(staging.path(), manifest.blocks_done - 1, micro_batches)?;
        read.into_iter()
            .map(|h| kept(h, plan.hidden_dtype))
            .collect::<Result<_>>()?
    } else {
        Vec::new()
    };
    model.release_tables();
    for l in manifest.blocks_done..blocks {
        events(Event::BlockStart { index: l });
        let mut finished: BlockTargets = Vec::new();
        let mut reports: Vec<LayerReport> = Vec::new();
        if let Some(kinds) = plan.targets.get(&l) {
            for group in groups(kinds, plan.sequential) {
                let grams = capture_grams(model, plan.compute, l, &hidden, &group, events)?;
                for &k in &group {
                    let (rep, done) = prune_target(
                        model,
                        plan,
                        staging.path(),
                        l,
                        k,
                        &grams[&k.input()],
                        events,
                    )?;
                    finished.push(done);
                    events(Event::LayerDone(Box::new(rep.clone())));
                    reports.push(rep);
                }
            }
        }
        // The pruned block's outputs are what the next block sees (the last block's
        // outputs are not needed).
        if l + 1 < blocks {
            for h in hidden.iter_mut() {
                *h = kept(model.block_forward(l, &widened(h)?)?, plan.hidden_dtype)?;
            }
        }
        manifest.layers.extend(reports);
        let block = model.block(l)?;
        writer.write_block(l, &block)?;
        drop(block);
        writer.sync()?;
        checkpoint(staging, manifest, l, &finished, &hidden, elapsed)?;
        release_block(model, l);
        events(Event::BlockDone { index: l });
    }
    Ok(())
}

/// Hidden states in the type they are kept in between blocks.
fn kept(h: Tensor, dtype: DType) -> Result<Tensor> {
    h.to_dtype(dtype)
        .map_err(|e| PipelineError::Input(format!("hidden states to {dtype:?}: {e}")))
}

/// Hidden states as f32, the type a block's forward reads (a no-op copy for f32).
fn widened(h: &Tensor) -> Result<Tensor> {
    kept(h.clone(), DType::F32)
}

/// Checkpoints block `l` (its shards already synced): the block's files first, then the
/// manifest that counts them; the previous hidden states only once that manifest is
/// durable.
fn checkpoint(
    staging: &mut Staging,
    manifest: &mut Manifest,
    l: usize,
    finished: &BlockTargets,
    hidden: &[Tensor],
    elapsed: &dyn Fn() -> f64,
) -> Result<()> {
    let dir = staging.path().to_path_buf();
    staging::write_block(&dir, l, finished)?;
    if l + 1 < manifest.blocks {
        staging::write_hidden(&dir, l, hidden)?;
    }
    staging::fsync_dir(&dir.join("checkpoint"))?;
    manifest.blocks_done = l + 1;
    manifest.seconds = elapsed();
    staging::write_manifest(&dir, manifest)?;
    staging.keep();
    if l > 0 {
        staging::remove_hidden(&dir, l - 1)?;
    }
    Ok(())
}

/// A capture point's Gram matrix, converted to f32 once for all the targets reading it.
pub struct Gram {
    /// Row-major `d_in x d_in`.
    pub data: Vec<f32>,
    /// Calibration tokens accumulated.
    pub tokens: u64,
}

/// Runs block `l` on every micro-batch and accumulates the Gram matrices of the inputs
/// that `group` reads, on the device of `compute`.
fn capture_grams(
    model: &Model,
    compute: &Compute,
    l: usize,
    hidden: &[Tensor],
    group: &[LinearKind],
    events: Events<'_>,
) -> Result<HashMap<CapturePoint, Gram>> {
    // q/k/v (and gate/up) read the same input: one Gram per distinct input.
    let mut points: Vec<(CapturePoint, LinearKind)> = Vec::new();
    for &k in group {
        if !points.iter().any(|(p, _)| *p == k.input()) {
            points.push((k.input(), k));
        }
    }
    let at = |k: LinearKind| format!("input of {}", layer_name(l, k));
    let mut builders = HashMap::new();
    for (i, h) in hidden.iter().enumerate() {
        let (_, cap) = model.block_forward_capture(l, &widened(h)?)?;
        for &(point, k) in &points {
            let a = cap.get(point);
            let acc = match builders.entry(point) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(compute.gram(a.cols).map_err(|f| f.at(at(k)))?)
                }
            };
            acc.add(&a.data, a.rows).map_err(|f| f.at(at(k)))?;
        }
        events(Event::Captured {
            done: i + 1,
            total: hidden.len(),
        });
    }
    let mut grams = HashMap::new();
    for (point, k) in points {
        if let Some(b) = builders.remove(&point) {
            let tokens = b.tokens();
            let data = b.finish().map_err(|f| f.at(at(k)))?;
            grams.insert(point, Gram { data, tokens });
        }
    }
    Ok(grams)
}

/// Prunes target `k` of block `l` through the layer path and puts its final weights
/// into `model`. Returns its report row and its checkpoint entry (name and mask).
fn prune_target(
    model: &mut Model,
    plan: &Plan<'_>,
    dir: &Path,
    l: usize,
    k: LinearKind,
    gram: &Gram,
    events: Events<'_>,
) -> Result<(LayerReport, (String, OwnedTensor))> {
    let name = layer_name(l, k);
    let wname = k.weight_name(l);
    let dims = model.weight_shape(&wname)?;
    let dense = weight_f32(model, &wname)?;
    let outcome = prune_layer(
        &LayerJob {
            label: &name,
            weights: &dense,
            d_out: dims[0],
            d_in: dims[1],
            gram: &gram.data,
            pattern: plan.pattern,
            warm: plan.warm,
            backend: plan.compute.backend(),
            refine: plan.refine,
            reconstruct: plan.reconstruct,
            refit: plan.refit,
        },
        events,
    )?;
    if plan.save_grams {
        save_layer(dir, &name, &dims, gram, &dense)?;
    }
    let report = outcome.report(&name, l, plan.pattern, plan.warm.name());
    // The layer path's weights are what the next block sees and what is written.
    model.set_weight_f32(&wname, outcome.weights)?;
    let mask = OwnedTensor::u8(dims, outcome.mask.into_vec());
    Ok((report, (name, mask)))
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
fn save_layer(dir: &Path, name: &str, dims: &[usize], gram: &Gram, w: &[f32]) -> Result<()> {
    let layers = dir.join("layers");
    std::fs::create_dir_all(&layers).map_err(io(&layers))?;
    let d_in = dims[1];
    let meta = HashMap::from([
        ("layer".to_string(), name.to_string()),
        ("tokens".to_string(), gram.tokens.to_string()),
    ]);
    write_safetensors_atomic(
        &layers.join(format!("{name}.safetensors")),
        &[
            ("weight".to_string(), OwnedTensor::f32(dims.to_vec(), w)),
            (
                "gram".to_string(),
                OwnedTensor::f32(vec![d_in, d_in], &gram.data),
            ),
        ],
        Some(meta),
    )?;
    Ok(())
}
