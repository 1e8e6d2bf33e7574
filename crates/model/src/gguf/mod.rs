//! GGUF loading: metadata to config, tensors dequantized to f32 and renamed to Hugging
//! Face names (Q and K un-permuted back to HF layout), tokenizer built from the
//! `tokenizer.ggml.*` metadata.
//!
//! One job per module, each used only by the ones after it: `meta` (typed metadata
//! access), `quant` (the GGML types read and their dequantization), `header` (the
//! bounded header reader), `config` (metadata to [`LlamaConfig`]), `layout` (GGUF names
//! and Q/K order to Hugging Face's), `tokenizer`; this file drives them.

mod config;
mod family;
mod header;
mod layout;
mod meta;
mod quant;
mod tokenizer;

pub use header::read_gguf_header;

use crate::assemble::{assemble, TensorMap};
use crate::config::LlamaConfig;
use crate::error::{io_err, ModelError, Result};
use crate::model::{Model, ModelSource, SourceDtype};
use candle_core::quantized::gguf_file::Content;
use candle_core::Tensor;
use std::collections::HashMap;
use std::fs;
use std::io::{BufReader, Read, Seek};
use std::path::Path;

/// Loads a GGUF file (architectures `llama`, `qwen2`, `qwen3`, `gemma2`, `gemma3` and
/// `phi3`), dequantized to f32.
pub fn load_gguf(path: &Path) -> Result<Model> {
    if !path.exists() {
        return Err(ModelError::NotFound { path: path.into() });
    }
    let file = fs::File::open(path).map_err(io_err(path))?;
    load_gguf_from(path, BufReader::new(file))
}

/// Loads a GGUF model from any seekable reader (a file, or bytes in memory in tests and
/// fuzzing); `path` is only used in messages.
pub fn load_gguf_from<R: Read + Seek>(path: &Path, mut reader: R) -> Result<Model> {
    let ct = read_gguf_header(path, &mut reader)?;
    let m = meta::Meta {
        path,
        md: &ct.metadata,
    };
    let (config, permuted) = config::config_from_meta(&m, &ct)?;
    let (tensors, quant) = read_tensors(path, &ct, &mut reader, &config, permuted)?;
    let tokenizer = tokenizer::tokenizer_from_gguf(&m)?;
    let (embed_tokens, blocks, norm, lm_head) = assemble(
        &config,
        TensorMap {
            root: path.into(),
            tensors,
        },
    )?;
    Ok(Model {
        config,
        embed_tokens,
        blocks,
        norm,
        lm_head,
        tokenizer,
        source: ModelSource {
            path: path.into(),
            dtype: SourceDtype::Gguf(quant.unwrap_or_else(|| "unknown".into())),
            hf_config: None,
            tokenizer_json: None,
        },
    })
}

/// Reads the model's tensors dequantized to f32, by HF name and in HF layout (Q and K
/// un-permuted when `permuted`), and the GGML type of the first Q weight (the file's
/// quantization as a writer reports it).
fn read_tensors<R: Read + Seek>(
    path: &Path,
    ct: &Content,
    reader: &mut R,
    config: &LlamaConfig,
    permuted: bool,
) -> Result<(HashMap<String, Tensor>, Option<String>)> {
    let mut tensors = HashMap::new();
    let mut quant = None;
    for (g, h) in layout::hf_names(ct, config) {
        let info = ct
            .tensor_infos
            .get(&g)
            .ok_or_else(|| ModelError::MissingTensor {
                path: path.into(),
                name: g.clone(),
            })?;
        if (g.ends_with("attn_q.weight") || g.ends_with("attn_qkv.weight")) && quant.is_none() {
            quant = Some(format!("{:?}", info.ggml_dtype));
        }
        let mut t = quant::dequantize(path, ct, reader, &g)?;
        if permuted && layout::is_permuted(&g) {
            t = layout::unpermute_qk(path, config, &g, &t)?;
        }
        t = layout::norm_shift(config, &g, t)?;
        tensors.insert(h, t);
    }
    Ok((tensors, quant))
}
