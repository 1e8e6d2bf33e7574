//! The CUDA backend: the CPU engine's refinement loop, run on the GPU for many rows at
//! once, with the same decisions (see `cuda/swaps.cu` for the numerics).
//!
//! Host loop per chunk of rows (chunks sized to the free device memory):
//! 1. upload weights and mask rows; exact `c = G p`, `E`, dense energy (`recompute_c`,
//!    `row_sums`);
//! 2. per step, for every active row: unstructured `prep_unstructured` →
//!    `search_unstructured` → `pick_apply_unstructured`, or N:M `step_nm`; then the exact
//!    recompute of the rows that asked for one (every `recompute_every` swaps, and when a
//!    row stops);
//! 3. read the row statuses back; stop when no row is active; download masks and counts.
//!
//! The Gram matrix is uploaded once per layer and shared by all chunks.
//!
//! Modules, by job: this one opens the device and loads the kernels; `chunk` sizes and
//! allocates the per-chunk buffers; `launch` launches the kernels of one step and the
//! exact recompute; `refine` runs a layer chunk by chunk and implements
//! [`sparseswaps_core::Backend`].

mod chunk;
mod launch;
mod refine;

use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaFunction, CudaStream};
use cudarc::nvrtc::Ptx;

use crate::error::{driver_err, KernelsError, Result};
use crate::guard::{guard, guard_driver};
use crate::probe;
use crate::ptx;

/// The kernels of `cuda/swaps.cu`.
struct Kernels {
    recompute_c: CudaFunction,
    row_sums: CudaFunction,
    prep_unstructured: CudaFunction,
    search_unstructured: CudaFunction,
    pick_apply_unstructured: CudaFunction,
    step_nm: CudaFunction,
    symmetrize_upper: CudaFunction,
}

/// The exact 1-swap engine on one CUDA device.
///
/// Results equal the CPU engine's ([`sparseswaps_core::CpuBackend`] with
/// [`sparseswaps_core::Search::Exhaustive`]): same masks, same per-row swap counts and
/// stop reasons, and errors recomputed exactly in f64 (summed in the same order).
/// [`sparseswaps_core::Search::Bounded`] is refused (see [`crate::check_refine_options`]).
/// Create it with [`CudaBackend::new`], which runs the availability checks in order and
/// names the first that fails.
pub struct CudaBackend {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    kernels: Kernels,
    device_name: String,
    ordinal: usize,
    /// Cap on rows per chunk set by [`CudaBackend::with_max_chunk_rows`].
    chunk_cap: Option<usize>,
}

impl std::fmt::Debug for CudaBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaBackend")
            .field("device", &self.device_name)
            .field("ordinal", &self.ordinal)
            .field("chunk_cap", &self.chunk_cap)
            .finish()
    }
}

impl CudaBackend {
    /// Opens device `ordinal` after the availability checks, in order: kernels built into
    /// this binary, NVIDIA driver library present, device present. Each failure is its own
    /// [`KernelsError`] variant with the reason in words; a panic inside cudarc (a symbol
    /// missing from an old driver) is one too, never an abort.
    pub fn new(ordinal: usize) -> Result<Self> {
        let ptx_src = ptx::swaps_ptx()?;
        probe::check_available(ordinal)?;
        let ctx = guard(
            || CudaContext::new(ordinal),
            |m| KernelsError::NoDevice {
                detail: format!("the CUDA driver panicked while opening device {ordinal}: {m}"),
            },
        )?
        .map_err(|e| driver_err("opening the device", e))?;
        guard_driver("configuring the context", || {
            // One stream carries all work of this backend, so cudarc's per-buffer events
            // (which order work across streams) are pure overhead on every launch.
            // SAFETY: no other stream of this context touches buffers made here.
            unsafe { ctx.disable_event_tracking() };
            Ok(())
        })?;
        let device_name = guard_driver("reading the device name", || {
            Ok(ctx
                .name()
                .unwrap_or_else(|_| format!("CUDA device {ordinal}")))
        })?;
        let stream = guard_driver("creating a stream", || {
            ctx.new_stream()
                .map_err(|e| driver_err("creating a stream", e))
        })?;
        let loading = format!(
            "loading the PTX ({}; a driver older than the nvcc that built it cannot load it: rebuild with an nvcc no newer than the driver)",
            ptx::build_info()
        );
        let module = guard_driver(&loading, || {
            ctx.load_module(Ptx::from_src(ptx_src))
                .map_err(|e| KernelsError::Driver {
                    context: loading.clone(),
                    message: e.to_string(),
                })
        })?;
        let f = |name: &str| {
            let context = format!("loading kernel {name}");
            guard_driver(&context, || {
                module
                    .load_function(name)
                    .map_err(|e| driver_err(&context, e))
            })
        };
        let kernels = Kernels {
            recompute_c: f("recompute_c")?,
            row_sums: f("row_sums")?,
            prep_unstructured: f("prep_unstructured")?,
            search_unstructured: f("search_unstructured")?,
            pick_apply_unstructured: f("pick_apply_unstructured")?,
            step_nm: f("step_nm")?,
            symmetrize_upper: f("symmetrize_upper")?,
        };
        Ok(CudaBackend {
            ctx,
            stream,
            kernels,
            device_name,
            ordinal,
            chunk_cap: None,
        })
    }

    /// The device's name as the driver reports it.
    pub fn device_name(&self) -> &str {
        &self.device_name
    }

    /// The device ordinal.
    pub fn ordinal(&self) -> usize {
        self.ordinal
    }

    pub(crate) fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    pub(crate) fn symmetrize_kernel(&self) -> &CudaFunction {
        &self.kernels.symmetrize_upper
    }

    /// Free and total device memory in bytes.
    pub fn memory(&self) -> Result<(usize, usize)> {
        guard_driver("querying device memory", || {
            self.ctx
                .mem_get_info()
                .map_err(|e| driver_err("querying device memory", e))
        })
    }
}
