//! Per-chunk device buffers: how many rows fit in free memory, and their allocation.

use cudarc::driver::CudaSlice;

use super::CudaBackend;
use crate::error::{driver_err, KernelsError, Result};

/// Rows per block of `recompute_c` (`RC_RB` in swaps.cu): its grid's y dimension is
/// `rows / RC_RB`, limited to 65535 by CUDA.
pub(super) const RC_RB: usize = 8;
/// Most rows in one chunk: keeps every grid dimension inside CUDA's limits.
pub(super) const MAX_CHUNK_ROWS: usize = 65_535 * RC_RB;
// recompute_c's grid y is rows / RC_RB, at most 65535.
const _: () = assert!(MAX_CHUNK_ROWS.div_ceil(RC_RB) <= 65_535);
/// Device memory left unused: the driver, the module and cuBLAS workspaces need some.
const RESERVE_BYTES: usize = 256 << 20;

/// Device buffers of one chunk of rows.
pub(super) struct ChunkBuffers {
    pub(super) w: CudaSlice<f32>,
    pub(super) mask: CudaSlice<u8>,
    pub(super) c: CudaSlice<f64>,
    pub(super) y: CudaSlice<f64>,
    /// `(h, b)` pairs, unstructured only (length 2 per element).
    pub(super) hb: CudaSlice<f32>,
    pub(super) minv: CudaSlice<f32>,
    pub(super) status: CudaSlice<i32>,
    pub(super) err: CudaSlice<f64>,
    pub(super) energy: CudaSlice<f64>,
    pub(super) swaps: CudaSlice<i32>,
    pub(super) steps: CudaSlice<i32>,
    pub(super) since: CudaSlice<i32>,
    pub(super) need: CudaSlice<i32>,
    /// `(u, q)` per row when a search step is run without applying it.
    pub(super) picks: CudaSlice<i32>,
}

/// Bytes per row of [`ChunkBuffers`].
fn bytes_per_row(d: usize, unstructured: bool) -> usize {
    // w f32, mask u8, c f64, y f64; plus hb 2 x f32 and minv f32 when unstructured; plus
    // the per-row state.
    let base = d * (4 + 1 + 8 + 8) + 64;
    if unstructured {
        base + d * (8 + 4)
    } else {
        base
    }
}

impl CudaBackend {
    /// Caps the rows processed at once (default: as many as fit in free memory). Tests use
    /// it to exercise chunking on small layers; results never depend on it.
    pub fn with_max_chunk_rows(mut self, rows: usize) -> Self {
        self.chunk_cap = Some(rows.clamp(1, MAX_CHUNK_ROWS));
        self
    }

    /// Rows per chunk for a layer of width `d`, or [`KernelsError::OutOfMemory`].
    pub(super) fn plan_chunk_rows(
        &self,
        d: usize,
        d_out: usize,
        unstructured: bool,
    ) -> Result<usize> {
        let (free, _) = self.memory()?;
        let gram = d * d * 4;
        let per_row = bytes_per_row(d, unstructured);
        let usable = free.saturating_sub(RESERVE_BYTES) / 10 * 9;
        let left = usable.saturating_sub(gram);
        let fit = left / per_row;
        if fit == 0 {
            return Err(KernelsError::OutOfMemory {
                detail: format!(
                    "d_in = {d} needs {} MiB for the Gram matrix plus {} KiB per row; {} MiB free",
                    gram >> 20,
                    per_row >> 10,
                    free >> 20
                ),
            });
        }
        let cap = self.chunk_cap.unwrap_or(MAX_CHUNK_ROWS);
        Ok(fit.min(d_out).min(cap).max(1))
    }

    pub(super) fn alloc_chunk(
        &self,
        rows: usize,
        d: usize,
        unstructured: bool,
    ) -> Result<ChunkBuffers> {
        let s = &self.stream;
        let n = rows * d;
        let nu = if unstructured { n } else { 1 };
        let e = |x| driver_err("allocating chunk buffers", x);
        Ok(ChunkBuffers {
            w: s.alloc_zeros::<f32>(n).map_err(e)?,
            mask: s.alloc_zeros::<u8>(n).map_err(e)?,
            c: s.alloc_zeros::<f64>(n).map_err(e)?,
            y: s.alloc_zeros::<f64>(n).map_err(e)?,
            hb: s.alloc_zeros::<f32>(2 * nu).map_err(e)?,
            minv: s.alloc_zeros::<f32>(nu).map_err(e)?,
            status: s.alloc_zeros::<i32>(rows).map_err(e)?,
            err: s.alloc_zeros::<f64>(rows).map_err(e)?,
            energy: s.alloc_zeros::<f64>(rows).map_err(e)?,
            swaps: s.alloc_zeros::<i32>(rows).map_err(e)?,
            steps: s.alloc_zeros::<i32>(rows).map_err(e)?,
            since: s.alloc_zeros::<i32>(rows).map_err(e)?,
            need: s.alloc_zeros::<i32>(rows).map_err(e)?,
            picks: s.alloc_zeros::<i32>(2 * rows).map_err(e)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_bytes_cover_every_buffer() {
        // 4096 wide, unstructured: w 4 + mask 1 + c 8 + y 8 + hb 8 + minv 4 = 33.
        assert_eq!(bytes_per_row(4096, true), 4096 * 33 + 64);
        assert_eq!(bytes_per_row(4096, false), 4096 * 21 + 64);
    }
}
