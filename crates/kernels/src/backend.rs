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

use std::sync::Arc;
use std::time::Instant;

use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, LaunchConfig, PushKernelArg,
};
use cudarc::nvrtc::Ptx;
use sparseswaps_core::{
    Backend, LayerProblem, Mask, Pattern, RefineOptions, RefineReport, RowReport, StopReason,
};

use crate::error::{driver_err, KernelsError, Result};
use crate::probe;
use crate::ptx;

/// Row status codes shared with the kernels.
const ST_ACTIVE: i32 = 0;
const ST_OPTIMAL: i32 = 1;
const ST_MAX_SWAPS: i32 = 2;
const ST_NOTHING: i32 = 3;

/// Rows per block of `recompute_c` (`RC_RB` in swaps.cu): its grid's y dimension is
/// `rows / RC_RB`, limited to 65535 by CUDA.
const RC_RB: usize = 8;
/// Rows per block and candidate `u` per block of `search_unstructured` (`S_RB`, `S_TU`).
const S_RB: usize = 32;
const S_TU: usize = 128;
/// Threads per block of the row-per-block kernels.
const BLOCK: u32 = 256;
/// Most rows in one chunk: keeps every grid dimension inside CUDA's limits.
const MAX_CHUNK_ROWS: usize = 65_535 * RC_RB;
/// Device memory left unused: the driver, the module and cuBLAS workspaces need some.
const RESERVE_BYTES: usize = 256 << 20;

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
/// Results equal the CPU engine's ([`sparseswaps_core::CpuBackend`]): same masks, same
/// per-row swap counts and stop reasons, and errors recomputed exactly in f64 (summed in
/// the same order). Create it with [`CudaBackend::new`], which runs the availability
/// checks in order and names the first that fails.
pub struct CudaBackend {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    kernels: Kernels,
    device_name: String,
    ordinal: usize,
    max_chunk_rows: usize,
}

impl std::fmt::Debug for CudaBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaBackend")
            .field("device", &self.device_name)
            .field("ordinal", &self.ordinal)
            .field("max_chunk_rows", &self.max_chunk_rows)
            .finish()
    }
}

/// Device buffers of one chunk of rows.
struct ChunkBuffers {
    w: CudaSlice<f32>,
    mask: CudaSlice<u8>,
    c: CudaSlice<f64>,
    y: CudaSlice<f64>,
    /// `(h, b)` pairs, unstructured only (length 2 per element).
    hb: CudaSlice<f32>,
    minv: CudaSlice<f32>,
    status: CudaSlice<i32>,
    err: CudaSlice<f64>,
    energy: CudaSlice<f64>,
    swaps: CudaSlice<i32>,
    steps: CudaSlice<i32>,
    since: CudaSlice<i32>,
    need: CudaSlice<i32>,
    /// `(u, q)` per row when a search step is run without applying it.
    picks: CudaSlice<i32>,
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
    /// Opens device `ordinal` after the availability checks, in order: kernels built into
    /// this binary, NVIDIA driver library present, device present. Each failure is its own
    /// [`KernelsError`] variant with the reason in words.
    pub fn new(ordinal: usize) -> Result<Self> {
        let ptx_src = ptx::swaps_ptx()?;
        probe::check_available(ordinal)?;
        // cudarc panics instead of returning errors in a few corners (a symbol missing
        // from an old driver); the caller must get an error, not an abort.
        let ctx = std::panic::catch_unwind(|| CudaContext::new(ordinal))
            .map_err(|_| KernelsError::NoDevice {
                detail: format!("the CUDA driver panicked while opening device {ordinal}"),
            })?
            .map_err(|e| driver_err("opening the device", e))?;
        // One stream carries all work of this backend, so cudarc's per-buffer events
        // (which order work across streams) are pure overhead on every launch.
        // SAFETY: no other stream of this context touches buffers made here.
        unsafe { ctx.disable_event_tracking() };
        let device_name = ctx
            .name()
            .unwrap_or_else(|_| format!("CUDA device {ordinal}"));
        let stream = ctx
            .new_stream()
            .map_err(|e| driver_err("creating a stream", e))?;
        let module = ctx.load_module(Ptx::from_src(ptx_src)).map_err(|e| {
            KernelsError::Driver {
                context: format!(
                    "loading the PTX ({}; a driver older than the nvcc that built it cannot load it: rebuild with an nvcc no newer than the driver)",
                    ptx::build_info()
                ),
                message: e.to_string(),
            }
        })?;
        let f = |name: &str| {
            module
                .load_function(name)
                .map_err(|e| driver_err(&format!("loading kernel {name}"), e))
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
            max_chunk_rows: MAX_CHUNK_ROWS,
        })
    }

    /// Caps the rows processed at once (default: as many as fit in free memory). Tests use
    /// it to exercise chunking on small layers; results never depend on it.
    pub fn with_max_chunk_rows(mut self, rows: usize) -> Self {
        self.max_chunk_rows = rows.clamp(1, MAX_CHUNK_ROWS);
        self
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
        self.ctx
            .mem_get_info()
            .map_err(|e| driver_err("querying device memory", e))
    }

    /// Rows per chunk for a layer of width `d`, or [`KernelsError::OutOfMemory`].
    fn plan_chunk_rows(&self, d: usize, d_out: usize, unstructured: bool) -> Result<usize> {
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
        Ok(fit.min(d_out).min(self.max_chunk_rows).max(1))
    }

    fn alloc_chunk(&self, rows: usize, d: usize, unstructured: bool) -> Result<ChunkBuffers> {
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

    /// [`Backend::refine`] with this crate's error type.
    pub fn refine_layer(
        &self,
        problem: &LayerProblem<'_>,
        pattern: &Pattern,
        mask: &mut Mask,
        opts: &RefineOptions,
        progress: &(dyn Fn(usize) + Sync),
    ) -> Result<RefineReport> {
        // Wider budgets (band, layer) interleave sequential cross-row decisions with
        // per-row phases; the kernels refine rows independently, so those budgets run
        // on the CPU engine (the report then names the CPU backend).
        if opts.budget != sparseswaps_core::Budget::Row {
            return Ok(sparseswaps_core::refine(
                problem, pattern, mask, opts, progress,
            )?);
        }
        let start = Instant::now();
        problem.check_mask(mask)?;
        mask.validate(pattern)?;
        let d = problem.d_in();
        let d_out = problem.d_out();
        if d > i32::MAX as usize / 2 {
            return Err(KernelsError::OutOfMemory {
                detail: format!("d_in = {d} is beyond what the kernels index"),
            });
        }
        let k = pattern.kept_per_row(d);
        let group = pattern.group();
        let unstructured = group.is_none();
        let chunk = self.plan_chunk_rows(d, d_out, unstructured)?;
        let gram = self
            .stream
            .clone_htod(problem.gram())
            .map_err(|e| driver_err("uploading the Gram matrix", e))?;
        let mut bufs = self.alloc_chunk(chunk, d, unstructured)?;
        let mut rows: Vec<RowReport> = Vec::with_capacity(d_out);
        let weights = problem.weights();
        for r0 in (0..d_out).step_by(chunk) {
            let n = chunk.min(d_out - r0);
            let span = r0 * d..(r0 + n) * d;
            let out = self.run_chunk(
                &gram,
                &mut bufs,
                &weights[span.clone()],
                &mut mask.as_mut_slice()[span],
                n,
                d,
                k,
                group,
                opts,
            )?;
            rows.extend(out);
            progress(n);
        }
        Ok(RefineReport::from_rows(
            rows,
            d_out,
            d,
            *pattern,
            k,
            opts.max_swaps,
            start.elapsed().as_secs_f64(),
            "cuda",
        ))
    }

    /// One exhaustive search step for every row of an unstructured layer, applying
    /// nothing: each row's best pair `(u, q)` under the CPU's tie rule, or `None` when the
    /// row has no pair. The GPU counterpart of
    /// [`sparseswaps_core::best_swaps_unstructured`], for checks and benchmarks.
    pub fn best_swaps_unstructured(
        &self,
        problem: &LayerProblem<'_>,
        mask: &Mask,
    ) -> Result<Vec<Option<(usize, usize)>>> {
        problem.check_mask(mask)?;
        let d = problem.d_in();
        let d_out = problem.d_out();
        let chunk = self.plan_chunk_rows(d, d_out, true)?;
        let s = &self.stream;
        let gram = s
            .clone_htod(problem.gram())
            .map_err(|e| driver_err("uploading the Gram matrix", e))?;
        let mut b = self.alloc_chunk(chunk, d, true)?;
        let mut out = Vec::with_capacity(d_out);
        let opts = RefineOptions::default();
        let e = |ctx: &'static str| move |x| driver_err(ctx, x);
        for r0 in (0..d_out).step_by(chunk) {
            let n = chunk.min(d_out - r0);
            let span = r0 * d..(r0 + n) * d;
            s.memcpy_htod(
                &problem.weights()[span.clone()],
                &mut b.w.slice_mut(0..n * d),
            )
            .map_err(e("uploading weights"))?;
            s.memcpy_htod(&mask.as_slice()[span], &mut b.mask.slice_mut(0..n * d))
                .map_err(e("uploading the mask"))?;
            s.memcpy_htod(&vec![0i32; n], &mut b.status.slice_mut(0..n))
                .map_err(e("resetting row state"))?;
            s.memcpy_htod(&vec![1i32; n], &mut b.need.slice_mut(0..n))
                .map_err(e("resetting row state"))?;
            self.recompute(&gram, &mut b, n, d, false)?;
            self.iterate(&gram, &mut b, n, d, None, &opts, 0)?;
            let picks = s
                .clone_dtoh(&b.picks.slice(0..2 * n))
                .map_err(e("downloading picks"))?;
            out.extend(
                picks
                    .chunks_exact(2)
                    .map(|p| (p[0] >= 0 && p[1] >= 0).then(|| (p[0] as usize, p[1] as usize))),
            );
        }
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    fn run_chunk(
        &self,
        gram: &CudaSlice<f32>,
        b: &mut ChunkBuffers,
        w_host: &[f32],
        mask_host: &mut [u8],
        rows: usize,
        d: usize,
        k: usize,
        group: Option<(usize, usize)>,
        opts: &RefineOptions,
    ) -> Result<Vec<RowReport>> {
        let s = &self.stream;
        let n = rows * d;
        // The GPU search is exhaustive: every step evaluates every admissible pair.
        let pairs_per_step = match group {
            None => (k * (d - k)) as u64,
            Some((n, m)) => (d / m * n * (m - n)) as u64,
        };
        let e = |ctx: &'static str| move |x| driver_err(ctx, x);
        s.memcpy_htod(w_host, &mut b.w.slice_mut(0..n))
            .map_err(e("uploading weights"))?;
        s.memcpy_htod(mask_host, &mut b.mask.slice_mut(0..n))
            .map_err(e("uploading the mask"))?;
        let zeros = vec![0i32; rows];
        let ones = vec![1i32; rows];
        for buf in [&mut b.status, &mut b.swaps, &mut b.steps, &mut b.since] {
            s.memcpy_htod(&zeros, &mut buf.slice_mut(0..rows))
                .map_err(e("resetting row state"))?;
        }
        s.memcpy_htod(&ones, &mut b.need.slice_mut(0..rows))
            .map_err(e("resetting row state"))?;

        // Exact c, E and energy of the warm start.
        self.recompute(gram, b, rows, d, true)?;
        let warm = s
            .clone_dtoh(&b.err.slice(0..rows))
            .map_err(e("reading warm errors"))?;

        // Rows that stop before any search, exactly as the CPU engine decides it: a cap of
        // 0 reports only; an unstructured row with nothing kept or nothing pruned has no
        // pair (one step, counted as the CPU counts it).
        let pre_stop = if opts.max_swaps == Some(0) {
            Some((ST_MAX_SWAPS, 0))
        } else if group.is_none() && (k == 0 || k == d) {
            Some((ST_NOTHING, 1))
        } else {
            None
        };
        if let Some((st, steps)) = pre_stop {
            s.memcpy_htod(&vec![st; rows], &mut b.status.slice_mut(0..rows))
                .map_err(e("setting row status"))?;
            s.memcpy_htod(&vec![steps; rows], &mut b.steps.slice_mut(0..rows))
                .map_err(e("setting row steps"))?;
        } else {
            self.iterate(gram, b, rows, d, group, opts, 1)?;
        }

        s.memcpy_dtoh(&b.mask.slice(0..n), mask_host)
            .map_err(e("downloading the mask"))?;
        let fetch_i = |x: &CudaSlice<i32>| s.clone_dtoh(&x.slice(0..rows));
        let status = fetch_i(&b.status).map_err(e("downloading row state"))?;
        let swaps = fetch_i(&b.swaps).map_err(e("downloading row state"))?;
        let steps = fetch_i(&b.steps).map_err(e("downloading row state"))?;
        let fin = s
            .clone_dtoh(&b.err.slice(0..rows))
            .map_err(e("downloading errors"))?;
        let energy = s
            .clone_dtoh(&b.energy.slice(0..rows))
            .map_err(e("downloading energies"))?;
        Ok((0..rows)
            .map(|i| RowReport {
                warm_error: warm[i],
                final_error: fin[i],
                energy: energy[i],
                swaps: swaps[i].max(0) as u32,
                steps: steps[i].max(0) as u32,
                pairs: steps[i].max(0) as u64 * pairs_per_step,
                stop: match status[i] {
                    ST_OPTIMAL => StopReason::Optimal,
                    ST_MAX_SWAPS => StopReason::MaxSwaps,
                    _ => StopReason::NothingToSwap,
                },
            })
            .collect())
    }

    /// Steps until no row of the chunk is active (`apply == 0`: one unstructured search
    /// step whose picks are left in `b.picks`, nothing applied).
    #[allow(clippy::too_many_arguments)]
    fn iterate(
        &self,
        gram: &CudaSlice<f32>,
        b: &mut ChunkBuffers,
        rows: usize,
        d: usize,
        group: Option<(usize, usize)>,
        opts: &RefineOptions,
        apply: i32,
    ) -> Result<()> {
        let s = &self.stream;
        let rows_i = rows as i32;
        let d_i = d as i32;
        let max_swaps: i64 = opts.max_swaps.map_or(-1, i64::from);
        let every = opts.recompute_every.min(i32::MAX as u32) as i32;
        let rel_tol = opts.rel_tol;
        let row_blocks = LaunchConfig {
            grid_dim: (rows as u32, 1, 1),
            block_dim: (BLOCK, 1, 1),
            shared_mem_bytes: 0,
        };
        let launch = |what: &str, r: std::result::Result<_, cudarc::driver::DriverError>| {
            r.map(|_| ())
                .map_err(|x| driver_err(&format!("launching {what}"), x))
        };
        loop {
            match group {
                None => {
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
                        .arg(&rows_i)
                        .arg(&d_i);
                    // SAFETY: argument list matches the kernel's signature; every buffer
                    // holds at least rows * d elements (hb: 2 * rows * d f32 = float2s).
                    launch("prep_unstructured", unsafe { l.launch(cfg) })?;

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
                        .arg(&rows_i)
                        .arg(&d_i);
                    // SAFETY: as above.
                    launch("search_unstructured", unsafe { l.launch(cfg) })?;

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
                        .arg(&rows_i)
                        .arg(&d_i)
                        .arg(&max_swaps)
                        .arg(&every)
                        .arg(&rel_tol)
                        .arg(&apply)
                        .arg(&mut b.picks);
                    // SAFETY: as above.
                    launch("pick_apply_unstructured", unsafe { l.launch(row_blocks) })?;
                    if apply == 0 {
                        return Ok(());
                    }
                }
                Some((_, m)) => {
                    let m_i = m as i32;
                    let mut l = s.launch_builder(&self.kernels.step_nm);
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
                        .arg(&rows_i)
                        .arg(&d_i)
                        .arg(&m_i)
                        .arg(&max_swaps)
                        .arg(&every)
                        .arg(&rel_tol);
                    // SAFETY: as above.
                    launch("step_nm", unsafe { l.launch(row_blocks) })?;
                }
            }
            self.recompute(gram, b, rows, d, false)?;
            let status = s
                .clone_dtoh(&b.status.slice(0..rows))
                .map_err(|x| driver_err("reading row status", x))?;
            if !status.contains(&ST_ACTIVE) {
                return Ok(());
            }
        }
    }

    /// Exact `c`, `E` (and the energy when `energy`) for rows with `need` set.
    fn recompute(
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
        unsafe { l.launch(cfg) }.map_err(|x| driver_err("launching recompute_c", x))?;
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
        unsafe { l.launch(cfg) }.map_err(|x| driver_err("launching row_sums", x))?;
        Ok(())
    }
}

impl Backend for CudaBackend {
    fn name(&self) -> &str {
        "cuda"
    }

    fn refine(
        &self,
        problem: &LayerProblem<'_>,
        pattern: &Pattern,
        mask: &mut Mask,
        opts: &RefineOptions,
        progress: &(dyn Fn(usize) + Sync),
    ) -> sparseswaps_core::Result<RefineReport> {
        self.refine_layer(problem, pattern, mask, opts, progress)
            .map_err(KernelsError::into_core)
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
