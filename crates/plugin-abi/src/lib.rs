//! # sparseswaps-plugin-abi
//!
//! The C ABI between sparseswaps (the host) and warm-start plugins: shared libraries that
//! compute a pruning mask from a layer's weights (and, if they want, its Gram matrix).
//! `plugins/include/sparseswaps_plugin.h` declares the same ABI for C and C++ authors; a
//! test compiles it and checks that sizes and offsets agree with the types here.
//!
//! What it is for: writing a plugin (in Rust: [`export_plugin!`] makes it a few lines) and
//! loading one (the host crate `sparseswaps-plugin-host` reads these types). What it is
//! not for: finding, loading or validating libraries (that is the host's job).
//!
//! ## The contract
//!
//! - A plugin exports **one** symbol, [`ENTRY_SYMBOL`] (`sparseswaps_plugin_v1`: the ABI
//!   *major* version is in the name, so a host never calls a plugin of another major
//!   version by mistake), an `extern "C" fn() -> *const Descriptor` returning a pointer to
//!   a descriptor that lives as long as the library.
//! - The [`Descriptor`] names the plugin, its version, the ABI version it was built for
//!   ([`ABI_VERSION`]), its size (`struct_size`, so later minor versions may append
//!   fields), the patterns it supports ([`SUPPORTS_UNSTRUCTURED`], [`SUPPORTS_NM`]), and
//!   two functions: `compute` and `last_error`.
//! - `compute(request, out_mask)` fills `rows x cols` bytes (row-major, 1 = kept,
//!   0 = pruned) and returns a [`status`] code. **The host allocates every buffer**; the
//!   plugin never frees anything it did not allocate and never keeps a pointer from a
//!   request after returning. `compute` may be called from several threads at once.
//! - On a non-zero status, `last_error()` (called on the same thread, before any other
//!   call into the plugin) returns a NUL-terminated message owned by the plugin, valid
//!   until the next call into the plugin on that thread.
//! - The host validates every returned mask (0/1 values, `k` per row, `N` per group)
//!   before using it, and never unloads a library.
//!
//! ## Forward compatibility
//!
//! [`MaskRequest::struct_size`] is the size of the request the host built. A plugin
//! built for this version needs at least `size_of::<MaskRequest>()` bytes and rejects a
//! smaller request; a newer host may send a bigger one, whose first fields are these.
//! Likewise [`Descriptor::struct_size`] lets a host reject a descriptor too small for the
//! fields it reads.

#![warn(missing_docs)]

use std::ffi::{c_char, CStr};

/// ABI version of this crate: the major version is part of [`ENTRY_SYMBOL`].
pub const ABI_VERSION: u32 = 1;

/// Name of the one symbol a plugin exports.
pub const ENTRY_SYMBOL: &str = "sparseswaps_plugin_v1";

/// [`ENTRY_SYMBOL`] with its terminating NUL, as `dlsym` wants it.
pub const ENTRY_SYMBOL_NUL: &[u8] = b"sparseswaps_plugin_v1\0";

/// Status codes returned by `compute`.
pub mod status {
    /// The mask was written.
    pub const OK: i32 = 0;
    /// The request is malformed (null pointer, `struct_size` too small, bad shape).
    pub const INVALID_REQUEST: i32 = 1;
    /// The plugin does not implement the requested sparsity pattern.
    pub const UNSUPPORTED_PATTERN: i32 = 2;
    /// An input the plugin needs is absent (the Gram diagonal or the full Gram matrix).
    pub const MISSING_INPUT: i32 = 3;
    /// The plugin failed for another reason (see `last_error`).
    pub const FAILED: i32 = 4;
    /// A Rust plugin panicked; the panic was caught at the boundary.
    pub const PANIC: i32 = 5;

    /// A short name for a status code (`"unknown"` for codes not defined here).
    pub fn name(code: i32) -> &'static str {
        match code {
            OK => "ok",
            INVALID_REQUEST => "invalid request",
            UNSUPPORTED_PATTERN => "unsupported pattern",
            MISSING_INPUT => "missing input",
            FAILED => "failed",
            PANIC => "panic",
            _ => "unknown",
        }
    }
}

/// [`PatternSpec::kind`]: `k` kept weights per row, anywhere in the row.
pub const PATTERN_UNSTRUCTURED: u32 = 0;
/// [`PatternSpec::kind`]: `n` kept in every group of `m` consecutive inputs.
pub const PATTERN_NM: u32 = 1;

/// [`Descriptor::patterns`] bit: the plugin handles [`PATTERN_UNSTRUCTURED`].
pub const SUPPORTS_UNSTRUCTURED: u32 = 1 << 0;
/// [`Descriptor::patterns`] bit: the plugin handles [`PATTERN_NM`].
pub const SUPPORTS_NM: u32 = 1 << 1;

/// The sparsity pattern a mask must follow.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatternSpec {
    /// [`PATTERN_UNSTRUCTURED`] or [`PATTERN_NM`].
    pub kind: u32,
    /// Zero (padding made explicit; reserved).
    pub reserved: u32,
    /// Weights kept in every row (both kinds; for N:M it is `cols / m * n`).
    pub k: u64,
    /// N:M only: weights kept in every group (0 for unstructured).
    pub n: u64,
    /// N:M only: group size (0 for unstructured).
    pub m: u64,
}

/// What the host asks a plugin for: a mask for one layer.
///
/// All pointers are owned by the host and valid only during the `compute` call.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct MaskRequest {
    /// `size_of::<MaskRequest>()` as the host knows it (see the crate docs).
    pub struct_size: u64,
    /// Rows of the weight matrix (`d_out`).
    pub rows: u64,
    /// Columns of the weight matrix (`d_in`).
    pub cols: u64,
    /// Weights, row-major f32, `rows * cols` values; never null.
    pub weights: *const f32,
    /// Gram diagonal `G[j,j] = ||X_j||²`, `cols` values; null when absent.
    pub gram_diag: *const f32,
    /// Full Gram matrix `X Xᵀ`, row-major, `cols * cols` values; null when absent.
    pub gram: *const f32,
    /// The pattern the mask must follow.
    pub pattern: PatternSpec,
    /// Free-form options for the plugin, NUL-terminated UTF-8; null when none.
    pub options: *const c_char,
}

/// `compute`: fills `out_mask` (`rows * cols` bytes, 1 = kept) and returns a [`status`].
pub type ComputeFn = unsafe extern "C" fn(request: *const MaskRequest, out_mask: *mut u8) -> i32;

/// `last_error`: the message of the last failure on this thread (NUL-terminated, owned by
/// the plugin; may be null when there is none).
pub type LastErrorFn = unsafe extern "C" fn() -> *const c_char;

/// What a plugin says about itself; returned by the entry symbol, lives as long as the
/// library.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Descriptor {
    /// [`ABI_VERSION`] the plugin was built for.
    pub abi_version: u32,
    /// `size_of::<Descriptor>()` as the plugin knows it.
    pub struct_size: u32,
    /// The plugin's name (what `--warm-start NAME` resolves), NUL-terminated.
    pub name: *const c_char,
    /// The plugin's own version, NUL-terminated.
    pub version: *const c_char,
    /// Bit set of [`SUPPORTS_UNSTRUCTURED`] and [`SUPPORTS_NM`].
    pub patterns: u32,
    /// Zero (padding made explicit; reserved).
    pub reserved: u32,
    /// Computes a mask.
    pub compute: Option<ComputeFn>,
    /// The message of the last failure on the calling thread.
    pub last_error: Option<LastErrorFn>,
}

// SAFETY: a descriptor is immutable after the entry symbol returns it; its pointers
// point at data that lives as long as the library.
unsafe impl Sync for Descriptor {}
// SAFETY: as above; nothing in it is tied to a thread.
unsafe impl Send for Descriptor {}

/// The entry symbol's type.
pub type EntryFn = unsafe extern "C" fn() -> *const Descriptor;

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
    /// The [`Descriptor::patterns`] bit this pattern needs.
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
/// function receives from [`export_plugin!`].
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

/// Support code of [`export_plugin!`]; not part of the API.
#[doc(hidden)]
pub mod __private {
    use super::*;
    use std::cell::RefCell;
    use std::ffi::CString;
    use std::panic::{catch_unwind, AssertUnwindSafe};

    thread_local! {
        static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
    }

    /// Stores the last error of this thread (interior NULs are replaced).
    pub fn set_last_error(message: &str) {
        let c = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
        LAST_ERROR.with(|e| *e.borrow_mut() = c);
    }

    /// Pointer to this thread's last error (valid until the next call on this thread).
    pub fn last_error_ptr() -> *const c_char {
        catch_unwind(|| LAST_ERROR.with(|e| e.borrow().as_ptr())).unwrap_or(std::ptr::null())
    }

    fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
        if let Some(s) = p.downcast_ref::<&str>() {
            (*s).to_string()
        } else if let Some(s) = p.downcast_ref::<String>() {
            s.clone()
        } else {
            "(non-string panic payload)".to_string()
        }
    }

    /// The body of an exported `compute`: checks the request, calls `f`, catches panics,
    /// records errors.
    ///
    /// # Safety
    ///
    /// As [`Request::from_raw`]; `out` is null or valid for `rows * cols` bytes.
    pub unsafe fn compute(
        supported: u32,
        req: *const MaskRequest,
        out: *mut u8,
        f: fn(&Request<'_>, &mut [u8]) -> Result<(), PluginError>,
    ) -> i32 {
        let result = catch_unwind(AssertUnwindSafe(|| {
            let r = Request::from_raw(req)?;
            if r.pattern.support_bit() & supported == 0 {
                return Err(PluginError::new(
                    status::UNSUPPORTED_PATTERN,
                    format!("pattern {:?} is not supported by this plugin", r.pattern),
                ));
            }
            if out.is_null() {
                return Err(PluginError::new(
                    status::INVALID_REQUEST,
                    "output mask pointer is null",
                ));
            }
            let out = std::slice::from_raw_parts_mut(out, r.rows * r.cols);
            f(&r, out)
        }));
        match result {
            Ok(Ok(())) => status::OK,
            Ok(Err(e)) => {
                set_last_error(&e.message);
                e.code
            }
            Err(p) => {
                set_last_error(&format!("plugin panicked: {}", panic_message(&*p)));
                status::PANIC
            }
        }
    }

    /// Builds a descriptor (once per library; strings are leaked on purpose: they live as
    /// long as the library, which is never unloaded).
    pub fn descriptor(
        name: &str,
        version: &str,
        patterns: u32,
        compute: ComputeFn,
        last_error: LastErrorFn,
    ) -> Descriptor {
        let leak = |s: &str| -> *const c_char {
            CString::new(s)
                .expect("plugin name and version have no NUL")
                .into_raw()
        };
        Descriptor {
            abi_version: ABI_VERSION,
            struct_size: std::mem::size_of::<Descriptor>() as u32,
            name: leak(name),
            version: leak(version),
            patterns,
            reserved: 0,
            compute: Some(compute),
            last_error: Some(last_error),
        }
    }

    /// The body of the exported entry symbol: builds the descriptor once, catches panics.
    pub fn entry(
        cell: &'static std::sync::OnceLock<Descriptor>,
        make: fn() -> Descriptor,
    ) -> *const Descriptor {
        catch_unwind(|| cell.get_or_init(make) as *const Descriptor).unwrap_or_else(|p| {
            set_last_error(&format!("plugin panicked: {}", panic_message(&*p)));
            std::ptr::null()
        })
    }
}

/// Exports a Rust warm start as a sparseswaps plugin.
///
/// Generates the entry symbol `sparseswaps_plugin_v1`, the descriptor, and the `compute`
/// and `last_error` functions; every exported function catches panics (a panic becomes
/// [`status::PANIC`] with its message), errors are stored per thread for `last_error`,
/// and requests are checked (null pointers, `struct_size`, pattern support) before
/// `compute` sees them. Put it in a crate of its own with `crate-type = ["cdylib"]` (add
/// `"rlib"` only so that other crates can depend on it to get the cdylib built; never
/// link it).
///
/// ```
/// use sparseswaps_plugin_abi::{export_plugin, Pattern, PluginError, Request, SUPPORTS_UNSTRUCTURED};
///
/// /// Keeps the first k weights of every row.
/// fn first_k(req: &Request<'_>, out: &mut [u8]) -> Result<(), PluginError> {
///     let Pattern::Unstructured { k } = req.pattern else { unreachable!() };
///     for row in out.chunks_mut(req.cols) {
///         for (j, v) in row.iter_mut().enumerate() {
///             *v = (j < k) as u8;
///         }
///     }
///     Ok(())
/// }
///
/// export_plugin! {
///     name: "first-k",
///     version: env!("CARGO_PKG_VERSION"),
///     patterns: SUPPORTS_UNSTRUCTURED,
///     compute: first_k,
/// }
/// # fn main() {}
/// ```
///
/// Only one plugin may be exported per library, and two crates that each export one
/// must not be linked into the same Rust binary without LTO (their entry symbols share
/// a name; link them as shared libraries instead).
#[macro_export]
macro_rules! export_plugin {
    (
        name: $name:expr,
        version: $version:expr,
        patterns: $patterns:expr,
        compute: $compute:path $(,)?
    ) => {
        const _: () = {
            static DESCRIPTOR: ::std::sync::OnceLock<$crate::Descriptor> =
                ::std::sync::OnceLock::new();

            unsafe extern "C" fn __sparseswaps_compute(
                req: *const $crate::MaskRequest,
                out: *mut u8,
            ) -> i32 {
                $crate::__private::compute($patterns, req, out, $compute)
            }

            unsafe extern "C" fn __sparseswaps_last_error() -> *const ::std::ffi::c_char {
                $crate::__private::last_error_ptr()
            }

            fn __sparseswaps_make() -> $crate::Descriptor {
                $crate::__private::descriptor(
                    $name,
                    $version,
                    $patterns,
                    __sparseswaps_compute,
                    __sparseswaps_last_error,
                )
            }

            /// The plugin's entry symbol (ABI v1).
            #[no_mangle]
            pub extern "C" fn sparseswaps_plugin_v1() -> *const $crate::Descriptor {
                $crate::__private::entry(&DESCRIPTOR, __sparseswaps_make)
            }
        };
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn keep_first(req: &Request<'_>, out: &mut [u8]) -> Result<(), PluginError> {
        if req.options == Some("panic") {
            panic!("asked to panic");
        }
        if req.options == Some("fail") {
            return Err(PluginError::failed("asked to fail"));
        }
        let Pattern::Unstructured { k } = req.pattern else {
            unreachable!()
        };
        for row in out.chunks_mut(req.cols) {
            for (j, v) in row.iter_mut().enumerate() {
                *v = (j < k) as u8;
            }
        }
        Ok(())
    }

    export_plugin! {
        name: "keep-first",
        version: "1.2.3",
        patterns: SUPPORTS_UNSTRUCTURED,
        compute: keep_first,
    }

    extern "C" {
        // The symbol the macro exported above (not nameable in Rust: it lives in an
        // anonymous const, as in every plugin).
        fn sparseswaps_plugin_v1() -> *const Descriptor;
    }

    fn request(w: &[f32], rows: u64, cols: u64, k: u64) -> MaskRequest {
        MaskRequest {
            struct_size: std::mem::size_of::<MaskRequest>() as u64,
            rows,
            cols,
            weights: w.as_ptr(),
            gram_diag: std::ptr::null(),
            gram: std::ptr::null(),
            pattern: PatternSpec {
                kind: PATTERN_UNSTRUCTURED,
                reserved: 0,
                k,
                n: 0,
                m: 0,
            },
            options: std::ptr::null(),
        }
    }

    #[test]
    fn macro_exports_a_working_plugin() {
        let d = unsafe { &*sparseswaps_plugin_v1() };
        assert_eq!(d.abi_version, ABI_VERSION);
        assert_eq!(d.struct_size as usize, std::mem::size_of::<Descriptor>());
        assert_eq!(
            unsafe { CStr::from_ptr(d.name) }.to_str().unwrap(),
            "keep-first"
        );
        assert_eq!(
            unsafe { CStr::from_ptr(d.version) }.to_str().unwrap(),
            "1.2.3"
        );
        let (compute, last_error) = (d.compute.unwrap(), d.last_error.unwrap());
        let w = [1.0f32; 6];
        let mut out = [9u8; 6];
        let mut req = request(&w, 2, 3, 2);
        assert_eq!(unsafe { compute(&req, out.as_mut_ptr()) }, status::OK);
        assert_eq!(out, [1, 1, 0, 1, 1, 0]);

        let err = |req: &MaskRequest| {
            let mut out = [9u8; 6];
            let code = unsafe { compute(req, out.as_mut_ptr()) };
            let msg = unsafe { CStr::from_ptr(last_error()) }
                .to_str()
                .unwrap()
                .to_string();
            (code, msg)
        };
        let opt = |s: &'static [u8]| s.as_ptr() as *const c_char;
        req.options = opt(b"panic\0");
        let (code, msg) = err(&req);
        assert_eq!(
            (code, msg.as_str()),
            (status::PANIC, "plugin panicked: asked to panic")
        );
        req.options = opt(b"fail\0");
        assert_eq!(err(&req), (status::FAILED, "asked to fail".to_string()));
        req.options = std::ptr::null();
        req.struct_size -= 8;
        let (code, msg) = err(&req);
        assert_eq!(code, status::INVALID_REQUEST);
        assert!(msg.contains("struct_size"), "{msg}");
        req.struct_size += 8;
        req.pattern = PatternSpec {
            kind: PATTERN_NM,
            reserved: 0,
            k: 2,
            n: 1,
            m: 3,
        };
        assert_eq!(err(&req).0, status::UNSUPPORTED_PATTERN);
        req.pattern.kind = 7;
        assert_eq!(err(&req).0, status::UNSUPPORTED_PATTERN);
        assert_eq!(
            unsafe { compute(std::ptr::null(), out.as_mut_ptr()) },
            status::INVALID_REQUEST
        );
        req.pattern = request(&w, 2, 3, 2).pattern;
        assert_eq!(
            unsafe { compute(&req, std::ptr::null_mut()) },
            status::INVALID_REQUEST
        );
    }

    #[test]
    fn missing_gram_is_reported() {
        let w = [1.0f32; 4];
        let req = request(&w, 1, 4, 2);
        let r = unsafe { Request::from_raw(&req) }.unwrap();
        assert_eq!(
            r.gram_diag_or_full().unwrap_err().code,
            status::MISSING_INPUT
        );
        let g: Vec<f32> = (0..16).map(|i| i as f32).collect();
        let mut req = req;
        req.gram = g.as_ptr();
        let r = unsafe { Request::from_raw(&req) }.unwrap();
        assert_eq!(&*r.gram_diag_or_full().unwrap(), &[0.0, 5.0, 10.0, 15.0]);
    }
}
