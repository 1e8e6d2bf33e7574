//! # sparseswaps-kernels
//!
//! The CUDA backend of sparseswaps: the exact 1-swap refinement of
//! [`sparseswaps_core`] run on an NVIDIA GPU, many rows at once, with the same decisions
//! as the CPU engine's exhaustive search (same masks, swap counts and stop reasons: the
//! f32 search, then every near-best candidate re-checked in f64, as the CPU does), and the
//! Gram accumulation `G += Aᵀ A` on cuBLAS. `search = "bounded"` is refused with a clear
//! message rather than ignored ([`check_refine_options`]).
//!
//! What it is for: refining large layers faster than the CPU when a GPU is present, and
//! choosing a backend (`cpu`, `cuda`, `auto`) with [`select_backend`]. What it is not
//! for: anything that must work without a GPU — the crate builds everywhere, but without
//! nvcc at build time, or a driver and a device at run time, [`CudaBackend::new`] returns
//! the reason as a [`KernelsError`] and `auto` falls back to the CPU.
//!
//! Tests: `tests/emulated.rs` and `tests/near_ties.rs` run `cuda/swaps.cu` on the CPU
//! through a small emulation of the CUDA subset it uses (`emu/`) and compare with the CPU
//! engine bit for bit, on every `cargo test` with a C++20 compiler (near ties: cases where
//! an f32-only argmin would decide otherwise); `tests/gpu.rs` compares on a real device
//! when `SPARSESWAPS_GPU_TESTS=1` (`scripts/gpu-check.sh`), and otherwise prints why it
//! did not. A panic inside cudarc (a library or symbol missing) becomes a
//! [`KernelsError`], never an abort.
//!
//! Build: `build.rs` compiles `cuda/*.cu` to PTX with nvcc when it finds one (`NVCC`,
//! `CUDA_HOME`/`CUDA_PATH`, `/usr/local/cuda/bin`, `PATH`) for `SPARSESWAPS_CUDA_ARCH`
//! (default `compute_80`); `SPARSESWAPS_REQUIRE_NVCC=1` turns a missing nvcc into a
//! build error. cudarc loads the CUDA libraries at run time, so nothing links against
//! CUDA.
//!
//! ```
//! use sparseswaps_kernels::{select_backend, BackendKind};
//! let (backend, reason) = select_backend(BackendKind::Auto).unwrap();
//! if let Some(why) = reason {
//!     println!("{why}"); // e.g. no NVIDIA driver: running on the CPU
//! }
//! println!("refining on {}", backend.name());
//! ```

#![warn(missing_docs)]

pub mod backend;
pub mod error;
pub mod gram;
mod guard;
pub mod options;
pub mod probe;
pub mod ptx;
pub mod select;

pub use backend::CudaBackend;
pub use error::{KernelsError, Result};
pub use gram::{gram_of, Activations, CudaGram};
pub use options::{check_refine_options, BOUNDED_SEARCH_REFUSED};
pub use select::{cuda_unavailable_reason, select_backend, select_backend_on, BackendKind};
