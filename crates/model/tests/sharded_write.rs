//! The sharded writer on the tiny model: shards of a small size load back with this
//! crate's loader (the standard loader of CI) equal to the model written; bf16 stays
//! bf16; an incremental writer stopped and resumed writes the same bytes; a truncated
//! shard is one line naming the file.

mod common;

use common::tiny;
use sparseswaps_model::write::block_tensors;
use sparseswaps_model::{
    load, save_hf_dir, save_hf_dir_sharded, Model, ModelWriter, SaveDtype, Tensor,
};
use std::collections::BTreeMap;
use std::path::Path;

fn tiny_model(dir: &Path, arch: &str, bias: bool, tied: bool) -> Model {
    let src = dir.join("src");
    tiny::write_hf(&src, arch, &tiny::weights(3, bias, tied), tied, 1);
    load(&src).unwrap()
}

/// Every tensor of a model by checkpoint name, as f32 values.
fn tensors(m: &Model) -> BTreeMap<String, Vec<f32>> {
    let flat = |t: &Tensor| {
        t.to_dtype(sparseswaps_model::DType::F32)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    let mut out = BTreeMap::new();
    out.insert("embed".to_string(), flat(&m.embed_tokens().unwrap()));
    out.insert("norm".to_string(), flat(m.final_norm()));
    out.insert("head".to_string(), flat(&m.lm_head().unwrap()));
    for l in 0..m.num_layers() {
        for (n, t) in block_tensors(m.config(), l, &m.block(l).unwrap()).unwrap() {
            out.insert(n, flat(&t));
        }
    }
    out
}

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(e.path()).unwrap())
        })
        .collect()
}

#[test]
fn small_shards_load_back_as_written() {
    for (arch, bias, tied) in [
        ("LlamaForCausalLM", false, false),
        ("Qwen2ForCausalLM", true, true),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let model = tiny_model(dir.path(), arch, bias, tied);
        let out = dir.path().join("out");
        save_hf_dir_sharded(&model, &out, SaveDtype::Source, false, 20_000).unwrap();
        let got = files(&out);
        let shards: Vec<&String> = got.keys().filter(|n| n.ends_with(".safetensors")).collect();
        assert!(shards.len() > 2, "{arch}: {:?}", got.keys());
        let n = shards.len();
        for (i, s) in shards.iter().enumerate() {
            assert_eq!(**s, format!("model-{:05}-of-{n:05}.safetensors", i + 1));
        }
        let index: serde_json::Value =
            serde_json::from_slice(&got["model.safetensors.index.json"]).unwrap();
        let map = index["weight_map"].as_object().unwrap();
        assert_eq!(
            map.len(),
            3 + 9 * model.num_layers() + usize::from(bias) * 3 * model.num_layers()
                - usize::from(tied)
        );
        let mut all = tensors(&model);
        if tied {
            all.remove("head");
        }
        let values: usize = all.values().map(Vec::len).sum();
        assert_eq!(index["metadata"]["total_size"], 4 * values as u64);
        assert!(got.contains_key("config.json") && got.contains_key("tokenizer.json"));
        let back = load(&out).unwrap();
        assert_eq!(tensors(&back), tensors(&model), "{arch}");

        // The default shard size keeps the tiny model in one file, without index, with
        // the same tensors.
        let one = dir.path().join("one");
        save_hf_dir(&model, &one, SaveDtype::Source, false).unwrap();
        let names: Vec<String> = files(&one)
            .into_keys()
            .filter(|n| n.contains("safetensors"))
            .collect();
        assert_eq!(names, ["model.safetensors"]);
        assert_eq!(tensors(&load(&one).unwrap()), tensors(&model));
    }
}

#[test]
fn bf16_in_bf16_out() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path(), "LlamaForCausalLM", false, false);
    let b = dir.path().join("bf16");
    save_hf_dir(&model, &b, SaveDtype::BF16, false).unwrap();
    let m16 = load(&b).unwrap();
    let out = dir.path().join("out");
    save_hf_dir_sharded(&m16, &out, SaveDtype::Source, false, 30_000).unwrap();
    for (name, bytes) in files(&out) {
        if name.ends_with(".safetensors") {
            let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
            for (t, v) in st.tensors() {
                assert_eq!(v.dtype(), safetensors::Dtype::BF16, "{name}: {t}");
            }
        }
    }
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["torch_dtype"], "bfloat16");
    assert_eq!(tensors(&load(&out).unwrap()), tensors(&m16));
}

/// Writes `model` with a [`ModelWriter`] into `dir`, stopping (dropping the writer)
/// after the embedding and `stop` blocks when given, then resuming.
fn write_incremental(model: &Model, dir: &Path, stop: Option<usize>) {
    std::fs::create_dir_all(dir).unwrap();
    let head = (!model.config().tie_word_embeddings).then(|| model.lm_head().unwrap());
    let mut w = ModelWriter::begin(model, dir, SaveDtype::F16, 15_000).unwrap();
    w.write_embedding(&model.embed_tokens().unwrap()).unwrap();
    let mut from = 0;
    if let Some(k) = stop {
        for l in 0..k {
            w.write_block(l, &model.block(l).unwrap()).unwrap();
        }
        w.sync().unwrap();
        // Written after the checkpoint: the resumed writer writes it again.
        if k < model.num_layers() {
            w.write_block(k, &model.block(k).unwrap()).unwrap();
        }
        drop(w);
        w = ModelWriter::resume(model, dir, SaveDtype::F16, 15_000, k).unwrap();
        assert_eq!(w.next_block(), (k < model.num_layers()).then_some(k));
        from = k;
    }
    for l in from..model.num_layers() {
        w.write_block(l, &model.block(l).unwrap()).unwrap();
    }
    if from > 0 {
        // What a resumed run reads back for its finished blocks: the f16 weights.
        let q = w
            .read_back("model.layers.0.self_attn.q_proj.weight")
            .unwrap();
        let want = model.block(0).unwrap().linear[0]
            .to_dtype(sparseswaps_model::DType::F16)
            .unwrap()
            .to_dtype(sparseswaps_model::DType::F32)
            .unwrap();
        assert_eq!(
            q.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            want.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
    }
    w.write_head(model.final_norm(), head.as_ref()).unwrap();
    w.finish(model).unwrap();
}

#[test]
fn a_stopped_writer_resumes_to_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path(), "LlamaForCausalLM", false, false);
    let whole = dir.path().join("whole");
    write_incremental(&model, &whole, None);
    let want = files(&whole);
    assert!(want.len() > 4, "{:?}", want.keys());
    for k in 0..=model.num_layers() {
        let d = dir.path().join(format!("stopped-{k}"));
        write_incremental(&model, &d, Some(k));
        assert_eq!(files(&d), want, "stopped after {k} blocks");
    }
    // The incremental writer and save_hf_dir write the same directory.
    let saved = dir.path().join("saved");
    save_hf_dir_sharded(&model, &saved, SaveDtype::F16, false, 15_000).unwrap();
    assert_eq!(files(&saved), want);
}

#[test]
fn a_truncated_shard_is_one_line_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path(), "LlamaForCausalLM", false, false);
    let out = dir.path().join("out");
    save_hf_dir_sharded(&model, &out, SaveDtype::Source, false, 20_000).unwrap();
    let name = files(&out)
        .into_keys()
        .find(|n| n.starts_with("model-00002-of-"))
        .unwrap();
    let shard = out.join(&name);
    let bytes = std::fs::read(&shard).unwrap();
    std::fs::write(&shard, &bytes[..bytes.len() - 100]).unwrap();
    let e = load(&out).unwrap_err().to_string();
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(e.contains(&name), "{e}");
    // Cut inside the header.
    std::fs::write(&shard, &bytes[..20]).unwrap();
    let e = load(&out).unwrap_err().to_string();
    assert!(e.lines().count() == 1 && e.contains(&name), "{e}");
}
