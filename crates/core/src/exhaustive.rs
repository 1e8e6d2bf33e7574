//! The exhaustive search, as in the paper: every admissible pair of an unstructured
//! row, scanned in f32 over tiles of `G` (one tile in cache serves a batch of rows),
//! then the pairs within `1e-6 · S` of the f32 minimum re-evaluated exactly in f64.

use crate::mask::Mask;
use crate::options::RefineOptions;
use crate::report::{RowReport, StopReason};
use crate::row::{RowJob, RowState};
use crate::simd;
use rayon::prelude::*;

/// Rows refined together over one walk of the Gram tiles.
pub(crate) const BATCH_ROWS: usize = 16;
/// Gram tile: `TILE_U` rows of `G` by `TILE_Q` columns (128 KiB at f32: fits L2).
const TILE_U: usize = 32;
const TILE_Q: usize = 1024;

/// Per-row scratch of the batched unstructured search.
pub(crate) struct RowSearch {
    /// `-2 w_q` for pruned `q`, 0 for kept.
    h: Vec<f32>,
    /// `b_q` for pruned `q`, `+inf` for kept.
    b: Vec<f32>,
    /// Kept indices, ascending.
    kept: Vec<u32>,
    /// `w_u` for each kept index.
    s: Vec<f32>,
    /// Running minimum over `q` for each kept index.
    minv: Vec<f32>,
}

impl RowSearch {
    pub(crate) fn new(d: usize) -> Self {
        RowSearch {
            h: vec![0.0; d],
            b: vec![0.0; d],
            kept: Vec::with_capacity(d),
            s: Vec::with_capacity(d),
            minv: Vec::with_capacity(d),
        }
    }

    pub(crate) fn prepare(&mut self, st: &RowState<'_>, mask_row: &[u8]) {
        self.kept.clear();
        self.s.clear();
        for (q, &m) in mask_row.iter().enumerate() {
            if m == 1 {
                self.kept.push(q as u32);
                self.s.push(st.w[q]);
                self.h[q] = 0.0;
                self.b[q] = f32::INFINITY;
            } else {
                self.h[q] = -2.0 * st.w[q];
                self.b[q] = st.b(q) as f32;
            }
        }
        self.minv.clear();
        self.minv.resize(self.kept.len(), f32::INFINITY);
    }
}

/// Refines a batch of unstructured rows together: every step walks the Gram tiles once
/// for all rows still active.
pub(crate) fn refine_batch_unstructured(
    gram: &[f32],
    d: usize,
    mut jobs: Vec<RowJob<'_>>,
    opts: &RefineOptions,
    avx2: bool,
) -> Vec<RowReport> {
    let mut searches: Vec<RowSearch> = jobs.iter().map(|_| RowSearch::new(d)).collect();
    for job in &mut jobs {
        job.check_cap(opts);
        let k = job.mask.iter().filter(|&&v| v == 1).count();
        if !job.done && (k == 0 || k == d) {
            job.report.steps += 1;
            job.finish(StopReason::NothingToSwap);
        }
    }
    loop {
        let mut active: Vec<(&mut RowJob<'_>, &mut RowSearch)> = jobs
            .iter_mut()
            .zip(searches.iter_mut())
            .filter(|(j, _)| !j.done)
            .collect();
        if active.is_empty() {
            break;
        }
        for (job, rs) in active.iter_mut() {
            rs.prepare(&job.state, job.mask);
        }
        let mut refs: Vec<&mut RowSearch> = active.iter_mut().map(|(_, rs)| &mut **rs).collect();
        search_tiles(gram, d, &mut refs, avx2);
        for (job, rs) in active.iter_mut() {
            let best = pick_best(rs, &job.state, job.mask, gram, d);
            let k = rs.kept.len() as u64;
            job.decide(best, k * (d as u64 - k), opts);
        }
    }
    jobs.into_iter().map(|j| j.report).collect()
}

/// One exhaustive step for one row, applying nothing: the best pair under the tie rule
/// and the number of admissible pairs it compared.
pub(crate) fn exhaustive_step(
    rs: &mut RowSearch,
    st: &RowState<'_>,
    mask: &[u8],
    gram: &[f32],
    avx2: bool,
) -> (Option<(usize, usize)>, u64) {
    let d = mask.len();
    rs.prepare(st, mask);
    search_tiles(gram, d, &mut [rs], avx2);
    let k = rs.kept.len() as u64;
    (pick_best(rs, st, mask, gram, d), k * (d as u64 - k))
}

/// The exhaustive 1-swap loop of one row from its current state until it stops; the
/// row may keep any number of weights (budget modes).
pub(crate) fn run_row_exhaustive(job: &mut RowJob<'_>, gram: &[f32], opts: &RefineOptions) {
    let d = job.mask.len();
    let k = job.mask.iter().filter(|&&v| v == 1).count();
    if k == 0 || k == d {
        job.report.steps += 1;
        job.finish(StopReason::NothingToSwap);
        return;
    }
    let avx2 = simd::has_avx2();
    let mut rs = RowSearch::new(d);
    while !job.done {
        let (best, pairs) = exhaustive_step(&mut rs, &job.state, job.mask, gram, avx2);
        job.decide(best, pairs, opts);
    }
}

/// Walks `G` in tiles; for every active row and kept `u`, updates the minimum over pruned
/// `q` of the pair value.
fn search_tiles(gram: &[f32], d: usize, active: &mut [&mut RowSearch], avx2: bool) {
    for q0 in (0..d).step_by(TILE_Q) {
        let q1 = (q0 + TILE_Q).min(d);
        for u0 in (0..d).step_by(TILE_U) {
            let u1 = (u0 + TILE_U).min(d);
            for rs in active.iter_mut() {
                let lo = rs.kept.partition_point(|&u| (u as usize) < u0);
                let hi = rs.kept.partition_point(|&u| (u as usize) < u1);
                let (h, b) = (&rs.h[q0..q1], &rs.b[q0..q1]);
                let grow = |u: u32| &gram[u as usize * d + q0..u as usize * d + q1];
                let mut i = lo;
                while i + 4 <= hi {
                    let us = [rs.kept[i], rs.kept[i + 1], rs.kept[i + 2], rs.kept[i + 3]];
                    let s = [rs.s[i], rs.s[i + 1], rs.s[i + 2], rs.s[i + 3]];
                    let m = simd::min4(avx2, us.map(grow), h, b, s);
                    for (mv, &x) in rs.minv[i..i + 4].iter_mut().zip(&m) {
                        if x < *mv {
                            *mv = x;
                        }
                    }
                    i += 4;
                }
                while i < hi {
                    let u = rs.kept[i];
                    let g = grow(u);
                    let m = simd::min4(avx2, [g, g, g, g], h, b, [rs.s[i]; 4])[0];
                    if m < rs.minv[i] {
                        rs.minv[i] = m;
                    }
                    i += 1;
                }
            }
        }
    }
}

/// From the per-`u` f32 minima, the exact best pair: every pair whose f32 value is
/// within `1e-6 · S` of the f32 minimum is re-evaluated in f64, and the smallest exact
/// `Δ` wins (ties: lower `u`, then lower `q`). `None` when no pair is finite.
fn pick_best(
    rs: &RowSearch,
    st: &RowState<'_>,
    mask: &[u8],
    gram: &[f32],
    d: usize,
) -> Option<(usize, usize)> {
    let a32: Vec<f32> = rs.kept.iter().map(|&u| st.a(u as usize) as f32).collect();
    let mut best32 = f32::INFINITY;
    for (i, &a) in a32.iter().enumerate() {
        let v = a + rs.minv[i];
        if v < best32 {
            best32 = v;
        }
    }
    if !best32.is_finite() {
        return None;
    }
    // S bounds |a_u| + |b_q| + |2 w_u w_q G[u,q]| over admissible pairs; f32 rounding of
    // a pair's value is below 5 ulp of S, far inside 1e-6 · S.
    let (mut amax, mut bmax, mut su, mut sq) = (0f64, 0f64, 0f64, 0f64);
    for (j, &m) in mask.iter().enumerate() {
        let sigma = (st.w[j] as f64).abs() * (gram[j * d + j] as f64).sqrt();
        if m == 1 {
            amax = amax.max(st.a(j).abs());
            su = su.max(sigma);
        } else {
            bmax = bmax.max(st.b(j).abs());
            sq = sq.max(sigma);
        }
    }
    let thr = best32 as f64 + 1e-6 * (amax + bmax + 2.0 * su * sq);
    let mut best: Option<(usize, usize)> = None;
    let mut best64 = f64::INFINITY;
    for (i, &u) in rs.kept.iter().enumerate() {
        if (a32[i] + rs.minv[i]) as f64 > thr {
            continue;
        }
        let u = u as usize;
        let grow = &gram[u * d..(u + 1) * d];
        for q in 0..d {
            if mask[q] == 1 {
                continue;
            }
            let v = a32[i] + simd::pair_value(grow[q], rs.h[q], rs.b[q], rs.s[i]);
            if v as f64 <= thr {
                let delta = st.delta(u, q);
                if delta < best64 {
                    best64 = delta;
                    best = Some((u, q));
                }
            }
        }
    }
    best
}

/// One exhaustive search step for every row of an unstructured layer, applying nothing:
/// the best pair `(u, q)` of each row under the tie rule (`None` when no pair exists).
///
/// `states[r]` must have been built from `mask.row(r)`. This is the engine's inner step,
/// exposed for benchmarks and for checking other backends against the CPU.
pub fn best_swaps_unstructured(
    gram: &[f32],
    states: &[RowState<'_>],
    mask: &Mask,
) -> Vec<Option<(usize, usize)>> {
    let d = mask.cols();
    let avx2 = simd::has_avx2();
    states
        .par_chunks(BATCH_ROWS)
        .enumerate()
        .flat_map_iter(|(bi, sts)| {
            let mut searches: Vec<RowSearch> = sts
                .iter()
                .enumerate()
                .map(|(i, st)| {
                    let mut rs = RowSearch::new(d);
                    rs.prepare(st, mask.row(bi * BATCH_ROWS + i));
                    rs
                })
                .collect();
            let mut refs: Vec<&mut RowSearch> = searches.iter_mut().collect();
            search_tiles(gram, d, &mut refs, avx2);
            searches
                .iter()
                .zip(sts)
                .enumerate()
                .map(|(i, (rs, st))| pick_best(rs, st, mask.row(bi * BATCH_ROWS + i), gram, d))
                .collect::<Vec<_>>()
        })
        .collect()
}
