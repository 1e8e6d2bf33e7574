//! Cross-row moves of the re-fitted objective (budget modes): each half of a move
//! changes `E*` by exactly its predicted amount (independent dense solves), and a layer
//! with moves keeps its total count, stays within the row bounds, is never worse than
//! the per-row result, and gives the same bits on any number of threads.

// Index loops keep the reference elimination and the checks in textbook form.
#![allow(clippy::needless_range_loop)]

use sparseswaps_core::{refine, Budget, LayerProblem, Mask, Pattern, RefineOptions};
use sparseswaps_reconstruct::refit_swaps::{RefitRowState, RowOffer};
use sparseswaps_reconstruct::{refit_swaps, RefitSwapOptions};
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
