//! `sparseswaps refine-layer`: one layer's mask from weights and a Gram matrix.

use anyhow::{Context, Result};
use sparseswaps_pipeline::refine_layer::{RefineLayerJob, SecondMoment};
use sparseswaps_pipeline::Event;
use std::path::PathBuf;

/// Arguments of `refine-layer`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("pat").required(true).args(["sparsity", "pattern"])))]
#[command(group(clap::ArgGroup::new("second_moment").required(true).args(["gram", "activations"])))]
pub struct Args {
    /// Weights `[d_out, d_in]` (f32, f16 or bf16): FILE[:TENSOR].
    #[arg(long, value_name = "FILE[:TENSOR]")]
    weight: String,
    /// Gram matrix `X Xᵀ` `[d_in, d_in]` (f32 or f64): FILE[:TENSOR].
    #[arg(long, value_name = "FILE[:TENSOR]")]
    gram: Option<String>,
    /// Instead of --gram: the layer's input activations `[tokens, d_in]` (f32, f16 or
    /// bf16), accumulated into the Gram matrix here: FILE[:TENSOR].
    #[arg(long, value_name = "FILE[:TENSOR]")]
    activations: Option<String>,
    /// Unstructured per-row sparsity: fraction pruned in every row, in [0, 1).
    #[arg(long)]
    sparsity: Option<f64>,
    /// N:M pattern, N *kept* out of every M consecutive inputs (2:4 keeps 2).
    #[arg(long)]
    pattern: Option<String>,
    /// Warm start: a plugin name (`wanda`, `magnitude`, or any installed plugin: see
    /// `sparseswaps plugins list`), a plugin library path, or `mask:FILE[:TENSOR]` (u8,
    /// 1 = kept). `magnitude` and `wanda` fall back to the built-in code, with a note,
    /// when no plugin library of that name is found (an error when --plugin-options is
    /// given, since the built-in code takes none).
    #[arg(
        long,
        default_value = "wanda",
        value_name = "NAME|LIBRARY|mask:FILE[:TENSOR]"
    )]
    warm_start: String,
    /// Extra directory searched for warm-start plugins (repeatable; searched after
    /// `<binary dir>/plugins/`, before `SPARSESWAPS_PLUGIN_PATH`).
    #[arg(long, value_name = "DIR")]
    plugin_dir: Vec<PathBuf>,
    /// Options string handed to the warm-start plugin as is (e.g. `alpha=0.5` for ria).
    #[arg(long, value_name = "STRING")]
    plugin_options: Option<String>,
    /// Most swaps per row; `none` for no cap (stop only at 1-swap optimality).
    #[arg(long, default_value = "100")]
    max_swaps: String,
    /// How each step finds the best swap: `bounded` (exact, visits pairs in order of a
    /// lower bound) or `exhaustive` (every pair, as in the paper). Same result. Default:
    /// bounded on the CPU, exhaustive on CUDA (which runs no bounded search).
    #[arg(long, value_name = "bounded|exhaustive")]
    search: Option<String>,
    /// Where to refine: `cpu`, `cuda`, or `auto` (CUDA when it can run here, else the
    /// CPU, saying why). With CUDA, --activations are accumulated on cuBLAS too.
    #[arg(long, default_value = "auto", value_parser = ["cpu", "cuda", "auto"])]
    backend: String,
    /// How the kept weights may spread over rows (unstructured only): `row` (k per
    /// row, the paper), `band` (the layer total fixed, each row within k·(1±δ)) or
    /// `layer` (only the layer total fixed, at least one weight per row).
    #[arg(long, default_value = "row", value_name = "row|band|layer")]
    budget: String,
    /// δ of `--budget band` (default 0.25): each row keeps between k·(1−δ) and k·(1+δ).
    #[arg(long, value_name = "DELTA")]
    max_row_imbalance: Option<f64>,
    /// After the mask is final, re-fit the kept weights of every row by the exact
    /// least-squares solve on its kept set (the mask file is unchanged).
    #[arg(long)]
    reconstruct: bool,
    /// What the swaps minimise: `mask` (the error of the mask with the original
    /// weights, the paper) or `refit` (then exact swaps of the error after the re-fit of
    /// the kept weights, from where those ended; writes the re-fitted weights: implies
    /// --reconstruct).
    #[arg(long, default_value = "mask", value_parser = ["mask", "refit"])]
    objective: String,
    /// ε of the reconstruction's damping λ = ε · mean(diag G[K,K]) (default 1e-6), with
    /// --reconstruct or --objective refit.
    #[arg(long, value_name = "EPS")]
    damping: Option<f64>,
    /// Also write the layer's new weights (safetensors, tensor `weight`, f32
    /// `[d_out, d_in]`): pruned, and re-fitted with --reconstruct or --objective refit.
    #[arg(long, value_name = "WEIGHTS.safetensors")]
    weights_out: Option<PathBuf>,
    /// Output mask file (safetensors, tensor `mask`, u8 `[d_out, d_in]`, 1 = kept).
    #[arg(long, value_name = "MASK.safetensors")]
    out: PathBuf,
    /// Also write the full report (per-row figures) as JSON.
    #[arg(long, value_name = "REPORT.json")]
    report: Option<PathBuf>,
}

fn parse_max_swaps(s: &str) -> Result<Option<u32>> {
    match s.trim() {
        "none" | "inf" | "unlimited" => Ok(None),
        t => t
            .parse::<u32>()
            .map(Some)
            .with_context(|| format!("--max-swaps '{s}': expected a count or 'none'")),
    }
}

/// Runs the subcommand.
pub fn run(args: Args) -> Result<()> {
    let second_moment = match (args.gram, args.activations) {
        (Some(g), None) => SecondMoment::Gram(g),
        (None, Some(a)) => SecondMoment::Activations(a),
        _ => anyhow::bail!("give exactly one of --gram and --activations"),
    };
    if args.damping.is_some() && !args.reconstruct && args.objective != "refit" {
        anyhow::bail!("--damping applies with --reconstruct or --objective refit only");
    }
    let job = RefineLayerJob {
        weight: args.weight,
        second_moment,
        sparsity: args.sparsity,
        pattern: args.pattern,
        warm_start: args.warm_start,
        plugin_dirs: args.plugin_dir,
        plugin_options: args.plugin_options,
        max_swaps: parse_max_swaps(&args.max_swaps)?,
        search: args.search,
        budget: args.budget,
        max_row_imbalance: args.max_row_imbalance,
        backend: args.backend,
        reconstruct: args.reconstruct,
        objective: args.objective,
        // The re-fit's own default ε (`ReconstructOptions::default().damping`).
        damping: args.damping.unwrap_or(1e-6),
        weights_out: args.weights_out,
        out: args.out,
        report: args.report,
    };
    let events = |ev: Event| {
        if let Event::Note(n) = ev {
            eprintln!("note: {n}");
        }
    };
    let out = sparseswaps_pipeline::refine_layer::run(&job, &events)?;
    match (&out.plugin, out.built_in) {
        (Some(p), _) => println!(
            "warm start         {} (plugin {}, {})",
            p.name,
            p.version,
            p.library.display()
        ),
        (None, true) => println!(
            "warm start         {} (built in: no plugin library found)",
            out.warm_start
        ),
        (None, false) => println!("warm start         {}", out.warm_start),
    }
    println!("{}", out.report.summary());
    if let Some(r) = &out.reconstruction {
        println!(
            "reconstruction     {} of {} rows re-fitted ({} kept their weights, {} needed more damping), {:.3} s",
            r.rows_refit, out.report.d_out, r.rows_unchanged, r.rows_redamped, r.seconds
        );
    }
    if let Some(r) = &out.refit {
        println!(
            "refit swaps        {} ({} rows optimal, {} capped, {} reverted): re-fitted error {:.6e} -> {:.6e} ({:.2}% lower), {:.1} KiB per row, {:.3} s",
            r.swaps,
            r.rows_optimal,
            r.rows_capped,
            r.rows_reverted,
            r.refit_before,
            r.refit_after,
            100.0 * r.reduction(),
            r.peak_row_bytes as f64 / 1024.0,
            r.seconds
        );
    }
    // On stdout with the result: stderr stays for the one error line of a failure.
    if let Some(n) = &out.backend_note {
        println!("backend auto       chose the CPU ({n})");
    }
    Ok(())
}
