//! End-to-end tests of `sparseswaps convert` and `sparseswaps eval`. The SmolLM2 run
//! needs the assets of `scripts/fetch-assets.sh`; it is skipped (a recorded skip) only
//! when that script says the registries are out of reach (exit 3), and fails then under
//! CI (see `sparseswaps_testkit::assets`).

use std::path::PathBuf;
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sparseswaps"))
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `(gguf, moby_dick)` paths; `None` (a recorded skip) only when the registries cannot be
/// reached outside CI.
fn assets() -> Option<(PathBuf, PathBuf)> {
    sparseswaps_testkit::assets().map(|a| (a.gguf, a.moby_dick))
}

#[test]
fn convert_refuses_an_existing_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .args(["convert", "model.gguf", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(
        e.contains("already exists (pass --force to replace it)"),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1, "{e}");
}

/// A GGUF file whose one tensor's data was cut off: `convert` and `eval` exit non-zero
/// with one line naming the file and the tensor, and `convert` leaves no output
/// directory (nor a staging one) behind.
#[test]
fn truncated_gguf_fails_cleanly_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("cut.gguf");
    // Header: GGUF v3, one tensor, no metadata; tensor `token_embd.weight`, f32 8 x 4
    // (128 bytes) at offset 0 of the data section, of which 16 bytes are present.
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend(1u64.to_le_bytes());
    b.extend(0u64.to_le_bytes());
    let name = "token_embd.weight";
    b.extend((name.len() as u64).to_le_bytes());
    b.extend(name.as_bytes());
    b.extend(2u32.to_le_bytes());
    b.extend(4u64.to_le_bytes());
    b.extend(8u64.to_le_bytes());
    b.extend(0u32.to_le_bytes());
    b.extend(0u64.to_le_bytes());
    let data_start = b.len().div_ceil(32) * 32;
    b.resize(data_start + 16, 0);
    std::fs::write(&model, &b).unwrap();
    let expected = format!(
        "error: {}: invalid GGUF file: tensor 'token_embd.weight': needs 128 bytes at offset {data_start}, only 16 remaining in file",
        model.display()
    );

    let out = dir.path().join("converted");
    let o = bin()
        .arg("convert")
        .arg(&model)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert_eq!(stderr(&o).trim_end(), expected);
    assert!(!out.exists(), "convert left {}", out.display());
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("cut.gguf")]);

    let text = dir.path().join("t.txt");
    std::fs::write(&text, "some text").unwrap();
    let o = bin()
        .arg("eval")
        .arg(&model)
        .arg("--text")
        .arg(&text)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert_eq!(stderr(&o).trim_end(), expected);
}

#[test]
fn eval_of_a_missing_model() {
    let out = bin()
        .args(["eval", "/no/such/model.gguf", "--text", "/no/such/text.txt"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out).trim(),
        "error: /no/such/model.gguf: no such file or directory"
    );
}

#[test]
fn eval_and_convert_smollm2() {
    let Some((gguf, moby)) = assets() else { return };
    let out = bin()
        .arg("eval")
        .arg(&gguf)
        .arg("--text")
        .arg(&moby)
        .args(["--seq-len", "64", "--windows", "2"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout.starts_with("perplexity ") && stdout.contains("over 126 tokens in 2 windows of 64"),
        "{stdout}"
    );

    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("smollm2-bf16");
    let out = bin()
        .arg("convert")
        .arg(&gguf)
        .arg("--out")
        .arg(&dest)
        .args(["--dtype", "bf16"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        assert!(dest.join(f).is_file(), "{f} missing");
    }
    let cfg = std::fs::read_to_string(dest.join("config.json")).unwrap();
    assert!(cfg.contains("\"torch_dtype\": \"bfloat16\""), "{cfg}");
    // bf16 halves the f32 size: 135M parameters (tied embedding written once).
    let size = std::fs::metadata(dest.join("model.safetensors"))
        .unwrap()
        .len();
    assert!((260_000_000..280_000_000).contains(&size), "{size}");
}
