//! Corrupt safetensors files: each read fails with one line that names the file (and the
//! tensor where there is one), and reading never writes anything.

use sparseswaps_tensor_io::{
    read_tensor_f32, read_tensor_u8, tensor_f64_from_bytes, write_safetensors_atomic, OwnedTensor,
    TensorSpec,
};
use std::path::Path;

/// A valid file: `w` f32 [2, 3] and `m` u8 [2, 3].
fn valid(dir: &Path) -> Vec<u8> {
    let p = dir.join("valid.safetensors");
    write_safetensors_atomic(
        &p,
        &[
            ("w".into(), OwnedTensor::f32(vec![2, 3], &[1.0; 6])),
            (
                "m".into(),
                OwnedTensor::u8(vec![2, 3], vec![1, 0, 1, 0, 1, 0]),
            ),
        ],
        None,
    )
    .unwrap();
    std::fs::read(p).unwrap()
}

/// A file with `header` (JSON text) and `data`, as safetensors lays them out.
fn raw(header: &str, data: &[u8]) -> Vec<u8> {
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend(header.as_bytes());
    b.extend(data);
    b
}

/// Writes `bytes` as `bad.safetensors`, reads `bad.safetensors[:name]` as f32 of rank 2,
/// and returns the error after checking it is one line naming the file and that the
/// directory holds nothing else.
fn read_err(bytes: &[u8], name: Option<&str>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.safetensors");
    std::fs::write(&p, bytes).unwrap();
    let spec = TensorSpec {
        path: p.clone(),
        name: name.map(Into::into),
    };
    let e = read_tensor_f32(&spec, 2).unwrap_err().to_string();
    assert!(e.starts_with(&format!("{}: ", p.display())), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    e
}

/// Asserts that the error text `e` ends with `tail`, showing `e` when it does not.
fn assert_ends_with(e: &str, tail: &str) {
    assert!(e.ends_with(tail), "{e}");
}

#[test]
fn truncated_header_length() {
    let e = read_err(b"\x10\x00\x00", None);
    assert_ends_with(
        &e,
        "not a valid safetensors file (file is 3 bytes, shorter than the 8-byte header length)",
    );
}

#[test]
fn header_length_beyond_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = valid(dir.path());
    // The file cut inside its header: the length claims more than is left.
    let e = read_err(&good[..20], None);
    let claimed = u64::from_le_bytes(good[..8].try_into().unwrap());
    assert!(
        e.ends_with(&format!(
            "not a valid safetensors file (header length {claimed} exceeds the 12 bytes after it (truncated file or corrupt header))"
        )),
        "{e}"
    );
    // An absurd length (10^18): refused from the file size, nothing allocated.
    let mut absurd = good.clone();
    absurd[..8].copy_from_slice(&1_000_000_000_000_000_000u64.to_le_bytes());
    let e = read_err(&absurd, None);
    assert!(
        e.contains("header length 1000000000000000000 exceeds the"),
        "{e}"
    );
}

#[test]
fn header_json_invalid() {
    let e = read_err(&raw("{\"w\": {\"dtype\": \"F32\", ", &[0; 8]), None);
    assert!(
        e.contains("not a valid safetensors file (invalid JSON in header"),
        "{e}"
    );
}

#[test]
fn tensor_data_offsets_out_of_range() {
    // `w` claims bytes 0..24 but the data section has 8.
    let h = r#"{"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}}"#;
    let e = read_err(&raw(h, &[0; 8]), Some("w"));
    assert_ends_with(&e, "not a valid safetensors file (tensor 'w': data_offsets [0, 24] lie outside the 8 bytes of data)");
    // Offsets that disagree with the shape (2 x 3 f32 is 24 bytes, not 16).
    let h = r#"{"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,16]}}"#;
    let e = read_err(&raw(h, &[0; 16]), Some("w"));
    assert_ends_with(
        &e,
        "(tensor 'w': shape [2, 3] of F32 needs 24 bytes, data_offsets [0, 16] hold 16)",
    );
    // A shape whose element count overflows.
    let h = r#"{"w":{"dtype":"F32","shape":[18446744073709551615,3],"data_offsets":[0,16]}}"#;
    let e = read_err(&raw(h, &[0; 16]), Some("w"));
    assert_ends_with(
        &e,
        "(tensor 'w': shape [18446744073709551615, 3] has more elements than any file can hold)",
    );
}

#[test]
fn unsupported_dtype_names_the_tensor() {
    let h = r#"{"w":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}}"#;
    let e = read_err(&raw(h, &[0; 16]), Some("w"));
    assert_ends_with(
        &e,
        "tensor 'w' has dtype I32; expected f64, f32, f16, bf16 or u8",
    );
    // A mask must be u8 or bool.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("mask.safetensors");
    std::fs::write(&p, valid(dir.path())).unwrap();
    let e = read_tensor_u8(
        &TensorSpec {
            path: p.clone(),
            name: Some("w".into()),
        },
        2,
    )
    .unwrap_err()
    .to_string();
    assert_ends_with(
        &e,
        "mask.safetensors: tensor 'w' has dtype F32; a mask must be u8 or bool",
    );
}

/// The in-memory entry point gives the same messages as the file reader.
#[test]
fn in_memory_reading_matches_the_file_reader() {
    let dir = tempfile::tempdir().unwrap();
    let good = valid(dir.path());
    let t = tensor_f64_from_bytes(Path::new("mem"), &good, Some("w"), 2).unwrap();
    assert_eq!((t.shape, t.data), (vec![2, 3], vec![1.0; 6]));
    let e = tensor_f64_from_bytes(Path::new("mem"), &good[..5], None, 2)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "mem: not a valid safetensors file (file is 5 bytes, shorter than the 8-byte header length)"
    );
}

/// A tensor name with a newline is quoted escaped, so the message stays one line (the
/// GGUF fuzz target found the same fault in the GGUF loader).
#[test]
fn control_characters_in_tensor_names_are_escaped() {
    let h = r#"{"a\nb":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}}"#;
    let e = read_err(&raw(h, &[0; 16]), None);
    assert_ends_with(
        &e,
        r"tensor 'a\nb' has dtype I32; expected f64, f32, f16, bf16 or u8",
    );
}
