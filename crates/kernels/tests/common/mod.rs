//! Shared helpers of the kernels crate's tests and timing example.

#![allow(dead_code)]

use sparseswaps_core::{Mask, Pattern, RefineReport};
use sparseswaps_testkit::synthetic::llm_like_layer;

/// A small LLM-like layer and its Wanda warm start.
pub struct Case {
    pub d_out: usize,
    pub d_in: usize,
    pub weights: Vec<f32>,
    pub gram: Vec<f32>,
    pub pattern: Pattern,
    pub warm: Mask,
}

pub fn case(d_out: usize, d_in: usize, pattern: Pattern, seed: u64) -> Case {
    let l = llm_like_layer(d_out, d_in, 16, seed);
    let diag: Vec<f32> = (0..d_in).map(|i| l.gram[i * d_in + i]).collect();
    let warm =
        sparseswaps_warmstart_wanda::wanda_mask(&l.weights, d_out, d_in, &diag, &pattern).unwrap();
    Case {
        d_out,
        d_in,
        weights: l.weights,
        gram: l.gram,
        pattern,
        warm,
    }
}

/// Every pair ties: all weights 0.5, `G = 1.5 I + 0.5`, the second half of each row kept.
/// A search step's pick is then decided by the tie rule alone (lowest u, then lowest q).
pub fn all_ties_case(d_out: usize, d_in: usize) -> Case {
    let gram = (0..d_in * d_in)
        .map(|i| if i / d_in == i % d_in { 2.0 } else { 0.5 })
        .collect();
    let mut m = vec![0u8; d_out * d_in];
    for r in 0..d_out {
        m[r * d_in + d_in / 2..(r + 1) * d_in].fill(1);
    }
    Case {
        d_out,
        d_in,
        weights: vec![0.5; d_out * d_in],
        gram,
        pattern: Pattern::unstructured(0.5).unwrap(),
        warm: Mask::new(d_out, d_in, m).unwrap(),
    }
}

/// Exact agreement of two runs: masks, per-row counts and stops, errors bit for bit.
pub fn same_result(a: (&Mask, &RefineReport), b: (&Mask, &RefineReport)) -> Result<(), String> {
    if a.0 != b.0 {
        let d = a.0.cols();
        let bad: Vec<usize> = (0..a.0.rows())
            .filter(|&r| a.0.row(r) != b.0.row(r))
            .take(5)
            .collect();
        return Err(format!("masks differ in rows {bad:?} (d_in {d})"));
    }
    for (r, (x, y)) in a.1.rows.iter().zip(&b.1.rows).enumerate() {
        if x.swaps != y.swaps || x.steps != y.steps || x.stop != y.stop {
            return Err(format!("row {r}: {x:?} vs {y:?}"));
        }
        for (what, u, v) in [
            ("warm_error", x.warm_error, y.warm_error),
            ("final_error", x.final_error, y.final_error),
            ("energy", x.energy, y.energy),
        ] {
            if u.to_bits() != v.to_bits() {
                return Err(format!("row {r}: {what} {u:e} vs {v:e}"));
            }
        }
    }
    Ok(())
}

/// Round-to-nearest-even f32 → bfloat16 bits (finite inputs).
pub fn to_bf16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

/// bfloat16 bits → f32.
pub fn from_bf16_bits(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}
