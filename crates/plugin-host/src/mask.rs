//! Asking a plugin for a mask, and checking every mask a plugin returns.

use crate::error::{PluginError, Result};
use crate::plugin::{c_str, Plugin};
use sparseswaps_core::{validate_mask, CoreError, Mask, Pattern};
use sparseswaps_plugin_abi as abi;
use std::ffi::CString;
use std::path::Path;

/// The inputs of a mask request. Gram inputs are optional; send what you have. A plugin
/// that declares one it needs ([`Plugin::needs_bits`]) is not called without it
/// ([`PluginError::MissingInput`]); one that does not declare it reports
/// [`abi::status::MISSING_INPUT`] itself.
#[derive(Debug, Clone, Copy)]
pub struct MaskInput<'a> {
    /// Weights, row-major `rows x cols`.
    pub weights: &'a [f32],
    /// Rows (`d_out`).
    pub rows: usize,
    /// Columns (`d_in`).
    pub cols: usize,
    /// Gram diagonal (`cols` values).
    pub gram_diag: Option<&'a [f32]>,
    /// Full Gram matrix (`cols x cols`, row-major).
    pub gram: Option<&'a [f32]>,
    /// Options string passed to the plugin as is.
    pub options: Option<&'a str>,
}

impl Plugin {
    /// Asks the plugin for a mask of `input` under `pattern`, and checks it.
    ///
    /// The output buffer is allocated here (filled with `0xFF`, so unwritten entries are
    /// caught); the mask is returned only if it passes
    /// [`sparseswaps_core::validate_mask`].
    pub fn compute_mask(&self, input: &MaskInput<'_>, pattern: &Pattern) -> Result<Mask> {
        let bad_input = |reason: String| PluginError::BadInput {
            name: self.name.clone(),
            path: self.path.clone(),
            reason,
        };
        let (rows, cols) = (input.rows, input.cols);
        let size = check_sizes(input).map_err(bad_input)?;
        pattern
            .check_width(cols)
            .map_err(|e| bad_input(e.to_string()))?;
        if !self.supports(pattern) {
            return Err(PluginError::UnsupportedPattern {
                name: self.name.clone(),
                path: self.path.clone(),
                requested: match pattern {
                    Pattern::Unstructured { .. } => "unstructured".into(),
                    Pattern::NM { .. } => "N:M".into(),
                },
                supported: self.pattern_names(),
            });
        }
        if let Some(missing) =
            abi::missing_input(self.needs, input.gram_diag.is_some(), input.gram.is_some())
        {
            return Err(PluginError::MissingInput {
                name: self.name.clone(),
                path: self.path.clone(),
                input: missing.into(),
            });
        }
        let options = input
            .options
            .map(CString::new)
            .transpose()
            .map_err(|_| bad_input("options contain a NUL byte".into()))?;
        let (kind, n, m) = match *pattern {
            Pattern::Unstructured { .. } => (abi::PATTERN_UNSTRUCTURED, 0, 0),
            Pattern::NM { n, m } => (abi::PATTERN_NM, n as u64, m as u64),
        };
        let request = abi::MaskRequest {
            struct_size: std::mem::size_of::<abi::MaskRequest>() as u64,
            rows: rows as u64,
            cols: cols as u64,
            weights: input.weights.as_ptr(),
            gram_diag: input.gram_diag.map_or(std::ptr::null(), <[f32]>::as_ptr),
            gram: input.gram.map_or(std::ptr::null(), <[f32]>::as_ptr),
            pattern: abi::PatternSpec {
                kind,
                reserved: 0,
                k: pattern.kept_per_row(cols) as u64,
                n,
                m,
            },
            options: options.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
        };
        let mut out = vec![0xFFu8; size];
        // SAFETY: every pointer in the request is valid for the lengths it states for the
        // duration of the call, and `out` holds rows * cols bytes (ABI contract).
        let code = unsafe { (self.compute)(&request, out.as_mut_ptr()) };
        if code != abi::status::OK {
            // SAFETY: same thread, right after the failing call (ABI contract).
            let message = unsafe { c_str((self.last_error)()) }
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| "(the plugin gave no message)".into());
            return Err(PluginError::Failed {
                name: self.name.clone(),
                path: self.path.clone(),
                code,
                status: abi::status::name(code),
                message,
            });
        }
        check_plugin_mask(&self.name, &self.path, out, rows, cols, pattern)
    }
}

/// The `rows x cols` size of `input`, checked against the lengths of its slices.
fn check_sizes(input: &MaskInput<'_>) -> std::result::Result<usize, String> {
    let (rows, cols) = (input.rows, input.cols);
    // Checked: rows and cols come from the caller's files, and the output buffer is
    // sized by their product.
    let Some(size) = rows.checked_mul(cols) else {
        return Err(format!("{rows} x {cols} values overflow"));
    };
    if input.weights.len() != size {
        return Err(format!(
            "weights have {} values, expected {rows} x {cols}",
            input.weights.len()
        ));
    }
    if let Some(d) = input.gram_diag {
        if d.len() != cols {
            return Err(format!(
                "Gram diagonal has {} values, expected {cols}",
                d.len()
            ));
        }
    }
    if let Some(g) = input.gram {
        if g.len() != cols * cols {
            return Err(format!(
                "Gram matrix has {} values, expected {cols} x {cols}",
                g.len()
            ));
        }
    }
    Ok(size)
}

/// Checks a mask buffer a plugin wrote for a `rows x cols` layer against `pattern` (0/1
/// values, `k` kept per row, `N` per group of `M`, the right length) and turns it into a
/// [`Mask`]. The error names the plugin and library (`name`, `path`) and the first row
/// (and group) at fault.
///
/// [`Plugin::compute_mask`] calls this on every buffer it gets back; it is public so the
/// check can be exercised (tests, fuzzing) without a library that misbehaves on purpose.
pub fn check_plugin_mask(
    name: &str,
    path: &Path,
    out: Vec<u8>,
    rows: usize,
    cols: usize,
    pattern: &Pattern,
) -> Result<Mask> {
    let invalid = |detail: String| PluginError::InvalidMask {
        name: name.into(),
        path: path.into(),
        detail,
    };
    validate_mask(&out, rows, cols, pattern).map_err(|e| {
        invalid(match e {
            CoreError::InvalidMask(s) => s,
            other => other.to_string(),
        })
    })?;
    Mask::new(rows, cols, out).map_err(|e| invalid(e.to_string()))
}
