//! # sparseswaps-warmstart-wanda-plugin
//!
//! The Wanda warm start (`sparseswaps-warmstart-wanda`) exported as a sparseswaps plugin:
//! this crate's cdylib, `{DLL_PREFIX}sparseswaps_warmstart_wanda_plugin{DLL_SUFFIX}`, is what
//! the plugin host loads as `--warm-start wanda`.
//!
//! Why a crate of its own: the exported entry symbol `sparseswaps_plugin_v1` has one name
//! in every plugin, so two plugin rlibs linked into one binary clash at link time (without
//! LTO). Keeping the export here leaves `sparseswaps-warmstart-wanda` free of it, so any
//! crate may link the warm-start functions directly, and nothing links this one (its rlib
//! type exists only so that depending on it, to get the cdylib built, is not a warning).

#![warn(missing_docs)]

use sparseswaps_plugin_abi::{
    export_plugin, PluginError, Request, NEEDS_GRAM_DIAG, SUPPORTS_NM, SUPPORTS_UNSTRUCTURED,
};

fn compute(req: &Request<'_>, out: &mut [u8]) -> Result<(), PluginError> {
    let Some(pattern) = req.core_pattern()? else {
        out.fill(0);
        return Ok(());
    };
    let mask = sparseswaps_warmstart_wanda::wanda_mask(
        req.weights,
        req.rows,
        req.cols,
        &req.gram_diag_or_full()?,
        &pattern,
    )
    .map_err(|e| PluginError::failed(e.to_string()))?;
    out.copy_from_slice(mask.as_slice());
    Ok(())
}

export_plugin! {
    name: sparseswaps_warmstart_wanda::NAME,
    version: env!("CARGO_PKG_VERSION"),
    patterns: SUPPORTS_UNSTRUCTURED | SUPPORTS_NM,
    needs: NEEDS_GRAM_DIAG,
    compute: compute,
}
