//! `sparseswaps convert`: a GGUF file or HF directory in, an HF directory out.

use anyhow::Result;
use std::path::PathBuf;

/// Arguments of `convert`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model: a GGUF file or a Hugging Face directory.
    model: PathBuf,
    /// Output directory (Hugging Face layout: config.json, model.safetensors, tokenizer.json).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Weight dtype: f32, bf16, f16, or `source` (the input's float dtype; f32 for GGUF).
    #[arg(long, default_value = "source")]
    dtype: String,
    /// Replace DIR if it exists.
    #[arg(long)]
    force: bool,
}

/// Runs the subcommand.
pub fn run(args: Args) -> Result<()> {
    let c = sparseswaps_pipeline::tools::convert(&args.model, &args.out, &args.dtype, args.force)?;
    println!(
        "wrote {} ({}, {} layers, hidden {}) in {:.1} s",
        args.out.display(),
        c.architecture,
        c.layers,
        c.hidden,
        c.seconds
    );
    Ok(())
}
