//! The `#[repr(C)]` types and constants of the ABI, as `sparseswaps_plugin.h` declares
//! them (a test checks that sizes and offsets agree).

use std::ffi::c_char;

/// ABI version of this crate: the major version is part of [`ENTRY_SYMBOL`].
pub const ABI_VERSION: u32 = 1;

/// Name of the one symbol a plugin exports.
pub const ENTRY_SYMBOL: &str = "sparseswaps_plugin_v1";

/// [`ENTRY_SYMBOL`] with its terminating NUL, as `dlsym` wants it.
pub const ENTRY_SYMBOL_NUL: &[u8] = b"sparseswaps_plugin_v1\0";

/// [`PatternSpec::kind`]: `k` kept weights per row, anywhere in the row.
pub const PATTERN_UNSTRUCTURED: u32 = 0;
/// [`PatternSpec::kind`]: `n` kept in every group of `m` consecutive inputs.
pub const PATTERN_NM: u32 = 1;

/// [`Descriptor::patterns`] bit: the plugin handles [`PATTERN_UNSTRUCTURED`].
pub const SUPPORTS_UNSTRUCTURED: u32 = 1 << 0;
/// [`Descriptor::patterns`] bit: the plugin handles [`PATTERN_NM`].
pub const SUPPORTS_NM: u32 = 1 << 1;

/// [`Descriptor::needs`] bit: the plugin cannot work without the Gram diagonal (the full
/// Gram matrix also satisfies it: the diagonal is read off it).
pub const NEEDS_GRAM_DIAG: u32 = 1 << 0;
/// [`Descriptor::needs`] bit: the plugin cannot work without the full Gram matrix.
pub const NEEDS_FULL_GRAM: u32 = 1 << 1;

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

/// `compute`: fills `out_mask` (`rows * cols` bytes, 1 = kept) and returns a [`status`](crate::status).
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
    /// Bit set of [`NEEDS_GRAM_DIAG`] and [`NEEDS_FULL_GRAM`]: the inputs without which
    /// the host does not call `compute` (it fails, naming the plugin and the input). Zero
    /// declares nothing; this field was a zero `reserved` before, so plugins built then
    /// still load.
    pub needs: u32,
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
