//! Property tests of the budget modes (`band`, `layer`): exact cross-row moves, kept
//! counts, bounds, certificates at the stop, determinism.

use proptest::prelude::*;
use sparseswaps_core::{
    mask_from_scores, refine, refine_budget, row_error, validate_budget, Budget, CoreError,
    LayerProblem, Mask, Pattern, RefineOptions, RefineReport, RowState, Search,
};
use sparseswaps_testkit::problems::{
    certificate_margin, problem, random_mask, wide_problem, Rng, RoundingScale,
};

fn budget_for(sel: u8) -> Budget {
    match sel % 3 {
        0 => Budget::Layer,
        1 => Budget::Band {
            max_row_imbalance: 0.25,
        },
        _ => Budget::Band {
            max_row_imbalance: 0.5,
        },
    }
}

/// Rows of very different scales, so that moving budget between rows pays.
fn uneven_problem(d_out: usize, d: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let (mut w, g) = problem(d_out, d, 2 * d, seed);
    for (r, row) in w.chunks_mut(d).enumerate() {
        let s = [0.1f32, 1.0, 4.0][r % 3];
        row.iter_mut().for_each(|x| *x *= s);
    }
    (w, g)
}

struct Run {
    mask: Mask,
    rep: RefineReport,
    moves: usize,
}

#[allow(clippy::too_many_arguments)]
fn run(
    w: &[f32],
    g: &[f32],
    d_out: usize,
    d: usize,
    warm: &[u8],
    pattern: &Pattern,
    opts: &RefineOptions,
    check_moves: bool,
) -> Run {
    let p = LayerProblem::new(w, d_out, d, g).unwrap();
    let mut mask = Mask::new(d_out, d, warm.to_vec()).unwrap();
    let mut moves = 0usize;
    let mut observer = |m: &sparseswaps_core::CrossMove, donor: &[u8], recipient: &[u8]| {
        moves += 1;
        if !check_moves {
            return;
        }
        // Recompute both rows' errors from scratch, before and after the move.
        let (wd, wr) = (
            &w[m.donor * d..(m.donor + 1) * d],
            &w[m.recipient * d..(m.recipient + 1) * d],
        );
        let before = row_error(wd, donor, g) + row_error(wr, recipient, g);
        let (mut md, mut mr) = (donor.to_vec(), recipient.to_vec());
        assert_eq!((md[m.pruned], mr[m.restored]), (1, 0), "move {m:?}");
        md[m.pruned] = 0;
        mr[m.restored] = 1;
        let after = row_error(wd, &md, g) + row_error(wr, &mr, g);
        let change = after - before;
        let scale = before.abs() + after.abs() + 1e-30;
        assert!(
            (m.delta - change).abs() <= 1e-9 * scale,
            "move {m:?}: predicted {}, recomputed {change}",
            m.delta
        );
        assert!(
            m.delta < 0.0 && change < 0.0,
            "move {m:?} does not lower the error"
        );
        assert_ne!(m.donor, m.recipient);
    };
    let rep = refine_budget(&p, pattern, &mut mask, opts, &|_| {}, &mut observer).unwrap();
    Run { mask, rep, moves }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Every cross-row move's predicted Δ equals the change of the two rows' errors
    /// recomputed from scratch; kept counts and bounds hold; the result is no worse
    /// than the row budget's from the same warm start, which is no worse than the warm
    /// start; reported errors are exact.
    #[test]
    fn moves_are_exact_and_budgets_hold(
        seed in any::<u64>(), d in 8usize..40, d_out in 2usize..10, sel in any::<u8>(),
        sparsity in prop_oneof![Just(0.5), Just(0.7), Just(0.3)],
        cap in prop_oneof![Just(None), Just(Some(2u32)), Just(Some(100u32))],
        search in prop_oneof![Just(Search::Bounded), Just(Search::Exhaustive)],
    ) {
        let (w, g) = uneven_problem(d_out, d, seed);
        let pattern = Pattern::unstructured(sparsity).unwrap();
        let k = pattern.kept_per_row(d);
        let budget = budget_for(sel);
        let mut rng = Rng::new(seed ^ 5);
        let warm = random_mask(d_out, d, None, k, &mut rng);
        let opts = RefineOptions { max_swaps: cap, search, budget, ..RefineOptions::default() };
        let r = run(&w, &g, d_out, d, &warm, &pattern, &opts, true);
        prop_assert_eq!(r.moves as u64, r.rep.cross_moves);
        // Kept counts: the layer total exactly, every row within the bounds.
        prop_assert_eq!(r.mask.kept(), d_out * k);
        let (lo, hi) = budget.row_bounds(k, d);
        for row in 0..d_out {
            let kept = r.mask.row(row).iter().filter(|&&m| m == 1).count();
            prop_assert!(lo <= kept && kept <= hi, "row {} keeps {} outside {}..={}", row, kept, lo, hi);
            if budget == Budget::Layer && k > 0 { prop_assert!(kept >= 1); }
            let exact = row_error(&w[row * d..(row + 1) * d], r.mask.row(row), &g);
            let got = r.rep.rows[row].final_error;
            prop_assert!((exact - got).abs() <= 1e-9 * (exact.abs() + 1e-30), "row {}: {} vs {}", row, got, exact);
            if let Some(c) = cap { prop_assert!(r.rep.rows[row].swaps <= c); }
        }
        prop_assert!(validate_budget(&r.mask, &pattern, &budget).is_ok());
        if let Budget::Band { max_row_imbalance: dl } = budget {
            prop_assert!((r.rep.kept.min as f64) >= k as f64 * (1.0 - dl) - 1e-9);
            prop_assert!((r.rep.kept.max as f64) <= k as f64 * (1.0 + dl) + 1e-9);
        }
        prop_assert_eq!(r.rep.kept.min, (0..d_out).map(|i| r.mask.row(i).iter().filter(|&&m| m == 1).count()).min().unwrap());
        // Ordering of errors: final <= row budget's result <= warm start.
        let row_phase = r.rep.row_phase_error.unwrap();
        prop_assert!(r.rep.final_error <= row_phase * (1.0 + 1e-12) + 1e-30);
        prop_assert!(row_phase <= r.rep.warm_error * (1.0 + 1e-12) + 1e-30);
        // The per-row phase is exactly the row budget.
        let row_opts = RefineOptions { budget: Budget::Row, ..opts };
        let p = LayerProblem::new(&w, d_out, d, &g).unwrap();
        let mut row_mask = Mask::new(d_out, d, warm.clone()).unwrap();
        let row_rep = refine(&p, &pattern, &mut row_mask, &row_opts, &|_| {}).unwrap();
        prop_assert_eq!(row_phase.to_bits(), row_rep.final_error.to_bits());
        prop_assert!(r.rep.final_error <= row_rep.final_error * (1.0 + 1e-12) + 1e-30);
        if cap == Some(0) { prop_assert_eq!(r.moves, 0); }
    }
}

/// The certificate of a budget run stopped naturally (no cap), at the engine's own
/// thresholds, from fresh states of the final mask:
///
/// - every row is 1-swap optimal: no pair has `Δ < −rel_tol · E_row`;
/// - no cross-row move within the bounds (prune `u` of `r1`, restore `q` of `r2 ≠ r1`)
///   has `Δ = a_u + b_q < −rel_tol · (E_r1 + max_{r≠r1} E_r)`. (A round offers each donor
///   the recipient of smallest `b` and accepts at `rel_tol · (E_r1 + E_r2)`, so a move to
///   another recipient is only certified up to the largest `E_r2`.)
///
/// Each up to the rounding of the engine's running `Δ` and of the fresh one (see
/// [`certificate_margin`]). Returns the number of moves the run made.
fn check_budget_certificate(
    w: &[f32],
    g: &[f32],
    d: usize,
    r: &Run,
    k: usize,
    budget: Budget,
    opts: &RefineOptions,
) -> Result<(), String> {
    let d_out = r.mask.rows();
    let (lo, hi) = budget.row_bounds(k, d);
    let margin = |scale: f64| certificate_margin(d, opts.recompute_every, scale);
    let states: Vec<RowState<'_>> = (0..d_out)
        .map(|i| RowState::new(&w[i * d..(i + 1) * d], r.mask.row(i), g))
        .collect();
    // Per row, min over u of (a_u + margin(A_u)) and over q of (b_q + margin(A_q)): the
    // margin of a move is separable, so these decide every move at once.
    let mut best_a = vec![f64::INFINITY; d_out];
    let mut best_b = vec![f64::INFINITY; d_out];
    for (i, st) in states.iter().enumerate() {
        let wr = &w[i * d..(i + 1) * d];
        let scale = RoundingScale::new(wr, g);
        let m = r.mask.row(i);
        let kept = m.iter().filter(|&&x| x == 1).count();
        for (j, &mj) in m.iter().enumerate() {
            if mj == 1 && kept > lo {
                best_a[i] = best_a[i].min(st.a(j) + margin(scale.a[j]));
            }
            if mj == 0 && kept < hi {
                best_b[i] = best_b[i].min(st.b(j) + margin(scale.a[j]));
            }
        }
        let tol = opts.rel_tol * st.error();
        for u in (0..d).filter(|&u| m[u] == 1) {
            for q in (0..d).filter(|&q| m[q] == 0) {
                let delta = st.delta(u, q);
                let mg = margin(scale.pair(wr, g, u, q));
                if delta < -tol - mg {
                    return Err(format!(
                        "row {i} has swap ({u},{q}) with Δ {delta:e} < -{tol:e} - {mg:e}"
                    ));
                }
            }
        }
    }
    for r1 in 0..d_out {
        let e_max = (0..d_out)
            .filter(|&x| x != r1)
            .map(|x| states[x].error())
            .fold(0.0, f64::max);
        let tol = opts.rel_tol * (states[r1].error() + e_max);
        for r2 in (0..d_out).filter(|&x| x != r1) {
            let delta = best_a[r1] + best_b[r2];
            if delta < -tol {
                return Err(format!(
                    "move {r1} -> {r2} still lowers the error: {delta:e} < -{tol:e} (margins included)"
                ));
            }
        }
    }
    Ok(())
}

/// At a natural stop (no cap) no cross-row move within the bounds and no 1-swap lowers
/// the error beyond the engine's thresholds (see [`check_budget_certificate`]), for
/// widths that are not multiples of 4 and both searches.
#[test]
fn certificate_at_the_stop() {
    let mut total_moves = 0;
    for seed in 0..24u64 {
        let (d_out, d) = (6 + seed as usize % 4, 12 + seed as usize % 9);
        let (w, g) = uneven_problem(d_out, d, 300 + seed);
        let pattern = Pattern::unstructured(0.5).unwrap();
        let k = pattern.kept_per_row(d);
        let budget = budget_for(seed as u8);
        let warm = random_mask(d_out, d, None, k, &mut Rng::new(seed));
        let opts = RefineOptions {
            max_swaps: None,
            budget,
            search: [Search::Bounded, Search::Exhaustive][seed as usize % 2],
            ..RefineOptions::default()
        };
        let r = run(&w, &g, d_out, d, &warm, &pattern, &opts, true);
        total_moves += r.moves;
        if let Err(e) = check_budget_certificate(&w, &g, d, &r, k, budget, &opts) {
            panic!("seed {seed}: {e}");
        }
    }
    println!("cross-row moves over the certificate cases: {total_moves}");
    assert!(total_moves > 0, "the cases exercise no cross-row move");
}

/// Rows wider than one Gram tile (1024 columns), both budget modes and both searches:
/// the searches agree bit for bit, moves are exact (checked by the observer against
/// fresh row errors), the budgets hold, the bounded walk decides steps, and the stop is
/// certified.
#[test]
fn wide_rows_budget_modes() {
    let (d_out, d) = (4, 1500);
    let (mut w, g) = wide_problem(d_out, d, 21);
    for (r, row) in w.chunks_mut(d).enumerate() {
        let s = [0.1f32, 1.0, 4.0, 0.5][r];
        row.iter_mut().for_each(|x| *x *= s);
    }
    let pattern = Pattern::unstructured(0.5).unwrap();
    let k = pattern.kept_per_row(d);
    // A Wanda-like warm start (|w_j| · sqrt(G[j,j])), as in use: fewer swaps than a
    // random one, so the test stays fast.
    let scores: Vec<f32> = w
        .iter()
        .enumerate()
        .map(|(i, x)| x.abs() * g[(i % d) * d + i % d].sqrt())
        .collect();
    let warm = mask_from_scores(&scores, d_out, d, &pattern)
        .unwrap()
        .into_vec();
    for budget in [
        Budget::Layer,
        Budget::Band {
            max_row_imbalance: 0.1,
        },
    ] {
        let mut results = Vec::new();
        for search in [Search::Bounded, Search::Exhaustive] {
            let opts = RefineOptions {
                max_swaps: None,
                budget,
                search,
                ..RefineOptions::default()
            };
            // The moves are checked once (the searches must agree bit for bit anyway).
            let check_moves = search == Search::Bounded;
            let r = run(&w, &g, d_out, d, &warm, &pattern, &opts, check_moves);
            assert!(r.moves > 0, "{budget} {search:?}: no cross-row move");
            assert!(validate_budget(&r.mask, &pattern, &budget).is_ok());
            check_budget_certificate(&w, &g, d, &r, k, budget, &opts)
                .unwrap_or_else(|e| panic!("{budget} {search:?}: {e}"));
            println!(
                "{budget} {search:?}: {} moves, {} swaps, {} bounded steps, {} fallbacks",
                r.moves, r.rep.swaps, r.rep.bounded_steps, r.rep.bounded_fallback_steps
            );
            results.push(r);
        }
        let (b, e) = (&results[0], &results[1]);
        assert_eq!(b.mask, e.mask, "{budget}: searches differ");
        assert_eq!(b.rep.final_error.to_bits(), e.rep.final_error.to_bits());
        assert!(
            b.rep.bounded_steps > 0,
            "{budget}: the bounded walk decided no step"
        );
        assert_eq!(e.rep.bounded_steps + e.rep.bounded_fallback_steps, 0);
    }
}

/// On rows of very different scales the layer budget lowers the error strictly below
/// the row budget's.
#[test]
fn layer_budget_beats_row_budget_on_uneven_rows() {
    let (d_out, d) = (12, 32);
    let (w, g) = uneven_problem(d_out, d, 77);
    let pattern = Pattern::unstructured(0.5).unwrap();
    let warm = random_mask(d_out, d, None, 16, &mut Rng::new(1));
    let opts = RefineOptions {
        budget: Budget::Layer,
        ..RefineOptions::default()
    };
    let r = run(&w, &g, d_out, d, &warm, &pattern, &opts, false);
    let row = r.rep.row_phase_error.unwrap();
    println!(
        "layer budget: {} moves, error {:.4e} vs row budget {row:.4e}; kept {}",
        r.rep.cross_moves,
        r.rep.final_error,
        r.rep.kept.summary()
    );
    assert!(r.rep.cross_moves > 0);
    assert!(r.rep.final_error < 0.9 * row);
    assert!(r.rep.kept.max > 16 && r.rep.kept.min < 16);
}

/// Bit-identical masks and errors with 1 and 2 threads, and for both searches.
#[test]
fn budget_modes_are_deterministic() {
    let (d_out, d) = (40, 48);
    let (w, g) = uneven_problem(d_out, d, 5);
    let pattern = Pattern::unstructured(0.6).unwrap();
    let warm = random_mask(d_out, d, None, pattern.kept_per_row(d), &mut Rng::new(9));
    let go = |threads: usize, budget: Budget, search: Search| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let opts = RefineOptions {
                budget,
                search,
                ..RefineOptions::default()
            };
            let r = run(&w, &g, d_out, d, &warm, &pattern, &opts, false);
            let errs: Vec<u64> = r.rep.rows.iter().map(|x| x.final_error.to_bits()).collect();
            (r.mask, errs, r.rep.final_error.to_bits(), r.rep.cross_moves)
        })
    };
    for budget in [
        Budget::Layer,
        Budget::Band {
            max_row_imbalance: 0.25,
        },
    ] {
        let a = go(1, budget, Search::Bounded);
        assert!(a.3 > 0, "{budget}: no cross-row move");
        assert_eq!(a, go(2, budget, Search::Bounded), "{budget}: threads");
        assert_eq!(a, go(3, budget, Search::Exhaustive), "{budget}: search");
    }
}

/// N:M patterns keep their fixed budget: a wider one is a clear error; `refine`
/// dispatches to the budget engine; δ is validated.
#[test]
fn wider_budget_with_n_m_is_an_error() {
    let (w, g) = problem(2, 8, 16, 3);
    let p = LayerProblem::new(&w, 2, 8, &g).unwrap();
    let nm = Pattern::n_m(2, 4).unwrap();
    let mut mask = Mask::new(2, 8, vec![1, 1, 0, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0, 1, 0, 1]).unwrap();
    let opts = RefineOptions {
        budget: Budget::Layer,
        ..RefineOptions::default()
    };
    let e = refine(&p, &nm, &mut mask, &opts, &|_| {}).unwrap_err();
    assert!(matches!(e, CoreError::InvalidOptions(_)), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("layer") && msg.contains("2:4"), "{msg}");
    let bad = RefineOptions {
        budget: Budget::Band {
            max_row_imbalance: -1.0,
        },
        ..RefineOptions::default()
    };
    let un = Pattern::unstructured(0.5).unwrap();
    let mut m2 = Mask::new(2, 8, vec![1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1]).unwrap();
    let e = refine(&p, &un, &mut m2, &bad, &|_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("max_row_imbalance"), "{e}");
}
