//! # sparseswaps-model
//!
//! Decoder-only language models (Llama 2/3, Mistral, Qwen2/2.5, Qwen3, Gemma 2, Gemma 3,
//! Phi-3, SmolLM; one file per family in [`arch`]) for the sparseswaps pruning pipeline,
//! on the CPU with f32 activations:
//!
//! - [`load`](fn@load): a Hugging Face directory (`config.json`, one or several `*.safetensors`
//!   with `model.safetensors.index.json`, `tokenizer.json`; f32, f16 or bf16) or a GGUF
//!   file (dequantized to f32, Q/K un-permuted to HF layout, tokenizer built from its
//!   metadata). Loading reads the headers, the config, the tokenizer and the head; the
//!   weights of the decoder blocks stay in the files;
//! - streaming: a block's weights are read (positioned reads, no long-lived memory map)
//!   and widened to f32 when the block is used, and dropped when the next block is read,
//!   so a walk over the blocks holds one block in f32 at a time
//!   ([`live_f32_blocks`] counts them). The embedding and `lm_head` stay in their stored
//!   dtype (rows gathered, head applied in chunks). A block changed with
//!   [`Model::set_weight`] stays *resident* until [`Model::release_block`], which
//!   discards the change: write the block out first;
//! - the block-level interface the pipeline drives: [`Model::embed`],
//!   [`Model::block_forward_capture`] (block output and the input of each linear
//!   layer), [`Model::weight`] / [`Model::set_weight`] by HF name, [`Model::logits`];
//! - [`perplexity_of_file`] over consecutive windows, walked block by block (see [`ppl`]
//!   for the exact rules);
//! - [`save_hf_dir`]: an HF directory transformers loads, written atomically, in shards
//!   of 5 GB (transformers' default) or of the size [`save_hf_dir_sharded`] is given;
//!   [`ModelWriter`]: the same directory written part by part (embedding, each block,
//!   head) as a pipeline finishes them, planned from the config, resumable.
//!
//! What it is not for: generation at speed (there is no KV cache), GPUs, training.
//! It never prints; long operations report progress through a callback.
//!
//! The block-by-block loop a pruning pipeline runs:
//!
//! ```no_run
//! use sparseswaps_model::{load, LinearKind};
//! # fn main() -> sparseswaps_model::Result<()> {
//! let mut model = load("model.gguf".as_ref())?;
//! let ids = model.encode("calibration text ...")?;
//! let mut hidden = model.embed(&ids[..256], 2)?; // 2 sequences of 128 tokens
//! for layer in 0..model.num_layers() {
//!     let (_, capture) = model.block_forward_capture(layer, &hidden)?;
//!     for kind in LinearKind::ALL {
//!         let x = capture.input_of(kind); // [tokens, d_in], row-major f32
//!         let name = kind.weight_name(layer);
//!         let w = model.weight(&name)?.flatten_all()?.to_vec1::<f32>()?;
//!         let pruned: Vec<f32> = w; // ... Gram from x, mask, apply ...
//!         # let _ = x;
//!         model.set_weight_f32(&name, pruned)?; // the block is now resident
//!     }
//!     // Recompute the block with its pruned weights for the next block's input.
//!     hidden = model.block_forward(layer, &hidden)?;
//!     // ... write the pruned block out, then let it go back to the files:
//!     model.release_block(layer);
//! }
//! let _logits = model.logits(&hidden)?;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

pub mod arch;
mod assemble;
pub mod config;
pub mod error;
pub mod gguf;
pub mod load;
pub mod model;
pub mod ppl;
pub mod rope;
mod source;
mod st_index;
pub mod tokenize;
pub mod window;
pub mod write;

pub use arch::{Activation, BlockSpec, NormForm, RopeParams};
pub use candle_core::{DType, Device, Tensor};
pub use config::{Architecture, LlamaConfig, RopeScaling};
pub use error::{ModelError, Result};
pub use gguf::load_gguf;
pub use load::{load, load_hf_dir};
pub use model::{
    live_f32_blocks, peak_live_f32_blocks, reset_peak_live_f32_blocks, Activations, BlockCapture,
    BlockWeights, CapturePoint, LinearKind, LiveBlock, Model, ModelSource, SourceDtype,
};
pub use ppl::{perplexity, perplexity_of_file, read_text, Perplexity};
pub use tokenizers::Tokenizer;
pub use window::SlidingWindow;
pub use write::{save_hf_dir, save_hf_dir_sharded, ModelWriter, SaveDtype, DEFAULT_SHARD_SIZE};
