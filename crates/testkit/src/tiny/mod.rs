//! A tiny random Llama-family model written by the tests themselves: an HF directory
//! (several shards and an index) and the same weights as a GGUF file, with a plain-Rust
//! f64 reference forward (the model crate's tests; the pipeline's fault tests).
//! Behind the `tiny-model` feature, which brings candle, tokenizers and safetensors.

mod reference;
mod spec;
mod write;

pub use reference::reference_logits;
pub use spec::*;
pub use write::{write_gguf, write_hf};
