//! `sparseswaps compare RUN_DIR...`: runs side by side from their `report.json`.

use anyhow::{Context, Result};
use sparseswaps_pipeline::compare::{compare_dirs, render, Format};
use sparseswaps_pipeline::compare_plot::ppl_plot_svg;
use std::path::PathBuf;

/// Arguments of `compare`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run output directories, each holding the `report.json` of a `run`.
    #[arg(required = true, value_name = "RUN_DIR")]
    dirs: Vec<PathBuf>,
    /// `md` (a Markdown table to paste into docs), `csv` or `json`.
    #[arg(long, default_value = "md")]
    format: Format,
    /// Add the per-kind breakdown (q_proj … down_proj) of every run.
    #[arg(long)]
    by_kind: bool,
    /// Write to this file instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Also write an SVG of pruned perplexity against sparsity (one line per method).
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
}

/// Runs the subcommand.
pub fn run(args: Args) -> Result<()> {
    let rows = compare_dirs(&args.dirs, args.by_kind)?;
    let text = render(&rows, args.format);
    if let Some(p) = &args.plot {
        let svg = ppl_plot_svg(&rows)
            .ok_or_else(|| anyhow::anyhow!("--plot: no run given has a pruned perplexity"))?;
        std::fs::write(p, svg).with_context(|| p.display().to_string())?;
    }
    match &args.out {
        Some(p) => std::fs::write(p, text).with_context(|| p.display().to_string())?,
        None => print!("{text}"),
    }
    Ok(())
}
