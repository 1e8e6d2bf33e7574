//! Warm starts: the one resolver of `run` and `refine-layer`, and its one fallback rule.
//!
//! A name is looked up as a plugin library (the binary's `plugins/` directory, the
//! extra directories, `SPARSESWAPS_PLUGIN_PATH`, then the bundled plugins). Only when no
//! library of that name is found at all ([`PluginError::NotFound`]) do `magnitude`,
//! `wanda` and `sparsegpt` fall back to their linked-in code, with a note; any other failure (a library
//! that does not load, a wrong ABI) is an error, and so is a fallback when options were
//! given, since the linked-in code takes none. `mask:FILE[:TENSOR]` gives the mask
//! itself.

use crate::error::{PipelineError, Result};
use serde::Serialize;
use sparseswaps_core::{LayerProblem, Mask, Pattern};
use sparseswaps_plugin_host::PluginError;
use sparseswaps_tensor_io::{read_tensor_u8, TensorSpec};
use std::path::PathBuf;

/// A warm-start strategy for one layer.
pub trait WarmStart: Send + Sync {
    /// The strategy's name (as written in the config).
    fn name(&self) -> &str;

    /// A mask for the layer under `pattern`. The layer path validates it before use.
    fn mask(
        &self,
        problem: &LayerProblem<'_>,
        pattern: &Pattern,
    ) -> std::result::Result<Mask, String>;

    /// The plugin library behind this warm start, if it is one.
    fn plugin(&self) -> Option<PluginInfo> {
        None
    }
}

/// Which plugin library a warm start came from (for reports).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PluginInfo {
    /// The name the plugin declares.
    pub name: String,
    /// Its version.
    pub version: String,
    /// The library file.
    pub library: PathBuf,
}

/// The magnitude warm start, linked in.
#[derive(Debug, Clone, Copy)]
pub struct Magnitude;

impl WarmStart for Magnitude {
    fn name(&self) -> &str {
        sparseswaps_warmstart_magnitude::NAME
    }

    fn mask(&self, problem: &LayerProblem<'_>, p: &Pattern) -> std::result::Result<Mask, String> {
        sparseswaps_warmstart_magnitude::magnitude_mask(
            problem.weights(),
            problem.d_out(),
            problem.d_in(),
            p,
        )
        .map_err(|e| e.to_string())
    }
}

/// The Wanda warm start, linked in.
#[derive(Debug, Clone, Copy)]
pub struct Wanda;

impl WarmStart for Wanda {
    fn name(&self) -> &str {
        sparseswaps_warmstart_wanda::NAME
    }

    fn mask(&self, problem: &LayerProblem<'_>, p: &Pattern) -> std::result::Result<Mask, String> {
        sparseswaps_warmstart_wanda::wanda_mask(
            problem.weights(),
            problem.d_out(),
            problem.d_in(),
            &problem.gram_diag(),
            p,
        )
        .map_err(|e| e.to_string())
    }
}

/// The SparseGPT warm start, linked in (default block size and damping).
#[derive(Debug, Clone, Copy)]
pub struct SparseGpt;

impl WarmStart for SparseGpt {
    fn name(&self) -> &str {
        sparseswaps_warmstart_sparsegpt::NAME
    }

    fn mask(&self, problem: &LayerProblem<'_>, p: &Pattern) -> std::result::Result<Mask, String> {
        sparseswaps_warmstart_sparsegpt::sparsegpt_mask(
            problem.weights(),
            problem.d_out(),
            problem.d_in(),
            problem.gram(),
            p,
            &sparseswaps_warmstart_sparsegpt::Options::default(),
        )
        .map_err(|e| e.to_string())
    }
}

/// A warm start from a dynamic plugin (see `sparseswaps-plugin-host`).
pub struct PluginWarmStart {
    plugin: sparseswaps_plugin_host::Plugin,
    options: String,
}

impl WarmStart for PluginWarmStart {
    fn name(&self) -> &str {
        self.plugin.name()
    }

    fn mask(&self, problem: &LayerProblem<'_>, p: &Pattern) -> std::result::Result<Mask, String> {
        let diag = problem.gram_diag();
        let input = sparseswaps_plugin_host::MaskInput {
            weights: problem.weights(),
            rows: problem.d_out(),
            cols: problem.d_in(),
            gram_diag: Some(&diag),
            gram: Some(problem.gram()),
            options: (!self.options.is_empty()).then_some(self.options.as_str()),
        };
        // The host validates the returned mask (counts per row, N:M groups).
        self.plugin
            .compute_mask(&input, p)
            .map_err(|e| e.to_string())
    }

    fn plugin(&self) -> Option<PluginInfo> {
        Some(PluginInfo {
            name: self.plugin.name().to_string(),
            version: self.plugin.version().to_string(),
            library: self.plugin.path().to_path_buf(),
        })
    }
}

/// A warm-start mask read from a file (`mask:FILE[:TENSOR]`), already checked against
/// the layer's shape and pattern.
#[derive(Debug, Clone)]
pub struct MaskFile {
    spec: String,
    mask: Mask,
}

impl MaskFile {
    /// Reads the u8 mask (1 = kept) `spec` (`FILE[:TENSOR]`) of a `d_out x d_in` layer
    /// and checks it against `pattern`.
    pub fn read(spec: &str, d_out: usize, d_in: usize, pattern: &Pattern) -> Result<Self> {
        let mspec = TensorSpec::parse(spec);
        let m = read_tensor_u8(&mspec, 2)?;
        let bad = |reason: String| PipelineError::Input(format!("{mspec}: {reason}"));
        if m.shape != [d_out, d_in] {
            return Err(bad(format!(
                "mask '{}' has shape {:?}, weights are [{d_out}, {d_in}]",
                m.name, m.shape
            )));
        }
        let mask = Mask::new(d_out, d_in, m.data).map_err(|e| bad(e.to_string()))?;
        mask.validate(pattern)
            .map_err(|e| bad(format!("warm-start mask: {e}")))?;
        Ok(MaskFile {
            spec: format!("mask:{spec}"),
            mask,
        })
    }
}

impl WarmStart for MaskFile {
    fn name(&self) -> &str {
        &self.spec
    }

    fn mask(&self, problem: &LayerProblem<'_>, _: &Pattern) -> std::result::Result<Mask, String> {
        problem.check_mask(&self.mask).map_err(|e| e.to_string())?;
        Ok(self.mask.clone())
    }
}

/// A resolved warm start.
pub struct Resolved {
    /// The strategy.
    pub warm: Box<dyn WarmStart>,
    /// Set when no plugin library was found and the linked-in code is used instead: the
    /// note to show once.
    pub fallback: Option<String>,
}

/// Resolves a warm start by plugin name or library path, with `options` handed to the
/// plugin as is (empty: none). See the module docs for the fallback rule.
pub fn resolve(name: &str, options: &str, plugin_dirs: &[PathBuf]) -> Result<Resolved> {
    let search = sparseswaps_plugin_host::SearchPath::new(plugin_dirs);
    match sparseswaps_plugin_host::resolve(name, &search) {
        Ok(plugin) => Ok(Resolved {
            warm: Box::new(PluginWarmStart {
                plugin,
                options: options.to_string(),
            }),
            fallback: None,
        }),
        Err(e @ PluginError::NotFound { .. }) => match builtin(name) {
            Some(_) if !options.is_empty() => Err(PipelineError::WarmStart {
                name: name.into(),
                reason: format!(
                    "options '{options}' were given, but no plugin library of that name was found and the built-in {name} takes no options ({e})"
                ),
            }),
            Some(warm) => Ok(Resolved {
                warm,
                fallback: Some(format!("{e}; using the built-in {name}")),
            }),
            None => Err(e.into()),
        },
        Err(e) => Err(e.into()),
    }
}

/// Resolves `refine-layer`'s `--warm-start`: `mask:FILE[:TENSOR]` (a mask for a
/// `d_out x d_in` layer under `pattern`; no options), or a plugin as [`resolve`] does.
pub fn resolve_spec(
    spec: &str,
    options: &str,
    plugin_dirs: &[PathBuf],
    shape: [usize; 2],
    pattern: &Pattern,
) -> Result<Resolved> {
    match spec.strip_prefix("mask:") {
        Some(_) if !options.is_empty() => Err(PipelineError::WarmStart {
            name: spec.into(),
            reason: format!("options '{options}' were given, but a mask file takes no options"),
        }),
        Some(file) => Ok(Resolved {
            warm: Box::new(MaskFile::read(file, shape[0], shape[1], pattern)?),
            fallback: None,
        }),
        None => resolve(spec, options, plugin_dirs),
    }
}

/// Resolves a warm start by name among the linked-in ones.
pub fn builtin(name: &str) -> Option<Box<dyn WarmStart>> {
    match name {
        "magnitude" => Some(Box::new(Magnitude)),
        "wanda" => Some(Box::new(Wanda)),
        "sparsegpt" => Some(Box::new(SparseGpt)),
        _ => None,
    }
}
