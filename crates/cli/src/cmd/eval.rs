//! `sparseswaps eval`: perplexity of a model on a text file.

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;

/// Arguments of `eval`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model: a GGUF file or a Hugging Face directory.
    model: PathBuf,
    /// UTF-8 text; tokenized whole without a BOS, cut into consecutive windows from the start.
    #[arg(long, value_name = "FILE")]
    text: PathBuf,
    /// Tokens per window.
    #[arg(long, default_value_t = 512)]
    seq_len: usize,
    /// Most windows to evaluate (fewer when the text is shorter).
    #[arg(long, default_value_t = 64)]
    windows: usize,
}

/// Runs the subcommand.
pub fn run(args: Args) -> Result<()> {
    let bar = ProgressBar::new(args.windows as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:40} {pos}/{len} steps (window × block) {elapsed_precise} (eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let res = sparseswaps_pipeline::tools::eval(
        &args.model,
        &args.text,
        args.seq_len,
        args.windows,
        &mut |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        },
    );
    bar.finish_and_clear();
    let p = res?;
    println!(
        "perplexity {:.4} (mean NLL {:.5} nats) over {} tokens in {} windows of {}; {:.1} s (load {:.1} s)",
        p.ppl,
        p.mean_nll,
        p.tokens,
        p.windows,
        args.seq_len,
        p.eval_seconds,
        p.load_seconds
    );
    Ok(())
}
