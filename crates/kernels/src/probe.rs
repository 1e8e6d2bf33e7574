//! Run-time availability checks that must happen before cudarc is touched.
//!
//! cudarc (with dynamic loading) panics on first use when a CUDA library is absent.
//! These probes load the same library names cudarc would try, with libloading, and turn
//! absence into a typed error instead.

use crate::error::{KernelsError, Result};
use crate::guard::guard;

/// Candidate file names of a CUDA library, as cudarc searches them.
fn candidates(lib: &str) -> Vec<String> {
    cudarc::get_lib_name_candidates(lib)
}

/// Tries each candidate; `Ok` when one loads, else (names tried, the loader's message for
/// the most telling name: the versioned soname a driver installs, e.g. `libcuda.so.1`).
fn probe(libs: &[&str]) -> std::result::Result<(), (String, String)> {
    let mut tried: Vec<String> = Vec::new();
    let mut messages: Vec<String> = Vec::new();
    for lib in libs {
        for name in candidates(lib) {
            // SAFETY: loading runs the library's initialisers. These are the NVIDIA
            // libraries cudarc itself would load next; nothing else is loaded here.
            match unsafe { libloading::Library::new(&name) } {
                Ok(_lib) => return Ok(()),
                Err(e) => {
                    // libloading's Display says only "dlopen failed"; the cause is in
                    // its source (dlerror's text).
                    let cause = std::error::Error::source(&e)
                        .map_or_else(|| e.to_string(), |s| s.to_string());
                    messages.push(cause);
                }
            }
            tried.push(name);
        }
    }
    // The names worth showing: `libcuda.so`, `libcuda.so.1`, `nvcuda.dll` (plain or with
    // a numeric version suffix), not cudarc's exotic variants.
    let key = |n: &str| {
        libs.iter().any(|lib| {
            let base = format!(
                "{}{lib}{}",
                std::env::consts::DLL_PREFIX,
                std::env::consts::DLL_SUFFIX
            );
            n.strip_prefix(&base)
                .is_some_and(|rest| rest.chars().all(|c| c == '.' || c.is_ascii_digit()))
        })
    };
    let mut shown: Vec<&str> = tried
        .iter()
        .map(String::as_str)
        .filter(|n| key(n))
        .collect();
    // The soname drivers install (`libcuda.so.1`) first.
    shown.sort_by_key(|n| !n.ends_with(".so.1"));
    shown.truncate(4);
    let detail = tried
        .iter()
        .position(|n| n.ends_with(".so.1"))
        .or_else(|| tried.iter().position(|n| key(n)))
        .and_then(|i| messages.get(i).cloned())
        .or_else(|| messages.last().cloned())
        .unwrap_or_else(|| "no candidate names".into());
    let others = tried.len().saturating_sub(shown.len());
    Err((
        format!("{} or {others} other names", shown.join(", ")),
        detail,
    ))
}

/// Checks that the NVIDIA driver library (libcuda) can be loaded.
pub fn check_driver() -> Result<()> {
    // cudarc looks for "cuda" (Linux: libcuda.so, libcuda.so.1, ...) and "nvcuda" (Windows).
    probe(&["cuda", "nvcuda"]).map_err(|(tried, detail)| KernelsError::NoDriver { tried, detail })
}

/// Checks that cuBLAS can be loaded (only the Gram accumulation needs it).
pub fn check_cublas() -> Result<()> {
    probe(&["cublas"]).map_err(|(tried, detail)| KernelsError::NoCublas { tried, detail })
}

/// Number of CUDA devices the driver reports; requires [`check_driver`] to pass first.
pub fn device_count() -> Result<usize> {
    check_driver()?;
    // A panic inside cudarc (a symbol missing from an old driver, say) must not take the
    // caller down: it becomes a "no device" reason.
    let n = guard(cudarc::driver::CudaContext::device_count, |m| {
        KernelsError::NoDevice {
            detail: format!("the CUDA driver library panicked while counting devices: {m}"),
        }
    })?
    .map_err(|e| KernelsError::NoDevice {
        detail: format!("the driver failed to initialise or count devices: {e}"),
    })?;
    Ok(n.max(0) as usize)
}

/// All run-time checks short of allocating memory, in order: kernels built, driver
/// present, at least `ordinal + 1` devices. Returns the device count.
pub fn check_available(ordinal: usize) -> Result<usize> {
    crate::ptx::swaps_ptx()?;
    check_driver()?;
    let n = device_count()?;
    if n == 0 {
        return Err(KernelsError::NoDevice {
            detail: "the driver reports 0 devices".into(),
        });
    }
    if ordinal >= n {
        return Err(KernelsError::NoDevice {
            detail: format!("device {ordinal} requested, the driver reports {n}"),
        });
    }
    Ok(n)
}
