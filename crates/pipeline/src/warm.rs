//! Warm starts as the pipeline sees them: a name and a function from a layer to a mask.

use sparseswaps_core::{Mask, Pattern};

/// A warm-start strategy for one layer.
pub trait WarmStart: Send + Sync {
    /// The strategy's name (as written in the config).
    fn name(&self) -> &str;

    /// A mask for `weights` (`d_out x d_in`) under `pattern`, given the layer's Gram
    /// matrix (`d_in x d_in`). The pipeline validates the mask before use.
    fn mask(
        &self,
        weights: &[f32],
        d_out: usize,
        d_in: usize,
        gram: &[f32],
        pattern: &Pattern,
    ) -> std::result::Result<Mask, String>;
}

/// The magnitude warm start, linked in.
#[derive(Debug, Clone, Copy)]
pub struct Magnitude;

impl WarmStart for Magnitude {
    fn name(&self) -> &str {
        sparseswaps_warmstart_magnitude::NAME
    }

    fn mask(
        &self,
        w: &[f32],
        d_out: usize,
        d_in: usize,
        _g: &[f32],
        p: &Pattern,
    ) -> Result<Mask, String> {
        sparseswaps_warmstart_magnitude::magnitude_mask(w, d_out, d_in, p)
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

    fn mask(
        &self,
        w: &[f32],
        d_out: usize,
        d_in: usize,
        g: &[f32],
        p: &Pattern,
    ) -> Result<Mask, String> {
        let diag: Vec<f32> = (0..d_in).map(|i| g[i * d_in + i]).collect();
        sparseswaps_warmstart_wanda::wanda_mask(w, d_out, d_in, &diag, p).map_err(|e| e.to_string())
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

    fn mask(
        &self,
        w: &[f32],
        d_out: usize,
        d_in: usize,
        g: &[f32],
        p: &Pattern,
    ) -> Result<Mask, String> {
        let diag: Vec<f32> = (0..d_in).map(|i| g[i * d_in + i]).collect();
        let input = sparseswaps_plugin_host::MaskInput {
            weights: w,
            rows: d_out,
            cols: d_in,
            gram_diag: Some(&diag),
            gram: Some(g),
            options: (!self.options.is_empty()).then_some(self.options.as_str()),
        };
        // The host validates the returned mask (counts per row, N:M groups).
        self.plugin
            .compute_mask(&input, p)
            .map_err(|e| e.to_string())
    }
}

/// Resolves a warm start: a plugin by name or library path (searched in the binary's
/// `plugins/` directory, `plugin_dirs`, then `SPARSESWAPS_PLUGIN_PATH`, then the bundled
/// plugins), falling back to the linked-in magnitude and Wanda when no library of
/// that name is installed. Returns the warm start and, for a fallback, a note.
pub fn resolve(
    name: &str,
    options: &str,
    plugin_dirs: &[std::path::PathBuf],
) -> Result<(Box<dyn WarmStart>, Option<String>), String> {
    let search = sparseswaps_plugin_host::SearchPath::new(plugin_dirs);
    match sparseswaps_plugin_host::resolve(name, &search) {
        Ok(plugin) => Ok((
            Box::new(PluginWarmStart {
                plugin,
                options: options.to_string(),
            }),
            None,
        )),
        Err(e) => match builtin(name) {
            Some(b) if options.is_empty() => Ok((
                b,
                Some(format!("warm start '{name}': no plugin library found, using the linked-in implementation")),
            )),
            _ => Err(e.to_string()),
        },
    }
}

/// Resolves a warm start by name among the linked-in ones.
pub fn builtin(name: &str) -> Option<Box<dyn WarmStart>> {
    match name {
        "magnitude" => Some(Box::new(Magnitude)),
        "wanda" => Some(Box::new(Wanda)),
        _ => None,
    }
}
