//! # sparseswaps-warmstart-magnitude-plugin
//!
//! The magnitude warm start (`sparseswaps-warmstart-magnitude`) exported as a sparseswaps plugin:
//! this crate's cdylib, `{DLL_PREFIX}sparseswaps_warmstart_magnitude_plugin{DLL_SUFFIX}`, is what
//! the plugin host loads as `--warm-start magnitude`.
//!
//! Why a crate of its own: the exported entry symbol `sparseswaps_plugin_v1` has one name
//! in every plugin, so two plugin rlibs linked into one binary clash at link time (without
//! LTO). Keeping the export here leaves `sparseswaps-warmstart-magnitude` free of it, so any
//! crate may link the warm-start functions directly, and nothing links this one (its rlib
//! type exists only so that depending on it, to get the cdylib built, is not a warning).

#![warn(missing_docs)]

use sparseswaps_plugin_abi::{
    export_plugin, PluginError, Request, SUPPORTS_NM, SUPPORTS_UNSTRUCTURED,
};

fn compute(req: &Request<'_>, out: &mut [u8]) -> Result<(), PluginError> {
    let Some(pattern) = req.core_pattern()? else {
        out.fill(0);
        return Ok(());
    };
    let mask =
        sparseswaps_warmstart_magnitude::magnitude_mask(req.weights, req.rows, req.cols, &pattern)
            .map_err(|e| PluginError::failed(e.to_string()))?;
    out.copy_from_slice(mask.as_slice());
    Ok(())
}

export_plugin! {
    name: sparseswaps_warmstart_magnitude::NAME,
    version: env!("CARGO_PKG_VERSION"),
    patterns: SUPPORTS_UNSTRUCTURED | SUPPORTS_NM,
    compute: compute,
}
