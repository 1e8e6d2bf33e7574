//! Bad inputs: each fails with one clear line naming what is wrong.

mod common;

use common::{assert_contains, assert_ends_with, tiny};
use sparseswaps_model::{load, perplexity, perplexity_of_file};
use std::path::Path;
use tempfile::TempDir;

fn err(path: &Path) -> String {
    load(path)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_else(|| panic!("{} loaded", path.display()))
}

/// A temp dir holding the tiny bias-free, tied-embedding HF model (weights from `seed`),
/// declared as `arch` and written in `shards` safetensors files.
fn tiny_hf_dir(arch: &str, seed: u64, shards: usize) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    tiny::write_hf(
        dir.path(),
        arch,
        &tiny::weights(seed, false, true),
        true,
        shards,
    );
    dir
}

#[test]
fn missing_model_path() {
    let e = err(Path::new("/no/such/model-dir"));
    assert_eq!(e, "/no/such/model-dir: no such file or directory");
}

#[test]
fn unsupported_architecture_is_named() {
    let dir = tiny_hf_dir("GPT2LMHeadModel", 5, 1);
    let e = err(dir.path());
    assert_contains(
        &e,
        "config.json: unsupported architecture 'GPT2LMHeadModel'",
    );
}

#[test]
fn missing_tokenizer() {
    let dir = tiny_hf_dir("LlamaForCausalLM", 5, 1);
    std::fs::remove_file(dir.path().join("tokenizer.json")).unwrap();
    let e = err(dir.path());
    assert_ends_with(
        &e,
        "missing tokenizer.json (a Hugging Face model directory needs one)",
    );
}

#[test]
fn truncated_safetensors_shard() {
    let dir = tiny_hf_dir("LlamaForCausalLM", 5, 2);
    let shard = dir.path().join("model-00002-of-00002.safetensors");
    let bytes = std::fs::read(&shard).unwrap();
    std::fs::write(&shard, &bytes[..bytes.len() - 100]).unwrap();
    let e = err(dir.path());
    assert_contains(
        &e,
        "model-00002-of-00002.safetensors: not a valid safetensors file",
    );
}

#[test]
fn missing_tensor_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = tiny::weights(5, false, true);
    w.remove("model.layers.1.mlp.up_proj.weight");
    tiny::write_hf(dir.path(), "LlamaForCausalLM", &w, true, 1);
    let e = err(dir.path());
    assert_ends_with(&e, "missing tensor 'model.layers.1.mlp.up_proj.weight'");
}

#[test]
fn gguf_with_wrong_magic() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("model.gguf");
    std::fs::write(&p, b"GGML\x03\x00\x00\x00 not really a model").unwrap();
    let e = err(&p);
    assert_contains(&e, "model.gguf: invalid GGUF file: wrong magic \"GGML\"");
}

#[test]
fn gguf_with_truncated_tensor_data() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("tiny.gguf");
    tiny::write_gguf(&p, &tiny::weights(6, false, false));
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - 64]).unwrap();
    let e = err(&p);
    assert!(
        e.contains("tiny.gguf: invalid GGUF file: tensor '") && e.contains("remaining in file"),
        "{e}"
    );
}

#[test]
fn text_shorter_than_one_window() {
    let dir = tiny_hf_dir("LlamaForCausalLM", 7, 1);
    let model = load(dir.path()).unwrap();
    let text = dir.path().join("short.txt");
    std::fs::write(&text, "too short").unwrap();
    let e = perplexity_of_file(&model, &text, 64, 4, &mut |_, _| {})
        .unwrap_err()
        .to_string();
    assert_contains(
        &e,
        "short.txt: text has 9 tokens, fewer than one window of 64",
    );
    // And a text long enough for a window gives a finite perplexity.
    let ids = model.encode(&"the tiny text ".repeat(20)).unwrap();
    let p = perplexity(&model, &ids, 32, 100, &mut |_, _| {}).unwrap();
    assert_eq!((p.windows, p.tokens), (ids.len() / 32, ids.len() / 32 * 31));
    assert!(p.ppl.is_finite() && (p.ppl.ln() - p.mean_nll).abs() < 1e-9);
}
