//! The check every plugin mask goes through (`check_plugin_mask`), on buffers a broken
//! plugin could return; the library-level cases (wrong kept count, N:M broken) are in
//! `c_plugins.rs` with real fixture libraries.

use sparseswaps_core::Pattern;
use sparseswaps_plugin_host::check_plugin_mask;
use std::path::Path;

fn err(out: Vec<u8>, rows: usize, cols: usize, pattern: &str) -> String {
    let p: Pattern = pattern.parse().unwrap();
    let e = check_plugin_mask(
        "broken",
        Path::new("/plugins/libbroken.so"),
        out,
        rows,
        cols,
        &p,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("plugin 'broken' (/plugins/libbroken.so) returned an invalid mask: "),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1, "{e}");
    e
}

#[test]
fn wrong_length_is_rejected() {
    let e = err(vec![1, 0, 1, 0, 1], 2, 4, "0.5");
    assert!(e.ends_with("mask has 5 values, expected 2 x 4 = 8"), "{e}");
}

/// Regression: a row and column count whose product overflows `usize` panicked
/// (`attempt to multiply with overflow`) instead of failing the check (found by reading
/// the check while writing the `mask_validation` fuzz target).
#[test]
fn overflowing_shape_is_rejected() {
    let e = err(vec![1, 0, 1, 0], usize::MAX / 2, 4, "2:4");
    assert!(
        e.ends_with("expected 9223372036854775807 x 4 (overflows)"),
        "{e}"
    );
}

#[test]
fn values_other_than_zero_and_one_are_rejected() {
    let e = err(vec![1, 0, 1, 0, 2, 0, 1, 0], 2, 4, "0.5");
    assert!(
        e.ends_with("value 2 at row 1, column 0 (expected 0 or 1)"),
        "{e}"
    );
}

#[test]
fn a_valid_mask_passes() {
    let p = Pattern::n_m(2, 4).unwrap();
    let m = check_plugin_mask(
        "ok",
        Path::new("libok.so"),
        vec![1, 1, 0, 0, 0, 1, 0, 1],
        2,
        4,
        &p,
    )
    .unwrap();
    assert_eq!((m.rows(), m.cols(), m.kept()), (2, 4, 4));
}
