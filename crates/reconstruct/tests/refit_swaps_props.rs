//! Exact 1-swaps of the re-fitted objective: every accepted `Δ*` is the true change of
//! `E*`, the incremental state stays a factorisation of the kept block, rows that stop
//! carry a certificate (brute force), and the layer result is never worse than swaps
//! followed by a re-fit. Cross-row moves (budget modes): each half of a move changes
//! `E*` by exactly its predicted amount, and a layer with moves keeps its total, stays
//! within the row bounds, never loses against the per-row result, and gives the same
//! bits on any number of threads.

// Index loops keep the reference elimination and the checks in textbook form.
#![allow(clippy::needless_range_loop)]

use sparseswaps_core::{refine, Budget, LayerProblem, Mask, Pattern, RefineOptions, StopReason};
use sparseswaps_reconstruct::refit_swaps::{best_pair, RefitRowState, RowOffer};
use sparseswaps_reconstruct::{reconstruct, refit_swaps, ReconstructOptions, RefitSwapOptions};
use sparseswaps_testkit::dense::{correlated_problem, gauss, residual};
use sparseswaps_testkit::problems::Rng;

/// Weights and `G = X Xᵀ` with correlated channels (shared factor 0.6); `tokens < d`
/// gives a singular `G`.
fn problem(d_out: usize, d: usize, tokens: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    correlated_problem(d_out, d, tokens, 0.6, seed)
}

/// A random mask keeping `k` per row, or `n` in every group of `m`.
fn random_mask(
    rows: usize,
    d: usize,
    group: Option<(usize, usize)>,
    k: usize,
    rng: &mut Rng,
) -> Mask {
    let mut data = vec![0u8; rows * d];
    let pick = |dst: &mut [u8], take: usize, rng: &mut Rng| {
        let mut idx: Vec<usize> = (0..dst.len()).collect();
        for i in 0..take {
            let j = i + rng.below(idx.len() - i);
            idx.swap(i, j);
            dst[idx[i]] = 1;
        }
    };
    for row in data.chunks_mut(d) {
        match group {
            None => pick(row, k, rng),
            Some((n, m)) => row.chunks_mut(m).for_each(|g| pick(g, n, rng)),
        }
    }
    Mask::new(rows, d, data).unwrap()
}

/// `E*(K) = wᵀGw − b_Kᵀ (G[K,K] + λI)⁻¹ b_K` by an independent dense solve.
fn refit_error(w: &[f32], mask_row: &[u8], g: &[f32], lambda: f64) -> f64 {
    let d = w.len();
    let gg = |i: usize, j: usize| g[i * d + j] as f64;
    let b: Vec<f64> = (0..d)
        .map(|i| (0..d).map(|j| gg(i, j) * w[j] as f64).sum())
        .collect();
    let energy: f64 = (0..d).map(|i| w[i] as f64 * b[i]).sum();
    let kept: Vec<usize> = (0..d).filter(|&j| mask_row[j] == 1).collect();
    let a = kept
        .iter()
        .map(|&i| {
            kept.iter()
                .map(|&j| gg(i, j) + if i == j { lambda } else { 0.0 })
                .collect()
        })
        .collect();
    let bk: Vec<f64> = kept.iter().map(|&i| b[i]).collect();
    let x = gauss(a, bk.clone());
    energy - bk.iter().zip(&x).map(|(p, q)| p * q).sum::<f64>()
}

fn lambda_of(mask_row: &[u8], g: &[f32], eps: f64) -> f64 {
    let d = mask_row.len();
    let kept: Vec<usize> = (0..d).filter(|&j| mask_row[j] == 1).collect();
    eps * kept.iter().map(|&j| g[j * d + j] as f64).sum::<f64>() / kept.len() as f64
}

const GROUPS: [Option<(usize, usize)>; 4] = [None, Some((2, 4)), Some((1, 4)), Some((3, 6))];

/// Every accepted `Δ*` (incremental state, no recomputation in between) equals the
/// change of `E*` between independent dense solves before and after, to 1e-9 of `E*`.
#[test]
fn accepted_deltas_equal_fresh_changes() {
    let mut checked = 0;
    for case in 0..40u64 {
        let mut rng = Rng::new(case);
        let group = GROUPS[case as usize % 4];
        let d = match group {
            Some((_, m)) => m * (2 + rng.below(4)),
            None => 6 + rng.below(20),
        };
        let k = match group {
            Some((n, m)) => d / m * n,
            None => 1 + rng.below(d - 1),
        };
        let (w, g) = problem(1, d, 3 * d, case);
        let mask = random_mask(1, d, group, k, &mut rng);
        let mut row = mask.row(0).to_vec();
        let lambda = lambda_of(&row, &g, [0.0, 1e-6, 1e-3][case as usize % 3]);
        let mut st = RefitRowState::new(&w, &row, &g, lambda).unwrap();
        let mut e_old = refit_error(&w, &row, &g, lambda);
        assert!(
            (st.error() - e_old).abs() <= 1e-9 * e_old,
            "case {case}: start"
        );
        for _ in 0..30 {
            let (best, _) = best_pair(&st, group);
            let Some(b) = best.filter(|b| b.delta < -1e-9 * st.error()) else {
                break;
            };
            let delta = st.apply(b.u, b.q).unwrap();
            assert_eq!(delta, b.delta);
            row[b.u] = 0;
            row[b.q] = 1;
            let e_new = refit_error(&w, &row, &g, lambda);
            assert!(
                (delta - (e_new - e_old)).abs() <= 1e-9 * e_old,
                "case {case}: Δ* {delta} vs fresh change {} (E* {e_old})",
                e_new - e_old
            );
            assert!(
                (st.error() - e_new).abs() <= 1e-9 * e_old,
                "case {case}: running E*"
            );
            e_old = e_new;
            checked += 1;
        }
    }
    assert!(checked > 100, "only {checked} swaps checked");
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |m, x| m.max(x.abs()))
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).fold(0.0, |m, (x, y)| m.max((x - y).abs()))
}

/// After 300 arbitrary admissible swaps with no recomputation, `P`, `x`, `V`, `r`, `s`
/// agree with a fresh factorisation of the final kept set.
///
/// Bound: each swap is two rank-1 updates whose rounding perturbs the kept block by
/// `O(ε)` relative; the inverse amplifies that by `κ = ‖G̃[K,K]‖ ‖P‖` and errors add
/// up at most linearly over swaps, so `|ΔP| ≲ c · swaps · ε · κ · max|P|`; `c = 16`
/// covers the `O(k)` terms of each update on these sizes. A wrong update formula
/// misses by `O(max|P|)`, many orders above.
#[test]
fn incremental_state_matches_a_fresh_factorisation() {
    for case in 0..6u64 {
        let mut rng = Rng::new(100 + case);
        let group = GROUPS[case as usize % 4];
        let d = 48;
        let k = group.map_or(20, |(n, m)| d / m * n);
        let (w, g) = problem(1, d, 4 * d, 100 + case);
        let mask = random_mask(1, d, group, k, &mut rng);
        let mut row = mask.row(0).to_vec();
        let lambda = lambda_of(&row, &g, 1e-6);
        let mut st = RefitRowState::new(&w, &row, &g, lambda).unwrap();
        let swaps = 300;
        let mut done = 0;
        while done < swaps {
            let u = rng.below(d);
            let q = match group {
                None => rng.below(d),
                Some((_, m)) => u / m * m + rng.below(m),
            };
            if row[u] == 1 && row[q] == 0 && st.apply(u, q).is_some() {
                row[u] = 0;
                row[q] = 1;
                done += 1;
            }
        }
        let inc = st.snapshot();
        let fresh = RefitRowState::new(&w, &row, &g, lambda).unwrap().snapshot();
        assert_eq!(inc.kept, fresh.kept);
        assert_eq!(inc.pruned, fresh.pruned);
        let kk = fresh.kept.len();
        let gnorm = (0..kk)
            .map(|a| {
                let ca = fresh.kept[a];
                fresh
                    .kept
                    .iter()
                    .map(|&cb| (g[ca * d + cb] as f64).abs())
                    .sum::<f64>()
                    + lambda
            })
            .fold(0.0, f64::max);
        let pnorm = (0..kk)
            .map(|a| (0..kk).map(|b| fresh.p[a * kk + b].abs()).sum::<f64>())
            .fold(0.0, f64::max);
        let kappa = gnorm * pnorm;
        let tol = 16.0 * swaps as f64 * f64::EPSILON * kappa;
        let rel = |a: &[f64], b: &[f64]| max_diff(a, b) / max_abs(b).max(f64::MIN_POSITIVE);
        for (name, a, b) in [
            ("P", &inc.p, &fresh.p),
            ("x", &inc.x, &fresh.x),
            ("V", &inc.v, &fresh.v),
            ("r", &inc.r, &fresh.r),
            ("s", &inc.s, &fresh.s),
        ] {
            let e = rel(a, b);
            assert!(
                e <= tol,
                "case {case}: {name} off by {e:e} relative (bound {tol:e}, κ {kappa:e})"
            );
        }
        let e = (inc.error - fresh.error).abs() / fresh.error;
        assert!(e <= tol, "case {case}: E* off by {e:e}");
    }
}

/// Rows that stop as optimal admit no pair with `Δ* < −tol`: brute force over every
/// admissible pair with independent dense solves, unstructured and N:M.
#[test]
fn optimal_rows_have_no_improving_pair() {
    let mut certified = 0;
    for case in 0..24u64 {
        let mut rng = Rng::new(200 + case);
        let group = GROUPS[case as usize % 4];
        let d = match group {
            Some((_, m)) => m * 2,
            None => 5 + rng.below(8),
        };
        let (d_out, k) = (4, group.map_or(1 + rng.below(d - 1), |(n, m)| d / m * n));
        let pattern = group.map_or(Pattern::Unstructured { sparsity: 0.5 }, |(n, m)| {
            Pattern::NM { n, m }
        });
        let (w, g) = problem(d_out, d, 2 * d, 200 + case);
        let mut mask = random_mask(d_out, d, group, k, &mut rng);
        let opts = RefitSwapOptions {
            max_swaps: None,
            ..RefitSwapOptions::default()
        };
        let p = LayerProblem::new(&w, d_out, d, &g).unwrap();
        let rep = refit_swaps(&p, &pattern, &mut mask, &opts).unwrap();
        for r in 0..d_out {
            let row = &rep.rows[r];
            if row.stop != StopReason::Optimal || row.reverted {
                continue;
            }
            let (wr, m) = (&w[r * d..(r + 1) * d], mask.row(r).to_vec());
            let e0 = refit_error(wr, &m, &g, row.lambda);
            assert!(
                (e0 - row.final_error).abs() <= 1e-9 * e0,
                "case {case} row {r}"
            );
            let energy = refit_error(wr, &vec![0; d], &g, 0.0);
            let tol = opts.rel_tol * e0 + 64.0 * f64::EPSILON * energy;
            for u in (0..d).filter(|&u| m[u] == 1) {
                for q in (0..d).filter(|&q| m[q] == 0) {
                    if group.is_some_and(|(_, gm)| u / gm != q / gm) {
                        continue;
                    }
                    let mut m2 = m.clone();
                    m2[u] = 0;
                    m2[q] = 1;
                    let delta = refit_error(wr, &m2, &g, row.lambda) - e0;
                    assert!(
                        delta >= -tol - 1e-9 * e0,
                        "case {case} row {r}: pair ({u}, {q}) improves by {delta}"
                    );
                }
            }
            certified += 1;
        }
    }
    assert!(certified > 40, "only {certified} rows certified");
}

/// From the ordinary swaps' result, `refit_swaps` is never worse than swaps + re-fit,
/// row by row; its weights' error is what it reports; counts per row and per group are
/// kept; pruned weights are 0. Singular Gram matrices included.
#[test]
fn never_worse_than_swaps_plus_refit() {
    let mut lowered = 0;
    for case in 0..24u64 {
        let mut rng = Rng::new(300 + case);
        let group = GROUPS[case as usize % 4];
        let d = group.map_or(16 + rng.below(16), |(_, m)| m * (3 + rng.below(4)));
        let pattern = group.map_or(Pattern::Unstructured { sparsity: 0.5 }, |(n, m)| {
            Pattern::NM { n, m }
        });
        let k = pattern.kept_per_row(d);
        let d_out = 6;
        let tokens = [d / 2, 2 * d, 6 * d][case as usize % 3];
        let (w, g) = problem(d_out, d, tokens, 300 + case);
        let mut mask = random_mask(d_out, d, group, k, &mut rng);
        let p = LayerProblem::new(&w, d_out, d, &g).unwrap();
        refine(&p, &pattern, &mut mask, &RefineOptions::default(), &|_| {}).unwrap();
        let start = mask.clone();
        let base = reconstruct(&p, &start, &ReconstructOptions::default()).unwrap();
        let rep = refit_swaps(&p, &pattern, &mut mask, &RefitSwapOptions::default()).unwrap();
        assert!(rep.refit_after <= base.reconstructed_error, "case {case}");
        assert_eq!(rep.refit_before, base.reconstructed_error);
        lowered += (rep.refit_after < base.reconstructed_error * (1.0 - 1e-6)) as usize;
        let mut total = 0.0;
        for r in 0..d_out {
            let (row, old) = (mask.row(r), start.row(r));
            assert!(
                rep.rows[r].refit_after <= base.rows[r].error,
                "case {case} row {r}"
            );
            assert!(
                !rep.rows[r].diverged,
                "case {case} row {r}: the state diverged"
            );
            let chunk = group.map_or(d, |(_, m)| m);
            for (a, b) in row.chunks(chunk).zip(old.chunks(chunk)) {
                let count = |c: &[u8]| c.iter().filter(|&&v| v == 1).count();
                assert_eq!(count(a), count(b), "case {case} row {r}: count changed");
            }
            let wr = &rep.weights[r * d..(r + 1) * d];
            for j in 0..d {
                if row[j] == 0 {
                    assert_eq!(wr[j], 0.0);
                }
            }
            let e = residual(&w[r * d..(r + 1) * d], wr, &g);
            assert!(
                (e - rep.rows[r].refit_after).abs()
                    <= 1e-9 * (e.abs() + 1e-30) + 1e-12 * rep.energy
            );
            total += rep.rows[r].refit_after;
        }
        assert!(
            (total - rep.refit_after).abs() <= 1e-12 * (total.abs() + 1e-30),
            "case {case}: rows sum to {total}, layer {}",
            rep.refit_after
        );
        mask.validate(&pattern).unwrap();
    }
    assert!(
        lowered >= 12,
        "refit swaps lowered the error in only {lowered} of 24 layers"
    );
}

/// Bit-identical results with 1 and 2 threads, and with one row in flight.
#[test]
fn deterministic_across_threads_and_row_bounds() {
    let (d_out, d) = (12, 32);
    let (w, g) = problem(d_out, d, 64, 7);
    let pattern = Pattern::Unstructured { sparsity: 0.5 };
    let start = random_mask(d_out, d, None, 16, &mut Rng::new(7));
    let go = |threads: usize, in_flight: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let p = LayerProblem::new(&w, d_out, d, &g).unwrap();
            let mut m = start.clone();
            let opts = RefitSwapOptions {
                max_rows_in_flight: in_flight,
                ..RefitSwapOptions::default()
            };
            let r = refit_swaps(&p, &pattern, &mut m, &opts).unwrap();
            assert_eq!(
                r.rows_in_flight,
                if in_flight == 0 {
                    threads
                } else {
                    in_flight.min(threads)
                }
            );
            let bits: Vec<u32> = r.weights.iter().map(|v| v.to_bits()).collect();
            (bits, m.into_vec(), r.refit_after.to_bits())
        })
    };
    let one = go(1, 0);
    assert_eq!(one, go(2, 0));
    assert_eq!(one, go(2, 1));
}

/// Bad options and a mask that breaks its N:M pattern are errors that say so.
#[test]
fn invalid_inputs_are_errors() {
    let (w, g) = problem(2, 8, 16, 1);
    let p = LayerProblem::new(&w, 2, 8, &g).unwrap();
    let pat = Pattern::NM { n: 2, m: 4 };
    let mut bad_mask =
        Mask::new(2, 8, vec![1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 0, 0, 1, 1, 0, 0]).unwrap();
    let e = refit_swaps(&p, &pat, &mut bad_mask, &RefitSwapOptions::default()).unwrap_err();
    assert!(e.to_string().contains("invalid mask"), "{e}");
    let mut m = random_mask(2, 8, Some((2, 4)), 4, &mut Rng::new(1));
    let opts = RefitSwapOptions {
        rel_tol: f64::NAN,
        ..RefitSwapOptions::default()
    };
    let e = refit_swaps(&p, &pat, &mut m, &opts)
        .unwrap_err()
        .to_string();
    assert!(e.contains("rel_tol NaN"), "{e}");
}

/// `x_u²/P[u,u]` is the rise of `E*` when kept `u` is pruned alone, and `r_q²/s_q` its
/// fall when pruned `q` is kept as well: both against independent dense solves (same
/// `λ`), to 1e-9 of `E*`. The offer picks the cheapest removal and the best addition.
#[test]
fn move_halves_equal_fresh_changes() {
    let mut checked = 0;
    for case in 0..30u64 {
        let mut rng = Rng::new(900 + case);
        let d = 6 + rng.below(18);
        let k = 2 + rng.below(d - 3);
        // Full-rank Grams, as for the swaps' check: with a singular one and a small `λ` the
        // reference solve itself loses digits.
        let (w, g) = problem(1, d, [2 * d, 5 * d][case as usize % 2], 900 + case);
        let row = random_mask(1, d, None, k, &mut rng).row(0).to_vec();
        let lambda = lambda_of(&row, &g, [1e-6, 1e-3][case as usize / 2 % 2]);
        let st = RefitRowState::new(&w, &row, &g, lambda).unwrap();
        let e = refit_error(&w, &row, &g, lambda);
        let offer = RowOffer::of(&st);
        let (mut best_cost, mut best_gain) = (f64::INFINITY, f64::NEG_INFINITY);
        for j in 0..d {
            let mut other = row.clone();
            other[j] ^= 1;
            let e2 = refit_error(&w, &other, &g, lambda);
            if row[j] == 1 {
                let cost = st.removal_cost(j).unwrap();
                assert!(st.addition_gain(j).is_none());
                assert!(
                    (cost - (e2 - e)).abs() <= 1e-9 * e.max(1e-300),
                    "case {case}: removal of {j}: {cost} vs {}",
                    e2 - e
                );
                best_cost = best_cost.min(cost);
            } else if let Some(gain) = st.addition_gain(j) {
                assert!(st.removal_cost(j).is_none());
                assert!(
                    (gain - (e - e2)).abs() <= 1e-9 * e.max(1e-300),
                    "case {case}: addition of {j}: {gain} vs {}",
                    e - e2
                );
                best_gain = best_gain.max(gain);
            }
            checked += 1;
        }
        assert_eq!(offer.remove.map(|o| o.0), Some(best_cost), "case {case}");
        assert_eq!(offer.add.map(|o| o.0), Some(best_gain), "case {case}");
        assert_eq!(offer.error, st.error());
    }
    assert!(checked > 300, "only {checked} halves checked");
}

fn kept_counts(mask: &Mask) -> Vec<usize> {
    (0..mask.rows())
        .map(|r| mask.row(r).iter().filter(|&&v| v == 1).count())
        .collect()
}

/// Under `layer` and `band` bounds: the layer keeps its total, every row stays within
/// its bounds, the result is never worse than the per-row one (the same options without
/// bounds), the written weights are the re-fit of the final mask, moves are capped with
/// the swaps, and 1 and 2 threads give the same bits.
#[test]
fn cross_row_moves_keep_the_budget_and_never_lose() {
    let mut moved = 0;
    for case in 0..16u64 {
        let mut rng = Rng::new(700 + case);
        let (d_out, d) = (8, 12 + rng.below(12));
        let pattern = Pattern::Unstructured { sparsity: 0.5 };
        let k = pattern.kept_per_row(d);
        let budget = if case % 2 == 0 {
            Budget::Layer
        } else {
            Budget::Band {
                max_row_imbalance: 0.25,
            }
        };
        let bounds = budget.row_bounds(k, d);
        let (w, g) = problem(
            d_out,
            d,
            [d / 2, 2 * d, 6 * d][case as usize % 3],
            700 + case,
        );
        let p = LayerProblem::new(&w, d_out, d, &g).unwrap();
        let mut start = random_mask(d_out, d, None, k, &mut rng);
        refine(&p, &pattern, &mut start, &RefineOptions::default(), &|_| {}).unwrap();
        let per_row_opts = RefitSwapOptions::default();
        let mut per_row = start.clone();
        let base = refit_swaps(&p, &pattern, &mut per_row, &per_row_opts).unwrap();
        let opts = RefitSwapOptions {
            row_bounds: Some(bounds),
            max_swaps: Some(40),
            ..per_row_opts
        };
        let go = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| {
                    let mut m = start.clone();
                    let rep = refit_swaps(&p, &pattern, &mut m, &opts).unwrap();
                    (m, rep)
                })
        };
        let (mask, rep) = go(1);
        let (mask2, rep2) = go(2);
        assert_eq!(mask, mask2, "case {case}: threads");
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&rep.weights),
            bits(&rep2.weights),
            "case {case}: threads"
        );
        let counts = kept_counts(&mask);
        assert_eq!(
            counts.iter().sum::<usize>(),
            d_out * k,
            "case {case}: total"
        );
        assert!(
            counts.iter().all(|&c| c >= bounds.0 && c <= bounds.1),
            "case {case}: {counts:?} outside {bounds:?}"
        );
        assert!(
            rep.refit_after <= base.refit_after,
            "case {case}: {} above the per-row {}",
            rep.refit_after,
            base.refit_after
        );
        for r in 0..d_out {
            let wr = &rep.weights[r * d..(r + 1) * d];
            assert!((0..d).all(|j| mask.row(r)[j] == 1 || wr[j] == 0.0));
            let e = residual(&w[r * d..(r + 1) * d], wr, &g);
            assert!(
                (e - rep.rows[r].refit_after).abs()
                    <= 1e-9 * (e.abs() + 1e-30) + 1e-12 * rep.energy,
                "case {case} row {r}"
            );
            assert!(
                rep.rows[r].swaps + rep.rows[r].moves <= 40,
                "case {case} row {r}: cap"
            );
        }
        if rep.cross_moves > 0 {
            moved += 1;
            assert!(
                rep.refit_after < base.refit_after,
                "case {case}: moves kept without gain"
            );
            assert!(
                counts.iter().any(|&c| c != k),
                "case {case}: moves but equal rows"
            );
            let moves: u32 = rep.rows.iter().map(|r| r.moves).sum();
            assert_eq!(
                moves as u64,
                2 * rep.cross_moves,
                "case {case}: each move has two rows"
            );
        } else {
            assert_eq!(mask, per_row, "case {case}: no move, per-row result");
        }
    }
    assert!(moved >= 8, "moves were kept in only {moved} of 16 layers");
}
