//! Property tests of the exact 1-swap engine on random small problems.

use proptest::prelude::*;
use sparseswaps_core::{
    best_swaps_unstructured, refine, row_error, LayerProblem, Mask, Pattern, RefineOptions,
    RowState, StopReason,
};
use sparseswaps_testkit::problems::{problem, random_mask, Rng};

/// A pattern for width `d_in`, chosen by `sel`.
fn pattern_for(sel: u8, d_in: usize) -> Pattern {
    match sel % 4 {
        0 => Pattern::unstructured(0.5).unwrap(),
        1 => Pattern::unstructured(0.7).unwrap(),
        2 if d_in % 4 == 0 => Pattern::n_m(2, 4).unwrap(),
        3 if d_in % 4 == 0 => Pattern::n_m(1, 4).unwrap(),
        _ => Pattern::unstructured(0.3).unwrap(),
    }
}

fn admissible(pattern: &Pattern, mask: &[u8]) -> Vec<(usize, usize)> {
    let d = mask.len();
    let mut out = Vec::new();
    for u in (0..d).filter(|&u| mask[u] == 1) {
        for q in (0..d).filter(|&q| mask[q] == 0) {
            let same_group = match pattern.group() {
                Some((_, m)) => u / m == q / m,
                None => true,
            };
            if same_group {
                out.push((u, q));
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Δ predicted by the state equals the change of the exactly recomputed error.
    #[test]
    fn predicted_delta_is_exact(seed in any::<u64>(), d4 in 2usize..8, sel in any::<u8>()) {
        let d = d4 * 4;
        let (w, g) = problem(1, d, 3 * d, seed);
        let pattern = pattern_for(sel, d);
        let mut rng = Rng::new(seed);
        let mut m = random_mask(1, d, pattern.group(), pattern.kept_per_row(d), &mut rng);
        let mut st = RowState::new(&w, &m, &g);
        for _ in 0..20 {
            let pairs = admissible(&pattern, &m);
            if pairs.is_empty() { break; }
            let (u, q) = pairs[rng.below(pairs.len())];
            let before = row_error(&w, &m, &g);
            let predicted = st.apply(&mut m, u, q);
            let after = row_error(&w, &m, &g);
            let scale = before.abs() + after.abs() + 1e-30;
            prop_assert!((predicted - (after - before)).abs() <= 1e-6 * scale,
                "predicted {predicted}, recomputed {}", after - before);
        }
    }

    /// Refinement never raises a row's error, keeps the pattern, and rows that stop as
    /// optimal have no admissible swap that lowers the error (brute force).
    #[test]
    fn refinement_is_monotone_and_certified(
        seed in any::<u64>(), d4 in 2usize..7, d_out in 1usize..6, sel in any::<u8>(),
        cap in prop_oneof![Just(None), Just(Some(3u32)), Just(Some(100u32))],
    ) {
        let d = d4 * 4;
        let (w, g) = problem(d_out, d, 2 * d, seed);
        let pattern = pattern_for(sel, d);
        let mut rng = Rng::new(seed ^ 1);
        let data = random_mask(d_out, d, pattern.group(), pattern.kept_per_row(d), &mut rng);
        let mut mask = Mask::new(d_out, d, data).unwrap();
        let p = LayerProblem::new(&w, d_out, d, &g).unwrap();
        let opts = RefineOptions { max_swaps: cap, ..RefineOptions::default() };
        let rep = refine(&p, &pattern, &mut mask, &opts, &|_| {}).unwrap();
        prop_assert!(mask.validate(&pattern).is_ok());
        for (r, row) in rep.rows.iter().enumerate() {
            prop_assert!(row.final_error <= row.warm_error * (1.0 + 1e-12) + 1e-30,
                "row {r}: {} > {}", row.final_error, row.warm_error);
            let exact = row_error(p.row(r), mask.row(r), &g);
            prop_assert!((exact - row.final_error).abs() <= 1e-9 * (exact.abs() + 1e-30));
            if let Some(c) = cap { prop_assert!(row.swaps <= c); }
            if row.stop == StopReason::Optimal {
                let mut m = mask.row(r).to_vec();
                for (u, q) in admissible(&pattern, &m.clone()) {
                    m[u] = 0; m[q] = 1;
                    let e = row_error(p.row(r), &m, &g);
                    m[u] = 1; m[q] = 0;
                    prop_assert!(e >= exact * (1.0 - 1e-5) - 1e-30,
                        "row {r} stopped optimal but swap ({u},{q}) gives {e} < {exact}");
                }
            }
        }
    }

    /// The batched f32 search picks, for every row, a pair whose exact Δ is the
    /// brute-force best Δ up to f32 rounding.
    #[test]
    fn batched_search_finds_the_best_pair(seed in any::<u64>(), d in 8usize..40, d_out in 1usize..20) {
        let (w, g) = problem(d_out, d, 2 * d, seed);
        let pattern = Pattern::unstructured(0.5).unwrap();
        let mut rng = Rng::new(seed ^ 2);
        let data = random_mask(d_out, d, None, pattern.kept_per_row(d), &mut rng);
        let mask = Mask::new(d_out, d, data).unwrap();
        let states: Vec<RowState<'_>> =
            (0..d_out).map(|r| RowState::new(&w[r * d..(r + 1) * d], mask.row(r), &g)).collect();
        let picks = best_swaps_unstructured(&g, &states, &mask);
        for (r, st) in states.iter().enumerate() {
            let pairs = admissible(&pattern, mask.row(r));
            let best = pairs.iter().map(|&(u, q)| st.delta(u, q)).fold(f64::INFINITY, f64::min);
            let (u, q) = picks[r].expect("a pair exists");
            let got = st.delta(u, q);
            let scale: f64 = pairs.iter().map(|&(u, q)| st.a(u).abs() + st.b(q).abs()).fold(0.0, f64::max);
            prop_assert!(got <= best + 1e-5 * scale, "row {r}: picked Δ {got}, best {best}");
        }
    }
}

/// After 10⁴ swaps the running error stays within 1e-5 (relative) of an exact recompute.
#[test]
fn drift_after_ten_thousand_swaps() {
    let d = 64;
    let (w, g) = problem(1, d, 256, 42);
    let pattern = Pattern::unstructured(0.5).unwrap();
    let mut rng = Rng::new(7);
    let mut m = random_mask(1, d, None, pattern.kept_per_row(d), &mut rng);
    let mut st = RowState::new(&w, &m, &g);
    for _ in 0..10_000 {
        let pairs = admissible(&pattern, &m);
        let (u, q) = pairs[rng.below(pairs.len())];
        st.apply(&mut m, u, q);
    }
    let exact = row_error(&w, &m, &g);
    let rel = (st.error() - exact).abs() / exact;
    println!("running vs exact error after 10^4 swaps: relative drift {rel:.3e}");
    assert!(rel <= 1e-5, "drift {rel}");
}

/// On tiny rows, the 1-swap optimum lies between the global optimum (all masks
/// enumerated) and the warm start; prints how far it is from the global one.
#[test]
fn one_swap_optimum_vs_global_on_tiny_rows() {
    let mut gaps = Vec::new();
    for seed in 0..40u64 {
        let d = 8 + (seed as usize % 5); // 8..=12
        let (w, g) = problem(1, d, 2 * d, 1000 + seed);
        let pattern = Pattern::unstructured(0.5).unwrap();
        let k = pattern.kept_per_row(d);
        let mut global = f64::INFINITY;
        for bits in 0u32..(1 << d) {
            if bits.count_ones() as usize != k {
                continue;
            }
            let m: Vec<u8> = (0..d).map(|j| ((bits >> j) & 1) as u8).collect();
            global = global.min(row_error(&w, &m, &g));
        }
        let mut rng = Rng::new(seed);
        let mut mask = Mask::new(1, d, random_mask(1, d, None, k, &mut rng)).unwrap();
        let p = LayerProblem::new(&w, 1, d, &g).unwrap();
        let opts = RefineOptions {
            max_swaps: None,
            ..RefineOptions::default()
        };
        let rep = refine(&p, &pattern, &mut mask, &opts, &|_| {}).unwrap();
        let (warm, fin) = (rep.rows[0].warm_error, rep.rows[0].final_error);
        assert!(
            fin >= global * (1.0 - 1e-9),
            "seed {seed}: below the global optimum"
        );
        assert!(
            fin <= warm * (1.0 + 1e-12),
            "seed {seed}: above the warm start"
        );
        gaps.push(if global > 0.0 {
            fin / global - 1.0
        } else {
            0.0
        });
    }
    gaps.sort_by(f64::total_cmp);
    let at_global = gaps.iter().filter(|&&x| x <= 1e-9).count();
    println!(
        "1-swap optimum vs global on {} tiny rows: {} at the global optimum, median gap {:.2}%, worst {:.2}%",
        gaps.len(),
        at_global,
        100.0 * gaps[gaps.len() / 2],
        100.0 * gaps[gaps.len() - 1]
    );
}

/// The same input gives bit-identical masks and errors with 1 and 2 threads.
#[test]
fn deterministic_across_thread_counts() {
    let (d_out, d) = (40, 48);
    let (w, g) = problem(d_out, d, 96, 5);
    let run = |threads: usize, pattern: Pattern| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut rng = Rng::new(9);
            let data = random_mask(d_out, d, pattern.group(), pattern.kept_per_row(d), &mut rng);
            let mut mask = Mask::new(d_out, d, data).unwrap();
            let p = LayerProblem::new(&w, d_out, d, &g).unwrap();
            let rep = refine(&p, &pattern, &mut mask, &RefineOptions::default(), &|_| {}).unwrap();
            let errs: Vec<u64> = rep.rows.iter().map(|r| r.final_error.to_bits()).collect();
            (mask, errs, rep.final_error.to_bits())
        })
    };
    for pattern in [
        Pattern::unstructured(0.6).unwrap(),
        Pattern::n_m(2, 4).unwrap(),
    ] {
        assert_eq!(run(1, pattern), run(2, pattern), "pattern {pattern}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Bounded and exhaustive search take swaps of equal Δ at every step (the same
    /// swaps, in fact) and reach the same final masks, for per-row and N:M patterns.
    #[test]
    fn bounded_equals_exhaustive(
        seed in any::<u64>(), d4 in 2usize..12, d_out in 1usize..8, sel in any::<u8>(),
        cap in prop_oneof![Just(None), Just(Some(1u32)), Just(Some(7u32))],
    ) {
        use sparseswaps_core::Search;
        let d = d4 * 4;
        let (w, g) = problem(d_out, d, 2 * d, seed);
        let pattern = pattern_for(sel, d);
        let mut rng = Rng::new(seed ^ 3);
        let data = random_mask(d_out, d, pattern.group(), pattern.kept_per_row(d), &mut rng);
        let p = LayerProblem::new(&w, d_out, d, &g).unwrap();
        let run = |search: Search, cap: Option<u32>| {
            let mut mask = Mask::new(d_out, d, data.clone()).unwrap();
            let opts = RefineOptions { max_swaps: cap, search, ..RefineOptions::default() };
            let rep = refine(&p, &pattern, &mut mask, &opts, &|_| {}).unwrap();
            (mask, rep)
        };
        let (me, re) = run(Search::Exhaustive, cap);
        let (mb, rb) = run(Search::Bounded, cap);
        prop_assert_eq!(&me, &mb, "final masks differ");
        for (x, y) in re.rows.iter().zip(&rb.rows) {
            prop_assert_eq!(x.swaps, y.swaps);
            prop_assert_eq!(x.stop, y.stop);
            prop_assert_eq!(x.final_error.to_bits(), y.final_error.to_bits());
        }
        // Step by step: with a cap of s swaps both reach the same mask after every s, so
        // every step took a swap of the same Δ.
        for s in 1..=re.rows.iter().map(|r| r.swaps).max().unwrap_or(0).min(12) {
            let (a, ra) = run(Search::Exhaustive, Some(s));
            let (b, rb) = run(Search::Bounded, Some(s));
            prop_assert_eq!(&a, &b, "masks differ after {} swaps", s);
            prop_assert_eq!(ra.final_error.to_bits(), rb.final_error.to_bits());
        }
        if pattern.group().is_none() && d >= 16 {
            prop_assert!(rb.pairs_evaluated <= re.pairs_evaluated + 2 * rb.swaps + 2 * d_out as u64);
        }
    }
}
