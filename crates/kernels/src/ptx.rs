//! The PTX that `build.rs` compiled from `cuda/*.cu`, or the reason it is missing.

mod generated {
    include!(concat!(env!("OUT_DIR"), "/ptx.rs"));
}

pub use generated::{NVCC_USED, PTX_ARCH, PTX_BUILT, PTX_MISSING_REASON, SWAPS_PTX};

use crate::error::{KernelsError, Result};

/// The PTX of the swap kernels, or [`KernelsError::KernelsNotBuilt`] with build.rs's
/// reason (first of the run-time checks: no PTX, no point looking for a driver).
pub fn swaps_ptx() -> Result<&'static str> {
    SWAPS_PTX.ok_or_else(|| KernelsError::KernelsNotBuilt {
        reason: PTX_MISSING_REASON
            .unwrap_or("build.rs produced no PTX for cuda/swaps.cu")
            .to_string(),
    })
}

/// The PTX ISA version of the built kernels (`.version` line, e.g. "9.0"). A driver
/// loads PTX only up to the ISA of its own CUDA version (CUDA 13.0: 9.0).
pub fn ptx_isa_version() -> Option<&'static str> {
    SWAPS_PTX?
        .lines()
        .find_map(|l| l.trim().strip_prefix(".version "))
        .map(str::trim)
}

/// One line on how this build was made, for logs and reports.
pub fn build_info() -> String {
    match PTX_MISSING_REASON {
        None => format!(
            "CUDA kernels built for {PTX_ARCH} (PTX ISA {}) by {NVCC_USED}",
            ptx_isa_version().unwrap_or("?")
        ),
        Some(r) => format!("CUDA kernels not built: {r}"),
    }
}
