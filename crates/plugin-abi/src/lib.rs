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
//!   fields), the patterns it supports ([`SUPPORTS_UNSTRUCTURED`], [`SUPPORTS_NM`]), the
//!   inputs it cannot work without ([`NEEDS_GRAM_DIAG`], [`NEEDS_FULL_GRAM`]: the host
//!   fails before calling it when it cannot send them), and two functions: `compute` and
//!   `last_error`.
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

//!
//! ## Layout
//!
//! `types` (the C types and constants), [`status`] (the status codes), `request` (the
//! checked request, the pattern and the error a plugin reports), `export` (the
//! [`export_plugin!`] macro; its support code is the hidden `__private` module). Every
//! public item is re-exported here.

#![warn(missing_docs)]

#[doc(hidden)]
pub mod __private;
mod export;
mod request;
pub mod status;
mod types;

pub use request::{missing_input, Pattern, PluginError, Request};
pub use types::{
    ComputeFn, Descriptor, EntryFn, LastErrorFn, MaskRequest, PatternSpec, ABI_VERSION,
    ENTRY_SYMBOL, ENTRY_SYMBOL_NUL, NEEDS_FULL_GRAM, NEEDS_GRAM_DIAG, PATTERN_NM,
    PATTERN_UNSTRUCTURED, SUPPORTS_NM, SUPPORTS_UNSTRUCTURED,
};
