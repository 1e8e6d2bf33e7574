//! # sparseswaps-warmstart-sparsegpt-plugin
//!
//! The SparseGPT warm start (`sparseswaps-warmstart-sparsegpt`) exported as a sparseswaps
//! plugin: this crate's cdylib,
//! `{DLL_PREFIX}sparseswaps_warmstart_sparsegpt_plugin{DLL_SUFFIX}`, is what the plugin
//! host loads as `--warm-start sparsegpt`.
//!
//! It needs the **full Gram matrix** (`gram` of the request) and declares it
//! (`NEEDS_FULL_GRAM`): a host that cannot send it fails before calling, naming the
//! plugin and the input, and a request with only the diagonal, or none, fails with
//! `SS_ERR_MISSING_INPUT`. Options (`--plugin-options`):
//! `blocksize=128,damping=0.01` (see `sparseswaps_warmstart_sparsegpt::Options`); a bad
//! key or value fails with `SS_ERR_INVALID_REQUEST` naming it.
//!
//! Why a crate of its own: the exported entry symbol `sparseswaps_plugin_v1` has one name
//! in every plugin, so two plugin rlibs linked into one binary clash at link time (without
//! LTO). Keeping the export here leaves `sparseswaps-warmstart-sparsegpt` free of it, so
//! any crate may link the warm-start functions directly, and nothing links this one (its
//! rlib type exists only so that depending on it, to get the cdylib built, is not a
//! warning).

#![warn(missing_docs)]

use sparseswaps_plugin_abi::{
    export_plugin, status, PluginError, Request, NEEDS_FULL_GRAM, SUPPORTS_NM,
    SUPPORTS_UNSTRUCTURED,
};
use sparseswaps_warmstart_sparsegpt::{sparsegpt_mask, Options, SparseGptError, NAME};

fn compute(req: &Request<'_>, out: &mut [u8]) -> Result<(), PluginError> {
    let options = Options::parse(req.options.unwrap_or(""))
        .map_err(|e| PluginError::new(status::INVALID_REQUEST, e.to_string()))?;
    // `needs: NEEDS_FULL_GRAM` below: the request was checked to carry it.
    let gram = req.gram.ok_or_else(|| {
        PluginError::new(
            status::MISSING_INPUT,
            "sparsegpt needs the full Gram matrix",
        )
    })?;
    let Some(pattern) = req.core_pattern()? else {
        out.fill(0);
        return Ok(());
    };
    let mask =
        sparsegpt_mask(req.weights, req.rows, req.cols, gram, &pattern, &options).map_err(|e| {
            match e {
                SparseGptError::Options(_) => {
                    PluginError::new(status::INVALID_REQUEST, e.to_string())
                }
                _ => PluginError::failed(e.to_string()),
            }
        })?;
    out.copy_from_slice(mask.as_slice());
    Ok(())
}

export_plugin! {
    name: NAME,
    version: env!("CARGO_PKG_VERSION"),
    patterns: SUPPORTS_UNSTRUCTURED | SUPPORTS_NM,
    needs: NEEDS_FULL_GRAM,
    compute: compute,
}
