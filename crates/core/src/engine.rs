//! The exact 1-swap refinement engine on CPU: the driver.
//!
//! Per row (rows in parallel with rayon), starting from a warm-start mask:
//! find the admissible swap (kept `u` → pruned, pruned `q` → kept) with the smallest
//! change of error `Δ(u, q) = a_u + b_q - 2 w_u w_q G[u,q]`, take it if it lowers the
//! error by more than the tolerance, and repeat until no swap does ("1-swap optimal") or
//! the row has taken `max_swaps` swaps.
//!
//! Numerics:
//! - The running state `c = G p` and the row error `E = pᵀ c` are kept in f64.
//! - The chosen pair is the exact (f64, from `c`) argmin of `Δ` under the tie rule, with
//!   either search: the exhaustive search scans all pairs in f32 (twice the SIMD width
//!   of f64) and re-evaluates in f64 every pair within `1e-6 · S` of the f32 minimum
//!   (`S` bounds the magnitude of the terms, so this covers f32 rounding); the bounded
//!   search evaluates in f64 only the pairs its lower bound cannot rule out.
//! - A swap is accepted only when `Δ < -tol`, with `tol = rel_tol · E_row` (default
//!   `rel_tol = 1e-9`), so rounding noise can never be taken for an improvement.
//! - Every `recompute_every` accepted swaps of a row (default 128), `c` and `E` are
//!   recomputed exactly from the mask, and once more when the row stops, so the reported
//!   errors carry no drift. (Without a recompute, the measured drift after 10⁴ swaps is
//!   a few 1e-15 of the magnitudes of the terms of `c` and `E`; the drift test bounds
//!   it near rounding.)
//!
//! Ties: the smallest `Δ` wins; between equal values the lower `u`, then the lower `q`.
//!
//! Building a row's exact state reads all of `G` (`d_in²` values), so rows are handed out
//! eight at a time: their states are built, and their exact stops recomputed, in one
//! tiled walk of `G` each (`row_walk`), bit-identical to doing each row alone.
//!
//! Unstructured rows are processed in batches that walk the Gram matrix in tiles, so one
//! tile of `G` loaded into cache serves every row of the batch (one full pass over `G`
//! per row and step would be bound by memory bandwidth). N:M rows only compare pairs
//! inside each group of `M`: `O(d_in)` per step, done in f64 directly.
//!
//! Every row's result depends only on that row's inputs, and sums over rows are taken in
//! row order, so results are identical for any number of threads.
//!
//! Layout (each module reads only those listed before it, so there is no import
//! circle): [`crate::options`] (a leaf), [`crate::report`] (reads the options), `row`
//! (the running state of one row and its acceptance rule, built over `row_walk`), the
//! searches `exhaustive`, `bounded` (falls back to `exhaustive`) and `nm`, then [`crate::budget`] (cross-row
//! moves over the row searches) and this driver on top, which validates the input and
//! hands every row to its search, or the layer to the budget engine.

use crate::bounded::refine_row_bounded;
use crate::budget::refine_budget;
use crate::error::Result;
use crate::exhaustive::{refine_batch_unstructured, BATCH_ROWS};
use crate::mask::Mask;
use crate::nm::refine_row_nm;
use crate::objective::LayerProblem;
use crate::options::Budget;
use crate::pattern::Pattern;
use crate::report::{RefineReport, RowReport};
use crate::row::{finish_exact, RowJob, SearchTally};
use crate::simd;
use rayon::prelude::*;
use std::time::Instant;

// The engine's public items keep their paths under `engine`.
pub use crate::bounded::{best_swaps_bounded, column_correlation_bound};
pub use crate::exhaustive::best_swaps_unstructured;
pub use crate::options::{RefineOptions, Search};
pub use crate::row::RowState;
pub use crate::row_walk::ROWS_PER_WALK;

/// Progress callback: receives counts of rows finished.
type Progress<'p> = dyn Fn(usize) + Sync + 'p;

/// Refines `mask` in place for `problem` under `pattern`; the mask must already follow
/// the pattern (it is validated first).
pub fn refine(
    problem: &LayerProblem<'_>,
    pattern: &Pattern,
    mask: &mut Mask,
    opts: &RefineOptions,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<RefineReport> {
    if opts.budget != Budget::Row {
        return refine_budget(problem, pattern, mask, opts, progress, &mut |_, _, _| {});
    }
    let start = Instant::now();
    problem.check_mask(mask)?;
    mask.validate(pattern)?;
    let d = problem.d_in();
    let (rows, tally) = match pattern.group() {
        None if opts.search == Search::Bounded => rows_bounded(problem, mask, opts, progress),
        None => (
            rows_exhaustive(problem, mask, opts, progress),
            SearchTally::default(),
        ),
        Some((_, m)) => (
            rows_nm(problem, mask, m, opts, progress),
            SearchTally::default(),
        ),
    };
    let mut rep = RefineReport::from_rows(
        rows,
        problem.d_out(),
        d,
        *pattern,
        pattern.kept_per_row(d),
        opts.max_swaps,
        start.elapsed().as_secs_f64(),
        "cpu",
    );
    tally.record(&mut rep);
    Ok(rep)
}

/// Unstructured rows, bounded search: a few rows per task, their states built and
/// their exact stops recomputed in one walk of `G` each.
fn rows_bounded(
    problem: &LayerProblem<'_>,
    mask: &mut Mask,
    opts: &RefineOptions,
    progress: &Progress<'_>,
) -> (Vec<RowReport>, SearchTally) {
    let rho = column_correlation_bound(problem.gram(), problem.d_in());
    let out = in_walks(problem, mask, progress, |job| {
        refine_row_bounded(job, &rho, problem.gram(), opts)
    });
    let tally = SearchTally::sum(out.iter().map(|x| x.1));
    (out.into_iter().map(|x| x.0).collect(), tally)
}

/// Runs `refine` on every row, [`ROWS_PER_WALK`] consecutive rows per task: their states
/// built in one walk of `G`, and the exact recompute of the rows that swapped done in
/// one more walk when all have stopped. Returns each row's report and search tally.
fn in_walks(
    problem: &LayerProblem<'_>,
    mask: &mut Mask,
    progress: &Progress<'_>,
    refine: impl Fn(&mut RowJob<'_>) + Sync,
) -> Vec<(RowReport, SearchTally)> {
    let d = problem.d_in();
    mask.as_mut_slice()
        .par_chunks_mut(d * ROWS_PER_WALK)
        .enumerate()
        .flat_map_iter(|(bi, chunk)| {
            let r0 = bi * ROWS_PER_WALK;
            let ws: Vec<&[f32]> = (r0..r0 + chunk.len() / d).map(|r| problem.row(r)).collect();
            let mut jobs = RowJob::new_batch(&ws, chunk, problem.gram(), false);
            jobs.iter_mut().for_each(&refine);
            finish_exact(&mut jobs, false);
            progress(jobs.len());
            jobs.into_iter().map(|j| (j.report, j.tally))
        })
        .collect()
}

/// Unstructured rows, exhaustive search: batches of rows share each walk of `G`.
fn rows_exhaustive(
    problem: &LayerProblem<'_>,
    mask: &mut Mask,
    opts: &RefineOptions,
    progress: &Progress<'_>,
) -> Vec<RowReport> {
    let d = problem.d_in();
    let avx2 = simd::has_avx2();
    mask.as_mut_slice()
        .par_chunks_mut(d * BATCH_ROWS)
        .enumerate()
        .flat_map_iter(|(bi, chunk)| {
            let r0 = bi * BATCH_ROWS;
            let ws: Vec<&[f32]> = (r0..r0 + chunk.len() / d).map(|r| problem.row(r)).collect();
            let jobs = RowJob::new_batch(&ws, chunk, problem.gram(), true);
            let out = refine_batch_unstructured(problem.gram(), d, jobs, opts, avx2);
            progress(out.len());
            out
        })
        .collect()
}

/// N:M rows: pairs compared inside each group, a few rows per task (see [`in_walks`]).
fn rows_nm(
    problem: &LayerProblem<'_>,
    mask: &mut Mask,
    m: usize,
    opts: &RefineOptions,
    progress: &Progress<'_>,
) -> Vec<RowReport> {
    in_walks(problem, mask, progress, |job| refine_row_nm(job, m, opts))
        .into_iter()
        .map(|x| x.0)
        .collect()
}
