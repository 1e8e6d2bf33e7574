//! Status codes returned by `compute`.

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
