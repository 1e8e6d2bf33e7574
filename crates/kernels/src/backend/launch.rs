//! Kernel launches: one refinement step for every active row of a chunk, and the exact
//! recompute of `c`, `E` (and the energy).

use cudarc::driver::{CudaSlice, DriverError, LaunchConfig, PushKernelArg};
use sparseswaps_core::RefineOptions;

use super::chunk::{ChunkBuffers, RC_RB};
use super::CudaBackend;
use crate::error::{driver_err, Result};

/// Row status codes shared with the kernels.
pub(super) const ST_ACTIVE: i32 = 0;
pub(super) const ST_OPTIMAL: i32 = 1;
pub(super) const ST_MAX_SWAPS: i32 = 2;
pub(super) const ST_NOTHING: i32 = 3;

/// Rows per block and candidate `u` per block of `search_unstructured` (`S_RB`, `S_TU`).
const S_RB: usize = 32;
const S_TU: usize = 128;
/// Threads per block of the row-per-block kernels.
const BLOCK: u32 = 256;

/// The per-step arguments every decision kernel takes.
struct StepArgs {
    rows: i32,
    d: i32,
    max_swaps: i64,
    every: i32,
    rel_tol: f64,
}

fn launched(what: &str, r: std::result::Result<impl Sized, DriverError>) -> Result<()> {
    r.map(|_| ())
        .map_err(|x| driver_err(&format!("launching {what}"), x))
}

/// One block per row.
fn row_blocks(rows: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (rows as u32, 1, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    }
}

impl CudaBackend {
    /// Steps until no row of the chunk is active (`apply == 0`: one unstructured search
    /// step whose picks are left in `b.picks`, nothing applied).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn iterate(
        &self,
        gram: &CudaSlice<f32>,
        b: &mut ChunkBuffers,
        rows: usize,
        d: usize,
        group: Option<(usize, usize)>,
        opts: &RefineOptions,
        apply: i32,
    ) -> Result<()> {
        let a = StepArgs {
            rows: rows as i32,
            d: d as i32,
            max_swaps: opts.max_swaps.map_or(-1, i64::from),
            every: opts.recompute_every.min(i32::MAX as u32) as i32,
            rel_tol: opts.rel_tol,
        };
        loop {
            match group {
                None => {
                    self.step_unstructured(gram, b, rows, d, &a, apply)?;
                    if apply == 0 {
                        return Ok(());
                    }
                }
                Some((_, m)) => self.step_nm(gram, b, rows, m, &a)?,
            }
            self.recompute(gram, b, rows, d, false)?;
            let status = self
                .stream
                .clone_dtoh(&b.status.slice(0..rows))
                .map_err(|x| driver_err("reading row status", x))?;
            if !status.contains(&ST_ACTIVE) {
                return Ok(());
            }
        }
    }

    /// `prep_unstructured` → `search_unstructured` → `pick_apply_unstructured`.
    fn step_unstructured(
        &self,
        gram: &CudaSlice<f32>,
        b: &mut ChunkBuffers,
        rows: usize,
        d: usize,
        a: &StepArgs,
        apply: i32,
    ) -> Result<()> {
        let s = &self.stream;
        let cfg = LaunchConfig {
            grid_dim: (rows as u32, d.div_ceil(BLOCK as usize) as u32, 1),
            block_dim: (BLOCK, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut l = s.launch_builder(&self.kernels.prep_unstructured);
        l.arg(gram)
            .arg(&b.w)
            .arg(&b.mask)
            .arg(&b.c)
            .arg(&b.status)
            .arg(&mut b.hb)
            .arg(&a.rows)
            .arg(&a.d);
        // SAFETY: argument list matches the kernel's signature; every buffer holds at
        // least rows * d elements (hb: 2 * rows * d f32 = float2s).
        launched("prep_unstructured", unsafe { l.launch(cfg) })?;

        let cfg = LaunchConfig {
            grid_dim: (d.div_ceil(S_TU) as u32, rows.div_ceil(S_RB) as u32, 1),
            block_dim: (BLOCK, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut l = s.launch_builder(&self.kernels.search_unstructured);
        l.arg(gram)
            .arg(&b.w)
            .arg(&b.hb)
            .arg(&b.status)
            .arg(&mut b.minv)
            .arg(&a.rows)
            .arg(&a.d);
        // SAFETY: as above.
        launched("search_unstructured", unsafe { l.launch(cfg) })?;

        let mut l = s.launch_builder(&self.kernels.pick_apply_unstructured);
        l.arg(gram)
            .arg(&b.w)
            .arg(&mut b.mask)
            .arg(&mut b.c)
            .arg(&b.minv)
            .arg(&b.hb)
            .arg(&mut b.status)
            .arg(&mut b.err)
            .arg(&mut b.swaps)
            .arg(&mut b.steps)
            .arg(&mut b.since)
            .arg(&mut b.need)
            .arg(&a.rows)
            .arg(&a.d)
            .arg(&a.max_swaps)
            .arg(&a.every)
            .arg(&a.rel_tol)
            .arg(&apply)
            .arg(&mut b.picks);
        // SAFETY: as above; picks holds 2 * rows values.
        launched("pick_apply_unstructured", unsafe {
            l.launch(row_blocks(rows))
        })
    }

    /// `step_nm`: search, decision and update of one N:M step.
    fn step_nm(
        &self,
        gram: &CudaSlice<f32>,
        b: &mut ChunkBuffers,
        rows: usize,
        m: usize,
        a: &StepArgs,
    ) -> Result<()> {
        let m_i = m as i32;
        let mut l = self.stream.launch_builder(&self.kernels.step_nm);
        l.arg(gram)
            .arg(&b.w)
            .arg(&mut b.mask)
            .arg(&mut b.c)
            .arg(&mut b.status)
            .arg(&mut b.err)
            .arg(&mut b.swaps)
            .arg(&mut b.steps)
            .arg(&mut b.since)
            .arg(&mut b.need)
            .arg(&a.rows)
            .arg(&a.d)
            .arg(&m_i)
            .arg(&a.max_swaps)
            .arg(&a.every)
            .arg(&a.rel_tol);
        // SAFETY: argument list matches the kernel's signature; every buffer holds at
        // least rows * d elements.
        launched("step_nm", unsafe { l.launch(row_blocks(rows)) })
    }

    /// Exact `c`, `E` (and the energy when `energy`) for rows with `need` set.
    pub(super) fn recompute(
        &self,
        gram: &CudaSlice<f32>,
        b: &mut ChunkBuffers,
        rows: usize,
        d: usize,
        energy: bool,
    ) -> Result<()> {
        let s = &self.stream;
        let rows_i = rows as i32;
        let d_i = d as i32;
        let want_y = i32::from(energy);
        let cfg = LaunchConfig {
            grid_dim: (
                d.div_ceil(BLOCK as usize) as u32,
                rows.div_ceil(RC_RB) as u32,
                1,
            ),
            block_dim: (BLOCK, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut l = s.launch_builder(&self.kernels.recompute_c);
        l.arg(gram)
            .arg(&b.w)
            .arg(&b.mask)
            .arg(&b.need)
            .arg(&mut b.c)
            .arg(&mut b.y)
            .arg(&want_y)
            .arg(&rows_i)
            .arg(&d_i);
        // SAFETY: argument list matches the kernel; buffers hold rows * d elements.
        launched("recompute_c", unsafe { l.launch(cfg) })?;
        let cfg = LaunchConfig {
            grid_dim: (rows.div_ceil(128) as u32, 1, 1),
            block_dim: (128, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut l = s.launch_builder(&self.kernels.row_sums);
        l.arg(&b.w)
            .arg(&b.mask)
            .arg(&b.c)
            .arg(&b.y)
            .arg(&want_y)
            .arg(&mut b.need)
            .arg(&mut b.err)
            .arg(&mut b.energy)
            .arg(&rows_i)
            .arg(&d_i);
        // SAFETY: as above.
        launched("row_sums", unsafe { l.launch(cfg) })
    }
}
