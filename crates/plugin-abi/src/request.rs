//! The plugin side of a request: the typed pattern, the error a plugin reports, and the
//! checked view of a [`MaskRequest`] a Rust plugin's compute function receives.

use crate::status;
use crate::types::{
    MaskRequest, ABI_VERSION, PATTERN_NM, PATTERN_UNSTRUCTURED, SUPPORTS_NM, SUPPORTS_UNSTRUCTURED,
};
use std::ffi::CStr;

/// The pattern of a request, checked and typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    /// Keep `k` weights in every row.
    Unstructured {
        /// Kept per row.
        k: usize,
    },
    /// Keep `n` of every `m` consecutive inputs.
    NM {
        /// Kept per group.
        n: usize,
        /// Group size.
        m: usize,
    },
}

impl Pattern {
    /// The [`Descriptor::patterns`](crate::Descriptor::patterns) bit this pattern needs.
    pub fn support_bit(&self) -> u32 {
        match self {
            Pattern::Unstructured { .. } => SUPPORTS_UNSTRUCTURED,
            Pattern::NM { .. } => SUPPORTS_NM,
        }
    }
}

/// A failure to report through the ABI: a [`status`] code and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginError {
    /// A [`status`] code other than `OK`.
    pub code: i32,
    /// One line saying what went wrong.
    pub message: String,
}

impl PluginError {
    /// An error with a code and a message.
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        PluginError {
            code,
            message: message.into(),
        }
    }

    /// [`status::FAILED`] with a message.
    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(status::FAILED, message)
    }
}

impl std::fmt::Display for PluginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, status::name(self.code))
    }
}

impl std::error::Error for PluginError {}

/// A [`MaskRequest`] checked and seen through safe slices: what a Rust plugin's compute
/// function receives from [`export_plugin!`](crate::export_plugin).
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Rows (`d_out`).
    pub rows: usize,
    /// Columns (`d_in`).
    pub cols: usize,
    /// Weights, row-major, `rows * cols`.
    pub weights: &'a [f32],
    /// Gram diagonal, `cols`, if the host sent it.
    pub gram_diag: Option<&'a [f32]>,
    /// Full Gram matrix, `cols * cols`, if the host sent it.
    pub gram: Option<&'a [f32]>,
    /// The pattern.
    pub pattern: Pattern,
    /// The options string, if any.
    pub options: Option<&'a str>,
}

impl<'a> Request<'a> {
    /// Checks a raw request and wraps it.
    ///
    /// # Safety
    ///
    /// `req` is null or points at `struct_size` readable bytes of a request whose
    /// non-null pointers are valid for the lengths the request states, for `'a`.
    pub unsafe fn from_raw(req: *const MaskRequest) -> Result<Request<'a>, PluginError> {
        let invalid = |m: String| PluginError::new(status::INVALID_REQUEST, m);
        if req.is_null() {
            return Err(invalid("request is null".into()));
        }
        // The first field exists in every version: read it alone before the rest.
        let size = std::ptr::read_unaligned(req as *const u64);
        let need = std::mem::size_of::<MaskRequest>() as u64;
        if size < need {
            return Err(invalid(format!(
                "request struct_size {size} is smaller than the {need} bytes of ABI v{ABI_VERSION}"
            )));
        }
        let r = &*req;
        let (rows, cols) = (r.rows as usize, r.cols as usize);
        let len = rows
            .checked_mul(cols)
            .ok_or_else(|| invalid(format!("{rows} x {cols} overflows")))?;
        if r.weights.is_null() {
            return Err(invalid("weights pointer is null".into()));
        }
        let pattern = match r.pattern.kind {
            PATTERN_UNSTRUCTURED => {
                let k = r.pattern.k as usize;
                if k > cols {
                    return Err(invalid(format!("k = {k} exceeds cols = {cols}")));
                }
                Pattern::Unstructured { k }
            }
            PATTERN_NM => {
                let (n, m) = (r.pattern.n as usize, r.pattern.m as usize);
                if n == 0 || n >= m || cols % m != 0 {
                    return Err(invalid(format!(
                        "N:M = {n}:{m} does not fit cols = {cols} (needs 0 < N < M, M divides cols)"
                    )));
                }
                Pattern::NM { n, m }
            }
            other => {
                return Err(PluginError::new(
                    status::UNSUPPORTED_PATTERN,
                    format!("unknown pattern kind {other}"),
                ))
            }
        };
        let options = if r.options.is_null() {
            None
        } else {
            Some(
                CStr::from_ptr(r.options)
                    .to_str()
                    .map_err(|_| invalid("options are not UTF-8".into()))?,
            )
        };
        let slice = |p: *const f32, n: usize| {
            if p.is_null() {
                None
            } else {
                Some(std::slice::from_raw_parts(p, n))
            }
        };
        Ok(Request {
            rows,
            cols,
            weights: std::slice::from_raw_parts(r.weights, len),
            gram_diag: slice(r.gram_diag, cols),
            gram: slice(r.gram, cols * cols),
            pattern,
            options,
        })
    }

    /// Weights kept per row under the request's pattern.
    pub fn pattern_k(&self) -> usize {
        match self.pattern {
            Pattern::Unstructured { k } => k,
            Pattern::NM { n, m } => self.cols / m * n,
        }
    }

    /// The request's pattern as a core [`sparseswaps_core::Pattern`]; `None` when
    /// nothing is kept (`k = 0`), which no core pattern expresses. An unstructured `k`
    /// that no per-row sparsity reproduces exactly is an error.
    #[cfg(feature = "core")]
    pub fn core_pattern(&self) -> Result<Option<sparseswaps_core::Pattern>, PluginError> {
        use sparseswaps_core::Pattern as Core;
        let p = match self.pattern {
            Pattern::Unstructured { k: 0 } => return Ok(None),
            Pattern::Unstructured { k } => {
                Core::unstructured((self.cols - k) as f64 / self.cols as f64)
            }
            Pattern::NM { n, m } => Core::n_m(n, m),
        }
        .map_err(|e| PluginError::failed(e.to_string()))?;
        if p.kept_per_row(self.cols) != self.pattern_k() {
            return Err(PluginError::failed(format!(
                "cannot express k = {} of {} as a per-row sparsity",
                self.pattern_k(),
                self.cols
            )));
        }
        Ok(Some(p))
    }

    /// The Gram diagonal: the one sent, else read off the full Gram matrix, else a
    /// [`status::MISSING_INPUT`] error.
    pub fn gram_diag_or_full(&self) -> Result<std::borrow::Cow<'a, [f32]>, PluginError> {
        match (self.gram_diag, self.gram) {
            (Some(d), _) => Ok(std::borrow::Cow::Borrowed(d)),
            (None, Some(g)) => Ok(std::borrow::Cow::Owned(
                (0..self.cols).map(|j| g[j * self.cols + j]).collect(),
            )),
            (None, None) => Err(PluginError::new(
                status::MISSING_INPUT,
                "this warm start needs the Gram diagonal (activation norms), and the host sent none",
            )),
        }
    }
}

/// The input named by `needs` (bits [`NEEDS_GRAM_DIAG`](crate::NEEDS_GRAM_DIAG),
/// [`NEEDS_FULL_GRAM`](crate::NEEDS_FULL_GRAM)) that a request lacks, in words; `None`
/// when it has all of them. The full Gram matrix also serves for its diagonal.
pub fn missing_input(needs: u32, has_diag: bool, has_full: bool) -> Option<&'static str> {
    if needs & crate::NEEDS_FULL_GRAM != 0 && !has_full {
        Some("the full Gram matrix X Xᵀ")
    } else if needs & crate::NEEDS_GRAM_DIAG != 0 && !has_diag && !has_full {
        Some("the Gram diagonal (activation norms)")
    } else {
        None
    }
}
