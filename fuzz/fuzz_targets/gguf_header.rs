//! Bytes → our GGUF loader (`sparseswaps_model::gguf`): header, metadata and tensor
//! infos, then (when the header passes) config, tensors and tokenizer as `load` does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sparseswaps_model::gguf::{load_gguf_from, read_gguf_header};
use std::io::Cursor;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.gguf");
    match read_gguf_header(path, &mut Cursor::new(data)) {
        Ok(_) => {
            if let Err(e) = load_gguf_from(path, Cursor::new(data)) {
                check(&e.to_string());
            }
        }
        Err(e) => check(&e.to_string()),
    }
});

fn check(msg: &str) {
    assert!(!msg.contains('\n'), "multi-line error: {msg}");
    assert!(
        msg.contains("fuzz.gguf"),
        "error does not name the file: {msg}"
    );
}
