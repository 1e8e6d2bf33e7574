//! Where a loaded model's weights stay: in their files, read one tensor at a time when a
//! block or the head asks for it.
//!
//! A [`WeightSource`] knows every tensor's name and shape from the file headers and
//! reads a tensor's bytes only on request, with positioned reads (no long-lived memory
//! map), so the pages of blocks not being processed are never resident. The HF
//! directory source is in `crate::st_index`, the GGUF one in `crate::gguf`; here are the
//! trait, an in-memory source (GGUF bytes from a reader) and the two adapters that let
//! [`crate::assemble`] build from a source: reading, and a dry run on shapes alone;
//! and [`model_from_source`], which puts a [`Model`] over a source.

use crate::assemble::{assemble_block, assemble_head, TensorSource};
use crate::config::LlamaConfig;
use crate::error::{CandleContext, ModelError, Result};
use crate::model::{BlockReader, BlockWeights, Blocks, Model, ModelSource, TableReader, Tables};
use candle_core::{DType, Device, Tensor};
use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokenizers::Tokenizer;

/// Tensors by Hugging Face name, read on request.
pub(crate) trait WeightSource: Debug + Send + Sync {
    /// The file or directory the tensors come from, for error messages.
    fn root(&self) -> &Path;
    /// The Hugging Face names of every tensor the source holds.
    fn names(&self) -> Vec<String>;
    /// The shape of a tensor in Hugging Face layout, `None` when there is none.
    fn shape(&self, name: &str) -> Option<Vec<usize>>;
    /// Reads a tensor widened (or dequantized) to f32, in Hugging Face layout.
    fn read_f32(&self, name: &str) -> Result<Option<Tensor>>;
    /// Reads a tensor in its stored dtype where candle holds it (bf16, f16, f32); a
    /// quantized tensor is dequantized to f32.
    fn read_stored(&self, name: &str) -> Result<Option<Tensor>> {
        self.read_f32(name)
    }
}

/// Tensors already in memory (f32, HF layout): the source of a model read whole from a
/// reader (`load_gguf_from`).
#[derive(Debug)]
pub(crate) struct MemorySource {
    pub(crate) root: PathBuf,
    pub(crate) tensors: HashMap<String, Tensor>,
}

impl WeightSource for MemorySource {
    fn root(&self) -> &Path {
        &self.root
    }

    fn names(&self) -> Vec<String> {
        self.tensors.keys().cloned().collect()
    }

    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.tensors.get(name).map(|t| t.dims().to_vec())
    }

    fn read_f32(&self, name: &str) -> Result<Option<Tensor>> {
        Ok(self.tensors.get(name).cloned())
    }
}

/// Reads tensors from a source for assembly: f32, or the stored dtype (the head).
pub(crate) struct Reading<'a> {
    pub(crate) src: &'a dyn WeightSource,
    pub(crate) stored: bool,
}

impl TensorSource for Reading<'_> {
    fn root(&self) -> &Path {
        self.src.root()
    }

    fn has(&self, name: &str) -> bool {
        self.src.shape(name).is_some()
    }

    fn fetch(&mut self, name: &str) -> Result<Option<Tensor>> {
        if self.stored {
            self.src.read_stored(name)
        } else {
            self.src.read_f32(name)
        }
    }
}

/// Hands out every tensor as a zero of its shape with zero strides (one value, no
/// allocation): assembling a block from it checks names and shapes against the config
/// without reading a byte, so a load reports a missing or misshapen tensor of any block
/// at once, as an eager load did.
/// It records the names it handed out, so that a tensor no block asked for is found.
pub(crate) struct Shapes<'a>(pub(crate) &'a dyn WeightSource, pub(crate) HashSet<String>);

impl TensorSource for Shapes<'_> {
    fn root(&self) -> &Path {
        self.0.root()
    }

    fn has(&self, name: &str) -> bool {
        self.0.shape(name).is_some()
    }

    fn fetch(&mut self, name: &str) -> Result<Option<Tensor>> {
        let Some(shape) = self.0.shape(name) else {
            return Ok(None);
        };
        self.1.insert(name.to_string());
        Tensor::zeros((), DType::F32, &Device::Cpu)
            .and_then(|z| z.broadcast_as(shape))
            .map(Some)
            .ctx(|| format!("{}: shape of tensor '{name}'", self.0.root().display()))
    }
}

/// Reads blocks from a source through [`assemble_block`].
#[derive(Debug)]
struct SourceBlocks {
    config: LlamaConfig,
    source: Arc<dyn WeightSource>,
}

impl BlockReader<BlockWeights> for SourceBlocks {
    fn read_block(&self, layer: usize) -> Result<BlockWeights> {
        let mut src = Reading {
            src: self.source.as_ref(),
            stored: false,
        };
        assemble_block(&self.config, layer, &mut src)
    }

    fn block_shapes(&self, layer: usize) -> Result<BlockWeights> {
        let mut dry = Shapes(self.source.as_ref(), HashSet::new());
        assemble_block(&self.config, layer, &mut dry)
    }
}

/// Reads the vocabulary tables from a source, in their stored dtype.
#[derive(Debug)]
struct SourceTables(Arc<dyn WeightSource>);

impl TableReader for SourceTables {
    fn read_table(&self, name: &str) -> Result<Tensor> {
        self.0
            .read_stored(name)?
            .ok_or_else(|| ModelError::MissingTensor {
                path: self.0.root().into(),
                name: name.into(),
            })
    }
}

/// A model over `weights`: reads the head (embedding and `lm_head` in their stored
/// dtype, final norm in f32) and checks every block's tensors by their shapes, reading
/// no block. `config.tie_word_embeddings` is set from what the weights are, not what the
/// config claimed: the writer keys on it.
pub(crate) fn model_from_source(
    mut config: LlamaConfig,
    tokenizer: Tokenizer,
    source: ModelSource,
    weights: Arc<dyn WeightSource>,
) -> Result<Model> {
    let (embed_tokens, norm, lm_head) = assemble_head(
        &config,
        &mut Reading {
            src: weights.as_ref(),
            stored: true,
        },
    )?;
    let norm = norm
        .to_dtype(DType::F32)
        .ctx(|| format!("{}: model.norm.weight to f32", weights.root().display()))?;
    config.tie_word_embeddings = lm_head.is_none();
    let mut shapes = Vec::with_capacity(config.num_hidden_layers);
    let mut dry_run = Shapes(weights.as_ref(), HashSet::new());
    for l in 0..config.num_hidden_layers {
        let dry = assemble_block(&config, l, &mut dry_run)?;
        shapes.push(dry.linear.iter().map(|t| t.dims().to_vec()).collect());
    }
    // A block tensor no block asked for: the checkpoint is of another family than its
    // config says (a Qwen3 checkpoint declared Qwen2 would otherwise run without its
    // q/k norms).
    let mut left: Vec<String> = weights
        .names()
        .into_iter()
        .filter(|n| n.starts_with("model.layers.") && !dry_run.1.contains(n))
        .collect();
    left.sort();
    if let Some(name) = left.first() {
        return Err(ModelError::Unsupported {
            path: weights.root().into(),
            what: format!(
                "tensor '{name}': a {} block has no such tensor (is the config's architecture right?)",
                config.architecture.hf_class()
            ),
        });
    }
    // Which tensors the tables are read from again once released: a tied checkpoint
    // that kept only `lm_head.weight` serves it as the embedding.
    const EMBED: &str = "model.embed_tokens.weight";
    let embed_name = if weights.shape(EMBED).is_some() {
        EMBED
    } else {
        "lm_head.weight"
    };
    let tables = Tables::new(
        Arc::new(SourceTables(weights.clone())),
        (embed_name.to_string(), embed_tokens),
        lm_head.map(|h| ("lm_head.weight".to_string(), h)),
    );
    let reader = SourceBlocks {
        config: config.clone(),
        source: weights,
    };
    Ok(Model {
        config,
        tables,
        blocks: Blocks::new(Arc::new(reader), shapes),
        norm,
        tokenizer,
        source,
    })
}
