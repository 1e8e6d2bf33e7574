//! `sparseswaps convert`: a GGUF file or HF directory in, an HF directory out.

use anyhow::Result;
use sparseswaps_model::{load, save_hf_dir, ModelError, SaveDtype};
use std::path::PathBuf;
use std::time::Instant;

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
    let dtype: SaveDtype = args.dtype.parse()?;
    // Refuse before the (slow) load.
    if args.out.exists() && !args.force {
        return Err(ModelError::OutputExists { path: args.out }.into());
    }
    let t0 = Instant::now();
    let model = load(&args.model)?;
    save_hf_dir(&model, &args.out, dtype, args.force)?;
    let cfg = model.config();
    println!(
        "wrote {} ({}, {} layers, hidden {}) in {:.1} s",
        args.out.display(),
        cfg.architecture.hf_class(),
        cfg.num_hidden_layers,
        cfg.hidden_size,
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
