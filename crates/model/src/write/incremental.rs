//! [`ModelWriter`]: a Hugging Face checkpoint written as the pipeline finishes its
//! parts (embedding, each block, final norm and head), in shards of a given size.

use super::layout::{block_tensors, hf_layout};
use super::{resolve, write_side_files, SaveDtype};
use crate::config::LlamaConfig;
use crate::error::{ModelError, Result};
use crate::model::{BlockWeights, Model};
use candle_core::{Device, Tensor};
use sparseswaps_tensor_io::shards::{ShardPlan, ShardWriter};
use sparseswaps_tensor_io::TensorIoError;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Values of a tensor encoded and written at a time (16 MB of f32 staging).
const CHUNK_VALUES: usize = 4 << 20;

/// A tensor-io error as this crate's (the message, one line naming the file, kept).
pub(crate) fn tio(e: TensorIoError) -> ModelError {
    match e {
        TensorIoError::Io { path, error } => ModelError::Io {
            path,
            source: error,
        },
        other => ModelError::InvalidArgument(other.to_string()),
    }
}

/// Writes a model's checkpoint into a directory part by part, in plan order:
/// [`ModelWriter::write_embedding`], [`ModelWriter::write_block`] for every block in
/// order, [`ModelWriter::write_head`], then [`ModelWriter::finish`] (config, tokenizer,
/// shard index).
///
/// The tensors and their shards are planned from the config when the writer is made, so
/// nothing but the part being written is converted at a time; each shard file is
/// published as soon as its last tensor is in (see [`ShardWriter`]).
#[derive(Debug)]
pub struct ModelWriter {
    /// The model's config: the family decides a block's checkpoint names.
    config: LlamaConfig,
    dir: PathBuf,
    dtype: SaveDtype,
    shards: ShardWriter,
}

impl ModelWriter {
    /// The plan of `model`'s checkpoint in `dtype` (resolved against the source dtype)
    /// with shards of `shard_size` bytes, for `dir` (named in errors). Block 0's biases
    /// stand for every block's (every supported family has the same layers in every
    /// block); a block that differs is refused when it is written.
    pub fn plan(model: &Model, dir: &Path, dtype: SaveDtype, shard_size: u64) -> Result<ShardPlan> {
        let dtype = resolve(dtype, &model.source().dtype);
        // Names and shapes only: reading block 0 would hold a block's f32 weights
        // beside the embedding while the run starts (3.4 GB for a 70B model).
        let template = match model.num_layers() {
            0 => None,
            _ => Some(model.block_shapes(0)?),
        };
        let meta = BTreeMap::from([("format".to_string(), "pt".to_string())]);
        ShardPlan::new(
            dir,
            hf_layout(model.config(), template.as_ref(), dtype)?,
            shard_size,
            &meta,
        )
        .map_err(tio)
    }

    /// A writer of `model`'s checkpoint into the existing directory `dir`, from the start.
    pub fn begin(model: &Model, dir: &Path, dtype: SaveDtype, shard_size: u64) -> Result<Self> {
        let plan = Self::plan(model, dir, dtype, shard_size)?;
        Ok(ModelWriter {
            config: model.config().clone(),
            dir: dir.into(),
            dtype: resolve(dtype, &model.source().dtype),
            shards: ShardWriter::create(dir, plan).map_err(tio)?,
        })
    }

    /// A writer that continues, in `dir`, the checkpoint an earlier writer (same model,
    /// dtype and shard size) left after its embedding and blocks `0..blocks_done`, synced
    /// with [`ModelWriter::sync`]. The files end up byte for byte as an uninterrupted
    /// writer leaves them (see [`ShardWriter::resume`]).
    pub fn resume(
        model: &Model,
        dir: &Path,
        dtype: SaveDtype,
        shard_size: u64,
        blocks_done: usize,
    ) -> Result<Self> {
        let plan = Self::plan(model, dir, dtype, shard_size)?;
        let first = if blocks_done < model.num_layers() {
            format!("model.layers.{blocks_done}.")
        } else {
            "model.norm.".to_string()
        };
        let written = plan
            .tensors()
            .iter()
            .position(|t| t.name.starts_with(&first))
            .ok_or_else(|| {
                ModelError::InvalidArgument(format!(
                    "{}: no tensor '{first}*' in the plan of the checkpoint",
                    dir.display()
                ))
            })?;
        Ok(ModelWriter {
            config: model.config().clone(),
            dir: dir.into(),
            dtype: resolve(dtype, &model.source().dtype),
            shards: ShardWriter::resume(dir, plan, written).map_err(tio)?,
        })
    }

    /// The dtype the weights are written in (never [`SaveDtype::Source`]).
    pub fn dtype(&self) -> SaveDtype {
        self.dtype
    }

    /// The plan: shards, their files, sizes.
    pub fn shard_plan(&self) -> &ShardPlan {
        self.shards.plan()
    }

    /// The block whose tensors come next, `None` when it is not a block's turn.
    pub fn next_block(&self) -> Option<usize> {
        let rest = self.shards.next_name()?.strip_prefix("model.layers.")?;
        rest.split_once('.')?.0.parse().ok()
    }

    fn put(&mut self, name: &str, t: &Tensor) -> Result<()> {
        let planned = self
            .shards
            .plan()
            .position(name)
            .map(|i| &self.shards.plan().tensors()[i]);
        if let Some(p) = planned.filter(|p| p.shape != t.dims()) {
            return Err(ModelError::BadTensor {
                name: name.into(),
                reason: format!(
                    "has shape {:?}, the checkpoint's plan (from the config) says {:?}",
                    t.dims(),
                    p.shape
                ),
            });
        }
        // Rows at a time: the written bytes (and their f32 staging) of a whole embedding
        // would double or triple its memory for a moment (2 GB for an 8B model's).
        let rows = t.dims().first().copied().unwrap_or(1).max(1);
        let per_row = (t.elem_count() / rows).max(1);
        let step = (CHUNK_VALUES / per_row).max(1);
        let value_bytes = match self.dtype {
            SaveDtype::F16 | SaveDtype::BF16 => 2,
            _ => 4,
        };
        let len = (t.elem_count() * value_bytes) as u64;
        self.shards.begin(name, len).map_err(tio)?;
        if t.dims().is_empty() {
            self.shards
                .append(&super::encode(name, t, self.dtype)?)
                .map_err(tio)?;
        } else {
            for r0 in (0..rows).step_by(step) {
                let part =
                    t.narrow(0, r0, step.min(rows - r0))
                        .map_err(|source| ModelError::Candle {
                            context: format!("reading tensor '{name}' for writing"),
                            source,
                        })?;
                self.shards
                    .append(&super::encode(name, &part, self.dtype)?)
                    .map_err(tio)?;
            }
        }
        self.shards.end().map_err(tio)
    }

    /// Writes the embedding `[vocab, hidden]` (first in the checkpoint).
    pub fn write_embedding(&mut self, embed: &Tensor) -> Result<()> {
        self.put("model.embed_tokens.weight", embed)
    }

    /// Writes block `l` (the next block in order).
    pub fn write_block(&mut self, l: usize, b: &BlockWeights) -> Result<()> {
        for (name, t) in block_tensors(&self.config, l, b)? {
            self.put(&name, &t)?;
        }
        Ok(())
    }

    /// Writes the final norm and, when the head is not tied to the embedding, `lm_head`.
    pub fn write_head(&mut self, norm: &Tensor, lm_head: Option<&Tensor>) -> Result<()> {
        self.put("model.norm.weight", norm)?;
        match (lm_head, self.shards.next_name()) {
            (Some(h), Some("lm_head.weight")) => self.put("lm_head.weight", h),
            _ => Ok(()),
        }
    }

    /// Makes everything written so far durable (before a checkpoint counts it).
    pub fn sync(&mut self) -> Result<()> {
        self.shards.sync().map_err(tio)
    }

    /// A tensor already written, read back from its shard as f32: the weights as the
    /// checkpoint holds them (rounded to its dtype).
    pub fn read_back(&self, name: &str) -> Result<Tensor> {
        let t = self.shards.read_back(name).map_err(tio)?;
        let data = sparseswaps_tensor_io::widen::to_f32(&self.dir, name, t.dtype, &t.bytes)
            .map_err(|e| tio(e.into()))?;
        Tensor::from_vec(data, t.shape, &Device::Cpu).map_err(|source| ModelError::Candle {
            context: format!("tensor '{name}' read back from {}", self.dir.display()),
            source,
        })
    }

    /// Checks that every tensor was written, writes the shard index (when sharded),
    /// `config.json`, the tokenizer and, from a Hugging Face source, its generation and
    /// tokenizer configs.
    pub fn finish(self, model: &Model) -> Result<()> {
        let dir = self.dir.clone();
        let dtype = self.dtype;
        self.shards.finish().map_err(tio)?;
        write_side_files(model, &dir, dtype)
    }

    /// Removes the shard being written (after an error, when nothing will resume it).
    pub fn discard(self) {
        self.shards.discard();
    }
}
