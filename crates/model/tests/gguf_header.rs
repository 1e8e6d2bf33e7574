//! Malformed GGUF headers, written byte by byte: each is refused by the header check
//! with one line naming the file (and the tensor or key at fault) before anything is
//! allocated from the sizes it claims. The "Regression" cases abort or panicked in the
//! loader before its own header check existed (found by reading candle's GGUF reader
//! while writing the `gguf_header` fuzz target, see `fuzz/`).

mod common;

use common::{assert_contains, assert_ends_with};
use sparseswaps_model::gguf::read_gguf_header;
use sparseswaps_model::load;
use std::io::Cursor;
use std::path::Path;

/// GGUF value type ids used below.
const U32: u32 = 4;
const STRING: u32 = 8;

/// A GGUF file under construction (little-endian, v2/v3 layout: u64 lengths).
struct Gguf(Vec<u8>);

impl Gguf {
    fn new(version: u32, tensors: u64, kvs: u64) -> Self {
        let mut b = b"GGUF".to_vec();
        b.extend(version.to_le_bytes());
        b.extend(tensors.to_le_bytes());
        b.extend(kvs.to_le_bytes());
        Gguf(b)
    }
    fn str(mut self, s: &str) -> Self {
        self.0.extend((s.len() as u64).to_le_bytes());
        self.0.extend(s.as_bytes());
        self
    }
    fn u32(mut self, v: u32) -> Self {
        self.0.extend(v.to_le_bytes());
        self
    }
    fn u64(mut self, v: u64) -> Self {
        self.0.extend(v.to_le_bytes());
        self
    }
    fn kv_u32(self, key: &str, v: u32) -> Self {
        self.str(key).u32(U32).u32(v)
    }
    fn kv_str(self, key: &str, v: &str) -> Self {
        self.str(key).u32(STRING).str(v)
    }
    /// A tensor info: name, dimensions (innermost first, as in the file), type, offset.
    fn tensor(self, name: &str, dims: &[u64], ty: u32, offset: u64) -> Self {
        let mut g = self.str(name).u32(dims.len() as u32);
        for &d in dims {
            g = g.u64(d);
        }
        g.u32(ty).u64(offset)
    }
    fn zeros(mut self, n: usize) -> Self {
        self.0.extend(std::iter::repeat_n(0u8, n));
        self
    }
}

/// The header error for `bytes`, checked to be one line naming `x.gguf`.
fn header_err(bytes: &[u8]) -> String {
    let e = read_gguf_header(Path::new("x.gguf"), &mut Cursor::new(bytes))
        .expect_err("header accepted")
        .to_string();
    assert!(e.starts_with("x.gguf: invalid GGUF file: "), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
    e
}

/// The error of loading `bytes` from a file through `load`, checked to be one line naming
/// the file; the directory holds nothing but the input afterwards.
fn load_err(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.gguf");
    std::fs::write(&p, bytes).unwrap();
    let Err(e) = load(&p).map(|_| ()) else {
        panic!("model loaded")
    };
    let e = e.to_string();
    assert!(e.starts_with(&format!("{}: ", p.display())), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    e
}

#[test]
fn wrong_version() {
    let e = header_err(&Gguf::new(4, 0, 0).0);
    assert_ends_with(&e, "unsupported GGUF version 4 (supported: 1, 2, 3)");
    load_err(&Gguf::new(0, 0, 0).0);
}

#[test]
fn tensor_count_larger_than_the_file_can_hold() {
    let e = header_err(&Gguf::new(3, 1_000_000_000_000, 0).0);
    assert_ends_with(
        &e,
        "tensor count 1000000000000 needs at least 28000000000000 bytes, only 0 left in the file",
    );
    // Also through the file loader.
    let e = load_err(&Gguf::new(3, 5, 0).0);
    assert_contains(&e, "tensor count 5 needs at least");
}

#[test]
fn metadata_count_and_string_length_absurd() {
    let e = header_err(&Gguf::new(3, 0, u64::MAX).0);
    assert_contains(&e, "metadata entry count 18446744073709551615");
    // A key that claims 10^18 bytes: refused before allocating it.
    let e = header_err(
        &Gguf::new(3, 0, 1)
            .u64(1_000_000_000_000_000_000)
            .zeros(16)
            .0,
    );
    assert_ends_with(
        &e,
        "metadata key needs 1000000000000000000 bytes at offset 32, only 16 left in the file",
    );
    // An array of 2^40 u32 in a 100-byte file.
    let g = Gguf::new(3, 0, 1)
        .str("big")
        .u32(9)
        .u32(U32)
        .u64(1 << 40)
        .zeros(64);
    let e = header_err(&g.0);
    assert_contains(&e, "metadata 'big' array count 1099511627776");
}

#[test]
fn unsupported_quant_type_names_the_tensor() {
    let g = Gguf::new(3, 1, 0)
        .tensor("blk.0.attn_q.weight", &[256, 4], 16, 0)
        .zeros(4096);
    let e = header_err(&g.0);
    assert_contains(
        &e,
        "tensor 'blk.0.attn_q.weight': unsupported GGML type 16 (an IQ quantization)",
    );
}

#[test]
fn truncated_tensor_data_names_the_tensor() {
    // 4 x 4 f32 = 64 bytes, but only 10 bytes after the aligned header.
    let g = Gguf::new(3, 1, 0).tensor("w", &[4, 4], 0, 0);
    let pad = g.0.len().div_ceil(32) * 32 - g.0.len();
    let e = header_err(&g.zeros(pad + 10).0);
    assert!(
        e.contains("tensor 'w': needs 64 bytes at offset")
            && e.ends_with("only 10 remaining in file"),
        "{e}"
    );
    // An offset that overflows when added to the data start.
    let g = Gguf::new(3, 1, 0)
        .tensor("w", &[4], 0, u64::MAX - 3)
        .zeros(64);
    let e = header_err(&g.0);
    assert_contains(&e, "tensor 'w': needs 16 bytes");
}

/// Regression: `general.alignment = 0` reached a division by zero in the GGUF
/// reader (candle's `div_ceil(0)`), an abort instead of an error.
#[test]
fn zero_alignment_is_an_error() {
    let g = Gguf::new(3, 0, 1).kv_u32("general.alignment", 0);
    let e = header_err(&g.0);
    assert_ends_with(
        &e,
        "metadata 'general.alignment' = U32(0): expected a u32 power of two",
    );
}

/// Regression: a tensor with a zero dimension reached candle's block cast with a
/// dangling pointer (misaligned-pointer abort), and dimensions whose product overflows
/// `usize` panicked.
#[test]
fn empty_and_overflowing_shapes_are_errors() {
    let g = Gguf::new(3, 1, 0).tensor("w", &[0, 4], 0, 0).zeros(64);
    let e = header_err(&g.0);
    assert_contains(
        &e,
        "tensor 'w': shape [4, 0] has a zero dimension or more elements than the file can hold",
    );
    let g = Gguf::new(3, 1, 0)
        .tensor("w", &[1 << 40, 1 << 40], 0, 0)
        .zeros(64);
    let e = header_err(&g.0);
    assert_contains(&e, "tensor 'w': shape [1099511627776, 1099511627776]");
    let g = Gguf::new(3, 1, 0)
        .tensor("w", &[1, 1, 1, 1, 1], 0, 0)
        .zeros(64);
    let e = header_err(&g.0);
    assert_contains(&e, "tensor 'w': 5 dimensions (expected 1 to 4)");
}

/// Regression: the loader built a tensor-name list sized by the block count before
/// looking any name up; now the count is compared with the tensors present first.
#[test]
fn block_count_larger_than_the_tensors_present() {
    let g = Gguf::new(3, 1, 6)
        .kv_str("general.architecture", "llama")
        .kv_u32("llama.embedding_length", 8)
        .kv_u32("llama.attention.head_count", 2)
        .kv_u32("llama.feed_forward_length", 16)
        .kv_u32("llama.block_count", 1000)
        .kv_u32("llama.context_length", 64)
        .tensor("token_embd.weight", &[8, 4], 0, 0);
    let pad = g.0.len().div_ceil(32) * 32 - g.0.len();
    let e = load_err(&g.zeros(pad + 128).0);
    assert_ends_with(
        &e,
        "llama.block_count = 1000 needs at least 9002 tensors, the file has 1",
    );
}

#[test]
fn duplicate_tensor_and_key_names() {
    let g = Gguf::new(3, 0, 2)
        .kv_u32("general.alignment", 32)
        .kv_u32("general.alignment", 32);
    assert!(header_err(&g.0).ends_with("metadata key 'general.alignment' appears twice"));
    let g = Gguf::new(3, 2, 0)
        .tensor("w", &[4], 0, 0)
        .tensor("w", &[4], 0, 0)
        .zeros(64);
    assert!(header_err(&g.0).ends_with("tensor 'w' appears twice"));
}

/// Regression, found by the `gguf_header` fuzz target (crash-3125104f…): a metadata key
/// ending in a newline (`llama.block_coun\n`) was quoted as is, so the message ran
/// over several lines. Control characters in names and values are now escaped.
#[test]
fn control_characters_in_names_are_escaped() {
    const CRASH: &str = "474755460300000001000000000000000300000000000000140000000000000067656e6572616c2e6172636869746563747572650800000005000000000000006c6c616d61110000000000000067656e6572616c2e616c69676e6d656e74040000002000000011000000000000006c6c616d612e626c6f636b5f636f756e0a0a0a0a0a0a0a7404000000000000001100000000000000746f6b656e5f656d62642e776569676874020000000200000000400000a0400000c0400000e040";
    let bytes: Vec<u8> = (0..CRASH.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&CRASH[i..i + 2], 16).unwrap())
        .collect();
    let e = header_err(&bytes);
    assert_ends_with(
        &e,
        r"metadata 'llama.block_coun\n' has unknown value type 168430090",
    );
    // A tensor name with a carriage return and an escape character, through `load`.
    let g = Gguf::new(3, 1, 0)
        .tensor("w\r\u{1b}[2J", &[4], 99, 0)
        .zeros(64);
    let e = load_err(&g.0);
    assert_contains(&e, r"tensor 'w\r\u{1b}[2J': unsupported GGML type 99");
}

/// A sliding window in GGUF metadata is refused by name: the file does not say which
/// blocks transformers would window, and llama.cpp's `llama` graph would not.
#[test]
fn sliding_window_in_metadata_is_refused() {
    let g = Gguf::new(3, 1, 7)
        .kv_str("general.architecture", "llama")
        .kv_u32("llama.embedding_length", 8)
        .kv_u32("llama.attention.head_count", 2)
        .kv_u32("llama.feed_forward_length", 16)
        .kv_u32("llama.block_count", 1)
        .kv_u32("llama.context_length", 64)
        .kv_u32("llama.attention.sliding_window", 4096)
        .tensor("token_embd.weight", &[8, 4], 0, 0);
    let pad = g.0.len().div_ceil(32) * 32 - g.0.len();
    let e = load_err(&g.zeros(pad + 128).0);
    assert_contains(
        &e,
        "unsupported sliding-window attention in GGUF (llama.attention.sliding_window = 4096)",
    );
}
