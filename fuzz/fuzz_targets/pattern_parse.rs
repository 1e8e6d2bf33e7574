//! Text → the sparsity pattern parser (`"0.5"`, `"50%"`, `"2:4"`) and the width checks
//! the engine relies on.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sparseswaps_core::Pattern;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(p) = text.parse::<Pattern>() else {
        return;
    };
    p.validate().expect("a parsed pattern is valid");
    // Its display form parses back to the same pattern.
    assert_eq!(p.to_string().parse::<Pattern>().ok(), Some(p), "{text:?}");
    for d_in in [1usize, 2, 3, 4, 7, 8, 576, 1536] {
        if p.check_width(d_in).is_ok() {
            let k = p.kept_per_row(d_in);
            assert!(k <= d_in, "{p}: keeps {k} of {d_in}");
        }
    }
});
