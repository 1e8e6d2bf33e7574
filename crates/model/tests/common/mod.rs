//! Helpers of this crate's integration tests; the real-model assets and the tiny model
//! come from the shared test support (sparseswaps-testkit).

#![allow(dead_code)]

#[allow(unused_imports)] // not every test binary fetches the real model
pub use sparseswaps_testkit::{assets, tiny, Assets};

use sparseswaps_model::Tensor;

/// Largest |a − b| over two same-shape f32 tensors (logits, weights).
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// Asserts that the error text `e` contains `needle`, showing `e` when it does not.
pub fn assert_contains(e: &str, needle: &str) {
    assert!(e.contains(needle), "{e}");
}

/// Asserts that the error text `e` ends with `tail`, showing `e` when it does not.
pub fn assert_ends_with(e: &str, tail: &str) {
    assert!(e.ends_with(tail), "{e}");
}
