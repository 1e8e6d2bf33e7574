//! `sparseswaps refine-layer`: one layer's mask from weights and a Gram matrix.

use anyhow::{bail, Context, Result};
use sparseswaps_core::{refine, Budget, LayerProblem, Mask, Pattern, RefineOptions};
use sparseswaps_gram::{GramAccumulator, GramError};
use sparseswaps_plugin_host::{resolve, MaskInput, Plugin, PluginError, SearchPath};
use sparseswaps_reconstruct::{reconstruct, ReconstructOptions};
use sparseswaps_tensor_io::{
    check_output_dir, read_tensor_f32, read_tensor_u8, write_atomic, write_safetensors_atomic,
    OwnedTensor, TensorSpec,
};
use std::collections::HashMap;
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
    /// when no plugin library of that name is found.
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
    /// lower bound) or `exhaustive` (every pair, as in the paper). Same result.
    #[arg(long, default_value = "bounded")]
    search: String,
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
    /// ε of the reconstruction's damping λ = ε · mean(diag G[K,K]).
    #[arg(
        long,
        default_value = "1e-6",
        value_name = "EPS",
        requires = "reconstruct"
    )]
    damping: f64,
    /// Also write the layer's new weights (safetensors, tensor `weight`, f32
    /// `[d_out, d_in]`): pruned, and re-fitted with --reconstruct.
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
    // Fail on unusable outputs before any work.
    check_output_dir(&args.out)?;
    if let Some(r) = &args.report {
        check_output_dir(r)?;
    }
    let pattern: Pattern = match (&args.sparsity, &args.pattern) {
        (Some(s), None) => Pattern::unstructured(*s)?,
        (None, Some(p)) => p.parse()?,
        _ => bail!("give exactly one of --sparsity and --pattern"),
    };
    let max_swaps = parse_max_swaps(&args.max_swaps)?;
    if args.max_row_imbalance.is_some() && args.budget != "band" {
        bail!(
            "--max-row-imbalance applies to --budget band only (budget is '{}')",
            args.budget
        );
    }
    let budget =
        Budget::parse(&args.budget, args.max_row_imbalance.unwrap_or(0.25)).context("--budget")?;
    if budget != Budget::Row && pattern.group().is_some() {
        bail!(
            "--budget {} needs --sparsity: N:M patterns ({pattern}) keep N in every group of M",
            budget.name()
        );
    }
    if let Some(p) = &args.weights_out {
        check_output_dir(p)?;
    }

    let wspec = TensorSpec::parse(&args.weight);
    let w = read_tensor_f32(&wspec, 2)?;
    let (d_out, d_in) = (w.shape[0], w.shape[1]);
    let (gspec, g) = match (&args.gram, &args.activations) {
        (Some(gram), None) => {
            let gspec = TensorSpec::parse(gram);
            let g = read_tensor_f32(&gspec, 2)?;
            if g.shape[0] != g.shape[1] {
                bail!(
                    "{gspec}: Gram matrix '{}' is not square: shape {:?}",
                    g.name,
                    g.shape
                );
            }
            if g.shape[0] != d_in {
                bail!(
                    "{gspec}: Gram matrix '{}' is [{}, {}] but weights '{}' have d_in = {d_in}",
                    g.name,
                    g.shape[0],
                    g.shape[1],
                    w.name
                );
            }
            (gspec, g.data)
        }
        (None, Some(acts)) => {
            let aspec = TensorSpec::parse(acts);
            let g = gram_from_activations(&aspec, d_in, &w.name)?;
            (aspec, g)
        }
        _ => bail!("give exactly one of --gram and --activations"),
    };
    pattern
        .check_width(d_in)
        .with_context(|| format!("weights {wspec}"))?;
    let problem = LayerProblem::new(&w.data, d_out, d_in, &g)
        .with_context(|| format!("weights {wspec}, Gram {gspec}"))?;

    let (mut mask, plugin) = warm_start(&args, &problem, &pattern)?;
    let search: sparseswaps_core::Search = args.search.parse().map_err(anyhow::Error::msg)?;
    let opts = RefineOptions {
        max_swaps,
        search,
        budget,
        ..RefineOptions::default()
    };
    let mut report = refine(&problem, &pattern, &mut mask, &opts, &|_| {})?;
    let rec_opts = ReconstructOptions {
        damping: args.damping,
        ..ReconstructOptions::default()
    };
    let recon = if args.reconstruct {
        let r = reconstruct(&problem, &mask, &rec_opts).context("--reconstruct")?;
        report.set_reconstructed(r.reconstructed_error);
        Some(r)
    } else {
        None
    };
    if let Some(path) = &args.weights_out {
        let weights: Vec<f32> = match &recon {
            Some(r) => r.weights.clone(),
            None => w
                .data
                .iter()
                .zip(mask.as_slice())
                .map(|(&x, &m)| if m == 1 { x } else { 0.0 })
                .collect(),
        };
        let meta = HashMap::from([
            ("weights".to_string(), wspec.to_string()),
            ("reconstructed".to_string(), args.reconstruct.to_string()),
        ]);
        write_safetensors_atomic(
            path,
            &[(
                "weight".to_string(),
                OwnedTensor::f32(vec![d_out, d_in], &weights),
            )],
            Some(meta),
        )?;
    }

    let meta = HashMap::from([
        ("pattern".to_string(), pattern.to_string()),
        ("warm_start".to_string(), args.warm_start.clone()),
        ("weights".to_string(), wspec.to_string()),
        (
            "convention".to_string(),
            "1 = kept, N:M = N kept of M".to_string(),
        ),
    ]);
    write_safetensors_atomic(
        &args.out,
        &[(
            "mask".to_string(),
            OwnedTensor::u8(vec![d_out, d_in], mask.into_vec()),
        )],
        Some(meta),
    )?;
    if let Some(path) = &args.report {
        let json = serde_json::json!({
            "weights": wspec.to_string(),
            (if args.gram.is_some() { "gram" } else { "activations" }): gspec.to_string(),
            "warm_start": args.warm_start,
            "warm_start_plugin": plugin.as_ref().map(|p| serde_json::json!({
                "name": p.name(),
                "version": p.version(),
                "library": p.path().display().to_string(),
                "options": args.plugin_options,
            })),
            "options": opts,
            "report": report,
            "reconstruction": recon.as_ref().map(|r| serde_json::json!({
                "damping": rec_opts.damping,
                "mask_error": r.mask_error,
                "reconstructed_error": r.reconstructed_error,
                "mask_relative": r.mask_relative(),
                "reconstructed_relative": r.reconstructed_relative(),
                "rows_refit": r.rows_refit,
                "rows_unchanged": r.rows_unchanged,
                "rows_redamped": r.rows_redamped,
                "seconds": r.seconds,
            })),
        });
        write_atomic(path, serde_json::to_string_pretty(&json)?.as_bytes())?;
    }
    match &plugin {
        Some(p) => println!(
            "warm start         {} (plugin {}, {})",
            p.name(),
            p.version(),
            p.path().display()
        ),
        None if is_builtin(&args.warm_start) => println!(
            "warm start         {} (built in: no plugin library found)",
            args.warm_start
        ),
        None => println!("warm start         {}", args.warm_start),
    }
    println!("{}", report.summary());
    if let Some(r) = &recon {
        println!(
            "reconstruction     {} of {} rows re-fitted ({} kept their weights, {} needed more damping), {:.3} s",
            r.rows_refit, d_out, r.rows_unchanged, r.rows_redamped, r.seconds
        );
    }
    Ok(())
}

/// Tokens per batch when a Gram matrix is accumulated from an activations file.
const ACTIVATION_BATCH: usize = 4096;

/// Reads activations `[tokens, d_in]` and accumulates their Gram matrix batch by batch.
fn gram_from_activations(spec: &TensorSpec, d_in: usize, weight_name: &str) -> Result<Vec<f32>> {
    let a = read_tensor_f32(spec, 2)?;
    if a.shape[1] != d_in {
        bail!(
            "{spec}: activations '{}' are {:?} ([tokens, d_in]) but weights '{weight_name}' have d_in = {d_in}",
            a.name,
            a.shape
        );
    }
    let mut acc = GramAccumulator::new(d_in);
    for (b, batch) in a.data.chunks(ACTIVATION_BATCH * d_in).enumerate() {
        match acc.add_batch(batch, batch.len() / d_in) {
            Ok(()) => {}
            // Name the row of the file, not of the batch.
            Err(GramError::NonFinite { row, col, value, .. }) => bail!(
                "{spec}: activations '{}' have a non-finite value {value} at row {} (token), column {col} (channel)",
                a.name,
                b * ACTIVATION_BATCH + row
            ),
            Err(e) => return Err(e).with_context(|| format!("{spec}: activations '{}'", a.name)),
        }
    }
    if acc.tokens() == 0 {
        bail!("{spec}: activations '{}' hold no tokens", a.name);
    }
    Ok(acc.to_f32())
}

/// The warm-start mask: from a mask file, or from a plugin (returned with the mask).
fn warm_start(
    args: &Args,
    problem: &LayerProblem<'_>,
    pattern: &Pattern,
) -> Result<(Mask, Option<Plugin>)> {
    let (d_out, d_in) = (problem.d_out(), problem.d_in());
    let spec = args.warm_start.as_str();
    if let Some(file) = spec.strip_prefix("mask:") {
        let mspec = TensorSpec::parse(file);
        let m = read_tensor_u8(&mspec, 2)?;
        if m.shape != [d_out, d_in] {
            bail!(
                "{mspec}: mask '{}' has shape {:?}, weights are [{d_out}, {d_in}]",
                m.name,
                m.shape
            );
        }
        let mask = Mask::new(d_out, d_in, m.data).with_context(|| mspec.to_string())?;
        mask.validate(pattern)
            .with_context(|| format!("{mspec}: warm-start mask"))?;
        return Ok((mask, None));
    }
    let diag = problem.gram_diag();
    let plugin = match resolve(spec, &SearchPath::new(&args.plugin_dir)) {
        Ok(p) => p,
        // The bundled warm starts are also linked in: a binary copied without its
        // plugins still runs them (and says so).
        Err(e @ PluginError::NotFound { .. }) if is_builtin(spec) => {
            eprintln!("note: {e}; using the built-in {spec}");
            let mask = if spec == sparseswaps_warmstart_magnitude::NAME {
                sparseswaps_warmstart_magnitude::magnitude_mask(
                    problem.weights(),
                    d_out,
                    d_in,
                    pattern,
                )?
            } else {
                sparseswaps_warmstart_wanda::wanda_mask(
                    problem.weights(),
                    d_out,
                    d_in,
                    &diag,
                    pattern,
                )?
            };
            return Ok((mask, None));
        }
        Err(e) => return Err(e.into()),
    };
    let input = MaskInput {
        weights: problem.weights(),
        rows: d_out,
        cols: d_in,
        gram_diag: Some(&diag),
        gram: Some(problem.gram()),
        options: args.plugin_options.as_deref(),
    };
    let mask = plugin.compute_mask(&input, pattern)?;
    Ok((mask, Some(plugin)))
}

/// Whether `spec` names a warm start that is also linked in.
fn is_builtin(spec: &str) -> bool {
    spec == sparseswaps_warmstart_magnitude::NAME || spec == sparseswaps_warmstart_wanda::NAME
}
