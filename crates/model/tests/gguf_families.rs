//! GGUF files of the families beyond Llama and Qwen2, made here from the parity fixtures
//! with llama.cpp's tensor names and metadata (f32 tensors): Qwen3 must match
//! transformers as its Hugging Face directory does; an architecture the crate does not
//! read from GGUF is refused, naming it and listing those it reads.

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use safetensors::SafeTensors;
use sparseswaps_model::{load, save_hf_dir, Device, SaveDtype, Tensor};
use std::path::{Path, PathBuf};

fn fixture(family: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/parity")
        .join(family)
}

/// llama.cpp's name of an HF tensor (no Q/K permutation: Qwen rotates halves, as HF).
fn gguf_name(hf: &str) -> String {
    match hf {
        "model.embed_tokens.weight" => return "token_embd.weight".into(),
        "model.norm.weight" => return "output_norm.weight".into(),
        "lm_head.weight" => return "output.weight".into(),
        _ => {}
    }
    let rest = hf.strip_prefix("model.layers.").unwrap();
    let (l, m) = rest.split_once('.').unwrap();
    let g = match m {
        "input_layernorm.weight" => "attn_norm.weight",
        "post_attention_layernorm.weight" => "ffn_norm.weight",
        "self_attn.q_proj.weight" => "attn_q.weight",
        "self_attn.k_proj.weight" => "attn_k.weight",
        "self_attn.v_proj.weight" => "attn_v.weight",
        "self_attn.o_proj.weight" => "attn_output.weight",
        "self_attn.q_norm.weight" => "attn_q_norm.weight",
        "self_attn.k_norm.weight" => "attn_k_norm.weight",
        "mlp.gate_proj.weight" => "ffn_gate.weight",
        "mlp.up_proj.weight" => "ffn_up.weight",
        "mlp.down_proj.weight" => "ffn_down.weight",
        other => panic!("no GGUF name for {other}"),
    };
    format!("blk.{l}.{g}")
}

/// The fixture of `family` as a GGUF file of architecture `arch` at `out`.
fn write_gguf(family: &str, arch: &str, out: &Path) {
    use gguf_file::Value;
    let dir = fixture(family).join("model");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let tok: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("tokenizer.json")).unwrap())
            .unwrap();
    let mut vocab: Vec<(u64, String)> = tok["model"]["vocab"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(t, i)| (i.as_u64().unwrap(), t.clone()))
        .collect();
    vocab.sort();
    let u = |k: &str| Value::U32(cfg[k].as_u64().unwrap() as u32);
    let md: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String(arch.into())),
        (format!("{arch}.block_count"), u("num_hidden_layers")),
        (
            format!("{arch}.context_length"),
            u("max_position_embeddings"),
        ),
        (format!("{arch}.embedding_length"), u("hidden_size")),
        (
            format!("{arch}.feed_forward_length"),
            u("intermediate_size"),
        ),
        (
            format!("{arch}.attention.head_count"),
            u("num_attention_heads"),
        ),
        (
            format!("{arch}.attention.head_count_kv"),
            u("num_key_value_heads"),
        ),
        (format!("{arch}.attention.key_length"), u("head_dim")),
        (format!("{arch}.attention.value_length"), u("head_dim")),
        (format!("{arch}.rope.dimension_count"), u("head_dim")),
        (
            format!("{arch}.rope.freq_base"),
            Value::F32(cfg["rope_parameters"]["rope_theta"].as_f64().unwrap() as f32),
        ),
        (
            format!("{arch}.attention.layer_norm_rms_epsilon"),
            Value::F32(cfg["rms_norm_eps"].as_f64().unwrap() as f32),
        ),
        ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
        ("tokenizer.ggml.pre".into(), Value::String("qwen2".into())),
        ("tokenizer.ggml.bos_token_id".into(), u("bos_token_id")),
        ("tokenizer.ggml.eos_token_id".into(), u("eos_token_id")),
        (
            "tokenizer.ggml.tokens".into(),
            Value::Array(vocab.into_iter().map(|(_, t)| Value::String(t)).collect()),
        ),
        ("tokenizer.ggml.merges".into(), Value::Array(vec![])),
    ];
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let tensors: Vec<(String, QTensor)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| {
            let vals: Vec<f32> = v
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            let t = Tensor::from_vec(vals, v.shape(), &Device::Cpu).unwrap();
            (
                gguf_name(&n),
                QTensor::quantize(&t, GgmlDType::F32).unwrap(),
            )
        })
        .collect();
    let md_refs: Vec<(&str, &Value)> = md.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let t_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut f = std::fs::File::create(out).unwrap();
    gguf_file::write(&mut f, &md_refs, &t_refs).unwrap();
}

/// Transformers' ids and logits `[seq][vocab]` for a fixture.
fn expected(family: &str) -> (String, Vec<u32>, Vec<Vec<f32>>) {
    let bytes = std::fs::read(fixture(family).join("expected.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let ids: Vec<u32> = st
        .tensor("input_ids")
        .unwrap()
        .data()
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as u32)
        .collect();
    let lv = st.tensor("logits").unwrap();
    let vocab = lv.shape()[1];
    let flat: Vec<f32> = lv
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture(family).join("expected.json")).unwrap(),
    )
    .unwrap();
    let text = meta["text"].as_str().unwrap().to_string();
    (
        text,
        ids,
        flat.chunks_exact(vocab).map(<[f32]>::to_vec).collect(),
    )
}

#[test]
fn qwen3_gguf_matches_transformers() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("qwen3.gguf");
    write_gguf("qwen3", "qwen3", &path);
    let model = load(&path).unwrap();
    assert_eq!(model.config().architecture.hf_class(), "Qwen3ForCausalLM");
    assert!(model.config().block.qk_norm);
    let (text, ids, theirs) = expected("qwen3");
    assert_eq!(model.encode(&text).unwrap(), ids, "tokens");
    let ours: Vec<Vec<f32>> = model
        .forward(&ids, 1)
        .unwrap()
        .squeeze(0)
        .unwrap()
        .to_vec2()
        .unwrap();
    let scale = theirs
        .iter()
        .flatten()
        .fold(0f64, |m, &x| m.max(f64::from(x).abs()));
    let worst = ours
        .iter()
        .flatten()
        .zip(theirs.iter().flatten())
        .fold(0f64, |m, (a, b)| {
            m.max((f64::from(*a) - f64::from(*b)).abs())
        });
    eprintln!(
        "qwen3 GGUF: max relative logit difference {:.2e}",
        worst / scale
    );
    assert!(
        worst / scale <= 1e-4,
        "relative difference {}",
        worst / scale
    );

    // Converted to a Hugging Face directory (`convert`): Qwen3's names and keys, the
    // same logits.
    let out = tmp.path().join("hf");
    save_hf_dir(&model, &out, SaveDtype::F32, false).unwrap();
    let back = load(&out).unwrap();
    assert_eq!(back.config(), model.config());
    let again: Vec<Vec<f32>> = back
        .forward(&ids, 1)
        .unwrap()
        .squeeze(0)
        .unwrap()
        .to_vec2()
        .unwrap();
    assert_eq!(again, ours);
}

#[test]
fn a_gguf_architecture_not_read_is_named_with_those_read() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("gemma2.gguf");
    write_gguf("qwen3", "gemma2", &path);
    let e = load(&path).err().unwrap().to_string();
    assert_eq!(
        e,
        format!(
            "{}: unsupported GGUF architecture 'gemma2' (supported: llama, qwen2, qwen3)",
            path.display()
        )
    );
}
