//! `synth-model` writes directories that `sparseswaps_model::load` opens, with the
//! tensors, dtypes and shards the config and the shard size imply.

use safetensors::{Dtype, SafeTensors};
use serde_json::Value;
use sparseswaps_model::{load, RopeScaling, SourceDtype};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Name -> (dtype, shape, shard file).
type Found = BTreeMap<String, (Dtype, Vec<usize>, String)>;

fn out_dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("synth-model-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Runs the tool; returns (success, stderr).
fn synth(args: &[&str], out: &Path) -> (bool, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_synth-model"))
        .args(args)
        .arg(out)
        .output()
        .expect("run synth-model");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("read json")).expect("json")
}

/// Every tensor of the directory's safetensors files, read with the reference parser.
fn tensors(dir: &Path) -> Found {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).expect("dir") {
        let p = e.expect("entry").path();
        if p.extension().is_some_and(|x| x == "safetensors") {
            let bytes = std::fs::read(&p).expect("shard");
            let st = SafeTensors::deserialize(&bytes).expect("valid safetensors");
            let file = p.file_name().expect("name").to_string_lossy().into_owned();
            for (name, v) in st.tensors() {
                let old = out.insert(name.clone(), (v.dtype(), v.shape().to_vec(), file.clone()));
                assert!(old.is_none(), "{name} is in two shards");
            }
        }
    }
    out
}

/// The tensors a Llama config implies, with their shapes.
fn expected(cfg: &Value) -> BTreeMap<String, Vec<usize>> {
    let g = |k: &str| cfg[k].as_u64().expect(k) as usize;
    let (h, i, v, hd) = (
        g("hidden_size"),
        g("intermediate_size"),
        g("vocab_size"),
        g("head_dim"),
    );
    let (q, kv) = (g("num_attention_heads") * hd, g("num_key_value_heads") * hd);
    let mut m = BTreeMap::new();
    m.insert("model.embed_tokens.weight".to_string(), vec![v, h]);
    m.insert("model.norm.weight".to_string(), vec![h]);
    if !cfg["tie_word_embeddings"].as_bool().expect("tie") {
        m.insert("lm_head.weight".to_string(), vec![v, h]);
    }
    for l in 0..g("num_hidden_layers") {
        let p = format!("model.layers.{l}");
        for (n, s) in [
            ("self_attn.q_proj", vec![q, h]),
            ("self_attn.k_proj", vec![kv, h]),
            ("self_attn.v_proj", vec![kv, h]),
            ("self_attn.o_proj", vec![h, q]),
            ("mlp.gate_proj", vec![i, h]),
            ("mlp.up_proj", vec![i, h]),
            ("mlp.down_proj", vec![h, i]),
            ("input_layernorm", vec![h]),
            ("post_attention_layernorm", vec![h]),
        ] {
            m.insert(format!("{p}.{n}.weight"), s);
        }
    }
    m
}

/// Checks names, shapes and dtypes against config.json, loads the directory and runs the
/// tokenizer and a forward.
fn check_dir(dir: &Path, dtype: Dtype, source: SourceDtype) -> Found {
    let cfg = json(&dir.join("config.json"));
    let found = tensors(dir);
    let shapes: BTreeMap<String, Vec<usize>> = found
        .iter()
        .map(|(n, (_, s, _))| (n.clone(), s.clone()))
        .collect();
    assert_eq!(shapes, expected(&cfg));
    assert!(found.values().all(|(d, _, _)| *d == dtype), "all {dtype:?}");

    let model = load(dir).expect("sparseswaps_model::load opens it");
    let c = model.config();
    assert_eq!(
        Some(c.num_hidden_layers as u64),
        cfg["num_hidden_layers"].as_u64()
    );
    assert_eq!(Some(c.vocab_size as u64), cfg["vocab_size"].as_u64());
    assert!(c.num_key_value_heads < c.num_attention_heads, "GQA");
    assert!(matches!(c.rope_scaling, Some(RopeScaling::Llama3 { .. })));
    assert_eq!(model.source().dtype, source);

    let text = "The quick brown fox jumps over the lazy dog; 1234 émigrés!\n";
    let ids = model.encode(text).expect("encode");
    assert!(
        ids.len() > 5 && ids.len() < text.len(),
        "{} tokens",
        ids.len()
    );
    let bos = c.vocab_size as u32 - 256;
    assert!(ids.iter().all(|&i| i < bos), "regular ids only");
    assert_eq!(model.decode(&ids).expect("decode"), text);
    let with_bos = model.tokenizer().encode(text, true).expect("encode");
    assert_eq!(with_bos.get_ids()[0], bos, "BOS added first");
    assert_eq!(model.encode("<|eot_id|>").expect("encode"), vec![bos + 9]);
    let last = model
        .encode("<|reserved_special_token_247|>")
        .expect("encode");
    assert_eq!(
        last,
        vec![c.vocab_size as u32 - 1],
        "ids cover the vocabulary"
    );

    let logits = model.forward(&ids[..4], 1).expect("forward");
    let v: Vec<f32> = logits.flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(v.len(), 4 * c.vocab_size);
    assert!(v.iter().all(|x| x.is_finite()));
    found
}

#[test]
fn tiny_model_loads_with_the_config_tensors() {
    let dir = out_dir("single");
    let (ok, err) = synth(&["--shape", "tiny", "--seed", "3"], &dir);
    assert!(ok, "{err}");
    check_dir(&dir, Dtype::BF16, SourceDtype::BF16);
    assert!(!dir.join("model.safetensors.index.json").exists());
    for f in [
        "generation_config.json",
        "tokenizer_config.json",
        "README.md",
    ] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    assert!(readme.contains("never quality"));
    // Linears ~ N(0, 0.02), norms 1.
    let model = load(&dir).unwrap();
    let w: Vec<f32> = model
        .weight("model.layers.1.mlp.up_proj.weight")
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let std = (w.iter().map(|x| x * x).sum::<f32>() / w.len() as f32).sqrt();
    assert!((std - 0.02).abs() < 0.002, "std {std}");
    let norm: Vec<f32> = model.final_norm().to_vec1().unwrap();
    assert!(norm.iter().all(|&x| x == 1.0));

    // Existing OUT_DIR: refused in one line, replaced with --force, same seed same bytes.
    let before = std::fs::read(dir.join("model.safetensors")).unwrap();
    let (ok, err) = synth(&["--shape", "tiny", "--seed", "3"], &dir);
    assert!(!ok);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("exists") && err.contains("--force"), "{err}");
    let (ok, err) = synth(&["--shape", "tiny", "--seed", "3", "--force"], &dir);
    assert!(ok, "{err}");
    assert_eq!(
        std::fs::read(dir.join("model.safetensors")).unwrap(),
        before
    );
    let (ok, err) = synth(&["--shape", "tiny", "--seed", "4", "--force"], &dir);
    assert!(ok, "{err}");
    assert_ne!(
        std::fs::read(dir.join("model.safetensors")).unwrap(),
        before
    );
    // No temporary or set-aside directory is left beside it.
    let left: Vec<_> = std::fs::read_dir(dir.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .contains("synth-model-single.synth-")
        })
        .collect();
    assert!(left.is_empty());
}

#[test]
fn small_shard_size_writes_shards_and_index() {
    let dir = out_dir("sharded");
    // The embedding and the head are 131 KB each in bf16, a block about 57 KB.
    let (ok, err) = synth(
        &["--shape", "tiny", "--blocks", "2", "--shard-size", "140KB"],
        &dir,
    );
    assert!(ok, "{err}");
    let found = check_dir(&dir, Dtype::BF16, SourceDtype::BF16);
    let index = json(&dir.join("model.safetensors.index.json"));
    let map = index["weight_map"].as_object().expect("weight_map");
    assert_eq!(map.len(), found.len());
    for (name, (_, _, file)) in &found {
        assert_eq!(map[name].as_str(), Some(file.as_str()), "{name}");
    }
    let total: u64 = found
        .values()
        .map(|(_, s, _)| 2 * s.iter().product::<usize>() as u64)
        .sum();
    assert_eq!(index["metadata"]["total_size"].as_u64(), Some(total));
    let mut files: Vec<String> = found.values().map(|(_, _, f)| f.clone()).collect();
    files.sort();
    files.dedup();
    let n = files.len();
    assert!(n >= 3, "{n} shards");
    let want: Vec<String> = (1..=n)
        .map(|i| format!("model-{i:05}-of-{n:05}.safetensors"))
        .collect();
    assert_eq!(files, want);
    for f in &files {
        // 140 KB of data at most, plus the header.
        let len = std::fs::metadata(dir.join(f)).unwrap().len();
        assert!(len < 140_000 + 8192, "{f}: {len} bytes");
    }
}

#[test]
fn tied_f32_and_f16_variants_load() {
    let dir = out_dir("tied");
    let (ok, err) = synth(
        &["--shape", "tiny-tied", "--blocks", "1", "--dtype", "f32"],
        &dir,
    );
    assert!(ok, "{err}");
    let found = check_dir(&dir, Dtype::F32, SourceDtype::F32);
    assert!(!found.contains_key("lm_head.weight"));
    let cfg = json(&dir.join("config.json"));
    assert_eq!(cfg["num_hidden_layers"], 1);
    assert_eq!(cfg["torch_dtype"], "float32");
    let dir = out_dir("f16");
    let (ok, err) = synth(&["--shape", "tiny", "--dtype", "f16"], &dir);
    assert!(ok, "{err}");
    check_dir(&dir, Dtype::F16, SourceDtype::F16);
}

#[test]
fn bad_arguments_fail_in_one_line_before_writing() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("no-such-parent/x");
    let (ok, err) = synth(&["--shape", "llama-3.1-8b"], &dir);
    assert!(!ok);
    assert!(err.contains("no such directory"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let (ok, err) = synth(&["--shape", "llama-3.1-70b", "--blocks", "81"], &dir);
    assert!(!ok);
    assert!(err.contains("1 to 80"), "{err}");
}
