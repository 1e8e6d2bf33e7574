//! Bytes → our safetensors reading (`sparseswaps_tensor_io`): header parse, tensor
//! choice, dtype widening, as `refine-layer` reads weights, Grams and masks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sparseswaps_tensor_io::{tensor_f64_from_bytes, tensor_u8_from_bytes};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.safetensors");
    for rank in [1, 2] {
        for name in [None, Some("weight"), Some("mask")] {
            match tensor_f64_from_bytes(path, data, name, rank) {
                Ok(t) => assert_eq!(t.data.len(), t.shape.iter().product::<usize>()),
                Err(e) => check(&e.to_string()),
            }
            match tensor_u8_from_bytes(path, data, name, rank) {
                Ok(t) => assert_eq!(t.data.len(), t.shape.iter().product::<usize>()),
                Err(e) => check(&e.to_string()),
            }
        }
    }
});

fn check(msg: &str) {
    assert!(!msg.contains('\n'), "multi-line error: {msg}");
    assert!(
        msg.starts_with("fuzz.safetensors"),
        "error does not name the file: {msg}"
    );
}
