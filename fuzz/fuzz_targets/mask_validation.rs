//! A pattern, a shape and mask bytes → the plugin host's check of a plugin's output
//! (`check_plugin_mask`). Layout: byte 0 picks the pattern kind, then n, m (or a
//! sparsity byte), rows and cols as u32 little-endian, then the mask bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sparseswaps_core::Pattern;
use sparseswaps_plugin_host::check_plugin_mask;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if data.len() < 11 {
        return;
    }
    let pattern = if data[0] & 1 == 0 {
        Pattern::NM {
            n: data[1] as usize,
            m: data[2] as usize,
        }
    } else {
        Pattern::Unstructured {
            sparsity: f64::from(data[1]) / 255.0 * 1.1 - 0.05,
        }
    };
    // Rows and cols may be huge (their product overflowing is a case to handle); the
    // high bit of byte 0 widens them to u64 range.
    let mut rows = u32::from_le_bytes(data[3..7].try_into().unwrap()) as usize;
    let mut cols = u32::from_le_bytes(data[7..11].try_into().unwrap()) as usize;
    if data[0] & 0x80 != 0 {
        rows <<= 32;
        cols <<= 16;
    }
    let mask = data[11..].to_vec();
    let len = mask.len();
    match check_plugin_mask("fuzz", Path::new("libfuzz.so"), mask, rows, cols, &pattern) {
        Ok(m) => {
            assert_eq!((m.rows(), m.cols()), (rows, cols));
            assert_eq!(rows * cols, len);
            assert!(m.validate(&pattern).is_ok());
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "multi-line error: {msg}");
            assert!(
                msg.contains("libfuzz.so"),
                "error does not name the library: {msg}"
            );
        }
    }
});
