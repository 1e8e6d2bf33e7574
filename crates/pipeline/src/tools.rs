//! What the small subcommands of the command-line tool need: `convert`, `eval` and
//! `plugins list`, each one call (the tool keeps its argument parsing, progress bars and
//! exit codes).

use crate::error::Result;
use sparseswaps_model::{ModelError, SaveDtype};
use sparseswaps_plugin_host::{Plugin, Registry, SearchPath};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A converted model.
#[derive(Debug, Clone, PartialEq)]
pub struct Converted {
    /// The Hugging Face architecture class (`LlamaForCausalLM`).
    pub architecture: String,
    /// Decoder blocks.
    pub layers: usize,
    /// Hidden size.
    pub hidden: usize,
    /// Seconds of loading and writing.
    pub seconds: f64,
}

/// Converts a GGUF file or Hugging Face directory `model` into a Hugging Face directory
/// `out` with weights of `dtype` (`f32`, `bf16`, `f16` or `source`); an existing `out`
/// is refused (before the slow load) unless `force`.
pub fn convert(model: &Path, out: &Path, dtype: &str, force: bool) -> Result<Converted> {
    let dtype: SaveDtype = dtype.parse()?;
    if out.exists() && !force {
        return Err(ModelError::OutputExists { path: out.into() }.into());
    }
    let t0 = Instant::now();
    let m = sparseswaps_model::load(model)?;
    sparseswaps_model::save_hf_dir(&m, out, dtype, force)?;
    let cfg = m.config();
    Ok(Converted {
        architecture: cfg.architecture.hf_class().to_string(),
        layers: cfg.num_hidden_layers,
        hidden: cfg.hidden_size,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// A perplexity evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluated {
    /// Perplexity.
    pub ppl: f64,
    /// Mean negative log-likelihood per scored token (nats).
    pub mean_nll: f64,
    /// Tokens scored.
    pub tokens: usize,
    /// Windows evaluated.
    pub windows: usize,
    /// Seconds of loading the model.
    pub load_seconds: f64,
    /// Seconds of the evaluation.
    pub eval_seconds: f64,
}

/// Perplexity of `model` (GGUF file or Hugging Face directory) on the UTF-8 `text` file,
/// in at most `windows` consecutive windows of `seq_len` tokens; `progress` gets
/// `(done, total)` windows.
pub fn eval(
    model: &Path,
    text: &Path,
    seq_len: usize,
    windows: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Evaluated> {
    let t0 = Instant::now();
    let m = sparseswaps_model::load(model)?;
    let load_seconds = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let p = sparseswaps_model::perplexity_of_file(&m, text, seq_len, windows, progress)?;
    Ok(Evaluated {
        ppl: p.ppl,
        mean_nll: p.mean_nll,
        tokens: p.tokens,
        windows: p.windows,
        load_seconds,
        eval_seconds: t1.elapsed().as_secs_f64(),
    })
}

/// One warm-start plugin library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginRow {
    /// The name it declares.
    pub name: String,
    /// Its version.
    pub version: String,
    /// The plugin ABI version it was built for.
    pub abi: u32,
    /// The patterns it supports (`unstructured, N:M`).
    pub patterns: String,
    /// The inputs it declares it needs (`full Gram`, `Gram diagonal`, `nothing declared`).
    pub needs: String,
    /// The library file.
    pub library: PathBuf,
}

impl PluginRow {
    fn of(p: &Plugin) -> PluginRow {
        PluginRow {
            name: p.name().to_string(),
            version: p.version().to_string(),
            abi: p.abi_version(),
            patterns: p.pattern_names(),
            needs: p.needs_names(),
            library: p.path().to_path_buf(),
        }
    }
}

/// The warm-start plugins this binary can see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginListing {
    /// The plugins found, in search order.
    pub plugins: Vec<PluginRow>,
    /// Libraries hidden by an earlier one of the same name.
    pub shadowed: Vec<PluginRow>,
    /// Libraries that could not be loaded, with why (one line each).
    pub skipped: Vec<String>,
    /// The directories searched, in order, with where each came from.
    pub searched: String,
}

/// Lists the warm-start plugins found in the search path (the binary's `plugins/`
/// directory, `dirs`, `SPARSESWAPS_PLUGIN_PATH`, the bundled plugins).
pub fn list_plugins(dirs: &[PathBuf]) -> PluginListing {
    let search = SearchPath::new(dirs);
    let reg = Registry::discover(&search);
    PluginListing {
        plugins: reg.plugins().iter().map(PluginRow::of).collect(),
        shadowed: reg.shadowed().iter().map(PluginRow::of).collect(),
        skipped: reg.skipped().iter().map(|s| s.error.to_string()).collect(),
        searched: search.describe(),
    }
}
