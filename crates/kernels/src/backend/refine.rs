//! A layer, chunk by chunk: uploads, the step loop, downloads and the report; and the
//! [`Backend`] implementation.

use std::time::Instant;

use cudarc::driver::{CudaSlice, DriverError};
use sparseswaps_core::{
    Backend, Budget, LayerProblem, Mask, Pattern, RefineOptions, RefineReport, RowReport,
    StopReason,
};

use super::chunk::ChunkBuffers;
use super::launch::{ST_ACTIVE, ST_MAX_SWAPS, ST_NOTHING, ST_OPTIMAL};
use super::CudaBackend;
use crate::error::{driver_err, KernelsError, Result};
use crate::guard::guard_driver;
use crate::options::check_refine_options;

/// Maps a driver error with a fixed context (for `map_err`).
fn ctx(what: &'static str) -> impl Fn(DriverError) -> KernelsError {
    move |x| driver_err(what, x)
}

/// One layer's geometry, as every chunk sees it.
struct Layer {
    d: usize,
    k: usize,
    group: Option<(usize, usize)>,
}

impl CudaBackend {
    /// [`Backend::refine`] with this crate's error type.
    ///
    /// First checks the options ([`crate::check_refine_options`]: `search = "bounded"`
    /// is refused). Budgets other than `row` run on the CPU engine (the report then names
    /// the CPU backend); a panic inside cudarc becomes [`KernelsError::Driver`].
    pub fn refine_layer(
        &self,
        problem: &LayerProblem<'_>,
        pattern: &Pattern,
        mask: &mut Mask,
        opts: &RefineOptions,
        progress: &(dyn Fn(usize) + Sync),
    ) -> Result<RefineReport> {
        check_refine_options(opts)?;
        // Wider budgets (band, layer) interleave sequential cross-row decisions with
        // per-row phases; the kernels refine rows independently, so those budgets run
        // on the CPU engine.
        if opts.budget != Budget::Row {
            return Ok(sparseswaps_core::refine(
                problem, pattern, mask, opts, progress,
            )?);
        }
        let start = Instant::now();
        problem.check_mask(mask)?;
        mask.validate(pattern)?;
        let d = problem.d_in();
        if d > i32::MAX as usize / 2 {
            return Err(KernelsError::OutOfMemory {
                detail: format!("d_in = {d} is beyond what the kernels index"),
            });
        }
        let layer = Layer {
            d,
            k: pattern.kept_per_row(d),
            group: pattern.group(),
        };
        let rows = guard_driver("refining a layer", || {
            self.refine_rows(problem, &layer, mask, opts, progress)
        })?;
        Ok(RefineReport::from_rows(
            rows,
            problem.d_out(),
            d,
            *pattern,
            layer.k,
            opts.max_swaps,
            start.elapsed().as_secs_f64(),
            "cuda",
        ))
    }

    /// Every row of the layer, chunk by chunk (the device part of `refine_layer`).
    fn refine_rows(
        &self,
        problem: &LayerProblem<'_>,
        layer: &Layer,
        mask: &mut Mask,
        opts: &RefineOptions,
        progress: &(dyn Fn(usize) + Sync),
    ) -> Result<Vec<RowReport>> {
        let (d, d_out) = (layer.d, problem.d_out());
        let unstructured = layer.group.is_none();
        let chunk = self.plan_chunk_rows(d, d_out, unstructured)?;
        let gram = self
            .stream
            .clone_htod(problem.gram())
            .map_err(ctx("uploading the Gram matrix"))?;
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
                layer,
                opts,
            )?;
            rows.extend(out);
            progress(n);
        }
        Ok(rows)
    }

    /// One exhaustive search step for every row of an unstructured layer, applying
    /// nothing: each row's best pair `(u, q)` under the CPU's rule (the exact f64 best of
    /// the near-best f32 candidates; ties: lower `u`, then lower `q`), or `None` when the
    /// row has no pair. The GPU counterpart of
    /// [`sparseswaps_core::best_swaps_unstructured`], for checks and benchmarks.
    pub fn best_swaps_unstructured(
        &self,
        problem: &LayerProblem<'_>,
        mask: &Mask,
    ) -> Result<Vec<Option<(usize, usize)>>> {
        problem.check_mask(mask)?;
        guard_driver("searching one step", || self.first_picks(problem, mask))
    }

    fn first_picks(
        &self,
        problem: &LayerProblem<'_>,
        mask: &Mask,
    ) -> Result<Vec<Option<(usize, usize)>>> {
        let d = problem.d_in();
        let d_out = problem.d_out();
        let chunk = self.plan_chunk_rows(d, d_out, true)?;
        let s = &self.stream;
        let gram = s
            .clone_htod(problem.gram())
            .map_err(ctx("uploading the Gram matrix"))?;
        let mut b = self.alloc_chunk(chunk, d, true)?;
        let mut out = Vec::with_capacity(d_out);
        let opts = RefineOptions::default();
        for r0 in (0..d_out).step_by(chunk) {
            let n = chunk.min(d_out - r0);
            let span = r0 * d..(r0 + n) * d;
            s.memcpy_htod(
                &problem.weights()[span.clone()],
                &mut b.w.slice_mut(0..n * d),
            )
            .map_err(ctx("uploading weights"))?;
            s.memcpy_htod(&mask.as_slice()[span], &mut b.mask.slice_mut(0..n * d))
                .map_err(ctx("uploading the mask"))?;
            s.memcpy_htod(&vec![ST_ACTIVE; n], &mut b.status.slice_mut(0..n))
                .map_err(ctx("resetting row state"))?;
            s.memcpy_htod(&vec![1i32; n], &mut b.need.slice_mut(0..n))
                .map_err(ctx("resetting row state"))?;
            self.recompute(&gram, &mut b, n, d, false)?;
            self.iterate(&gram, &mut b, n, d, None, &opts, 0)?;
            let picks = s
                .clone_dtoh(&b.picks.slice(0..2 * n))
                .map_err(ctx("downloading picks"))?;
            out.extend(
                picks
                    .chunks_exact(2)
                    .map(|p| (p[0] >= 0 && p[1] >= 0).then(|| (p[0] as usize, p[1] as usize))),
            );
        }
        Ok(out)
    }

    /// Uploads one chunk's rows, resets their state, refines them, downloads the mask.
    #[allow(clippy::too_many_arguments)]
    fn run_chunk(
        &self,
        gram: &CudaSlice<f32>,
        b: &mut ChunkBuffers,
        w_host: &[f32],
        mask_host: &mut [u8],
        rows: usize,
        layer: &Layer,
        opts: &RefineOptions,
    ) -> Result<Vec<RowReport>> {
        let s = &self.stream;
        let (d, k, group) = (layer.d, layer.k, layer.group);
        let n = rows * d;
        s.memcpy_htod(w_host, &mut b.w.slice_mut(0..n))
            .map_err(ctx("uploading weights"))?;
        s.memcpy_htod(mask_host, &mut b.mask.slice_mut(0..n))
            .map_err(ctx("uploading the mask"))?;
        let zeros = vec![0i32; rows];
        for buf in [&mut b.status, &mut b.swaps, &mut b.steps, &mut b.since] {
            s.memcpy_htod(&zeros, &mut buf.slice_mut(0..rows))
                .map_err(ctx("resetting row state"))?;
        }
        s.memcpy_htod(&vec![1i32; rows], &mut b.need.slice_mut(0..rows))
            .map_err(ctx("resetting row state"))?;

        // Exact c, E and energy of the warm start.
        self.recompute(gram, b, rows, d, true)?;
        let warm = s
            .clone_dtoh(&b.err.slice(0..rows))
            .map_err(ctx("reading warm errors"))?;

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
                .map_err(ctx("setting row status"))?;
            s.memcpy_htod(&vec![steps; rows], &mut b.steps.slice_mut(0..rows))
                .map_err(ctx("setting row steps"))?;
        } else {
            self.iterate(gram, b, rows, d, group, opts, 1)?;
        }

        s.memcpy_dtoh(&b.mask.slice(0..n), mask_host)
            .map_err(ctx("downloading the mask"))?;
        self.row_reports(b, rows, layer, &warm)
    }

    /// The reports of a refined chunk's rows.
    fn row_reports(
        &self,
        b: &ChunkBuffers,
        rows: usize,
        layer: &Layer,
        warm: &[f64],
    ) -> Result<Vec<RowReport>> {
        let s = &self.stream;
        let (d, k) = (layer.d, layer.k);
        // The GPU search is exhaustive: every step evaluates every admissible pair.
        let pairs_per_step = match layer.group {
            None => (k * (d - k)) as u64,
            Some((n, m)) => (d / m * n * (m - n)) as u64,
        };
        let fetch_i = |x: &CudaSlice<i32>| s.clone_dtoh(&x.slice(0..rows));
        let status = fetch_i(&b.status).map_err(ctx("downloading row state"))?;
        let swaps = fetch_i(&b.swaps).map_err(ctx("downloading row state"))?;
        let steps = fetch_i(&b.steps).map_err(ctx("downloading row state"))?;
        let fin = s
            .clone_dtoh(&b.err.slice(0..rows))
            .map_err(ctx("downloading errors"))?;
        let energy = s
            .clone_dtoh(&b.energy.slice(0..rows))
            .map_err(ctx("downloading energies"))?;
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
