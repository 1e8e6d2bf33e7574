//! Turns a panic inside cudarc into a typed error.
//!
//! With dynamic loading, cudarc loads each CUDA library, and each of its symbols, on first
//! use and panics when one is missing (an old driver, a partial toolkit install, a library
//! found by one name but not another). The probes in [`crate::probe`] catch an absent
//! library before cudarc is touched, but not a missing symbol; so every call into cudarc
//! from the backend's entry points runs under [`guard`], and the caller gets a
//! [`KernelsError`] instead of an unwinding panic (or an abort across FFI).

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::error::{KernelsError, Result};

/// Runs `f`; a panic becomes the error `on_panic` builds from the panic's message.
///
/// `AssertUnwindSafe`: after a panic the caller only returns the error. What a panic can
/// leave half-done is cudarc's lazy library and symbol handles (a `OnceLock` whose
/// initialiser panicked stays empty and is retried) and, for the refinement entry
/// points, the caller's mask, which is unspecified after any error anyway.
pub(crate) fn guard<T>(
    f: impl FnOnce() -> T,
    on_panic: impl FnOnce(String) -> KernelsError,
) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| on_panic(panic_message(payload.as_ref())))
}

/// Like [`guard`] for work that returns this crate's `Result`: a panic becomes
/// [`KernelsError::Driver`] with `context`.
pub(crate) fn guard_driver<T>(context: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    guard(f, |m| KernelsError::Driver {
        context: context.to_string(),
        message: format!("panicked: {m}"),
    })?
}

/// The text of a panic payload (`panic!` with a literal or a formatted message).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_device(m: String) -> KernelsError {
        KernelsError::NoDevice { detail: m }
    }

    #[test]
    fn a_panic_becomes_the_error_with_its_message() {
        let r: Result<u32> = guard(|| panic!("symbol cuFoo missing"), no_device);
        assert_eq!(
            r,
            Err(KernelsError::NoDevice {
                detail: "symbol cuFoo missing".into()
            })
        );
        let lib = "cuda";
        let r: Result<()> = guard(|| panic!("Unable to load {lib}"), no_device);
        assert_eq!(
            r.unwrap_err().to_string(),
            "CUDA backend unavailable: no CUDA device (Unable to load cuda)"
        );
        let r: Result<()> = guard(|| std::panic::panic_any(7u8), no_device);
        assert!(r
            .unwrap_err()
            .to_string()
            .contains("a panic without a message"));
    }

    #[test]
    fn no_panic_passes_the_value_through() {
        assert_eq!(guard(|| 41 + 1, no_device), Ok(42));
    }

    #[test]
    fn driver_guard_keeps_errors_and_types_panics() {
        let e = guard_driver::<()>("loading the PTX", || panic!("cuModuleLoadData missing"))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "CUDA driver error during loading the PTX: panicked: cuModuleLoadData missing"
        );
        let inner = KernelsError::UnknownBackend("x".into());
        assert_eq!(guard_driver::<()>("x", || Err(inner.clone())), Err(inner));
        assert_eq!(guard_driver("x", || Ok(3)), Ok(3));
    }
}
