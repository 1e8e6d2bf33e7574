//! `sparseswaps`: the command-line tool. Parsing, progress and exit codes live here;
//! everything else is in the library crates.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod cmd;

/// Prune LLM layers with exact 1-swap mask refinement (SparseSwaps).
#[derive(Debug, Parser)]
#[command(name = "sparseswaps", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Prune a model end to end from a TOML pipeline (the main job).
    Run(cmd::run::Args),
    /// Refine the mask of one linear layer from its weights and Gram matrix.
    // Boxed: its many flags make it far larger than the other variants.
    RefineLayer(Box<cmd::refine_layer::Args>),
    /// Warm-start plugins: `plugins list` shows those found and where they were searched.
    Plugins(cmd::plugins::Args),
    /// Convert a GGUF file or HF directory into an HF directory (config, safetensors, tokenizer).
    Convert(cmd::convert::Args),
    /// Perplexity of a model (GGUF file or HF directory) on a text file.
    Eval(cmd::eval::Args),
    /// Runs side by side: one row per run directory (Markdown, CSV or JSON).
    Compare(cmd::compare::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => cmd::run::run(args),
        Command::RefineLayer(args) => cmd::refine_layer::run(*args),
        Command::Plugins(args) => cmd::plugins::run(args),
        Command::Convert(args) => cmd::convert::run(args),
        Command::Eval(args) => cmd::eval::run(args),
        Command::Compare(args) => cmd::compare::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the error and its causes, outermost first.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
