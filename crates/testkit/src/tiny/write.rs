//! Writing the tiny model to disk: an HF directory (safetensors shards, index, config,
//! tokenizer) and a GGUF file with llama.cpp's names.

use super::spec::{
    config_json, tokenizer, vocab_tokens, Entry, Weights, EPS, HEADS, HEAD_DIM, HIDDEN, INTER,
    KV_HEADS, LAYERS, THETA,
};
use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use serde_json::json;
use std::path::Path;

fn st_bytes(tensors: &[(&String, &Entry)]) -> Vec<u8> {
    let owned: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, (s, v))| {
            (
                (*n).clone(),
                s.clone(),
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = owned
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .unwrap(),
            )
        })
        .collect();
    safetensors::serialize(
        views,
        Some(std::collections::HashMap::from([(
            "format".into(),
            "pt".into(),
        )])),
    )
    .unwrap()
}

/// Writes an HF directory: `shards` safetensors files and an index when `shards > 1`.
pub fn write_hf(dir: &Path, arch: &str, w: &Weights, tied: bool, shards: usize) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.json"), config_json(arch, tied).to_string()).unwrap();
    tokenizer().save(dir.join("tokenizer.json"), false).unwrap();
    let all: Vec<(&String, &Entry)> = w.iter().collect();
    if shards <= 1 {
        std::fs::write(dir.join("model.safetensors"), st_bytes(&all)).unwrap();
        return;
    }
    let per = all.len().div_ceil(shards);
    let mut map = serde_json::Map::new();
    for (i, chunk) in all.chunks(per).enumerate() {
        let name = format!("model-{:05}-of-{:05}.safetensors", i + 1, shards);
        std::fs::write(dir.join(&name), st_bytes(chunk)).unwrap();
        for (n, _) in chunk {
            map.insert((*n).clone(), json!(name));
        }
    }
    std::fs::write(
        dir.join("model.safetensors.index.json"),
        json!({"metadata": {"total_size": 0}, "weight_map": map}).to_string(),
    )
    .unwrap();
}

/// llama.cpp's permutation of Q/K rows for its interleaved rope.
fn permute(vals: &[f32], n_head: usize, cols: usize) -> Vec<f32> {
    let rows = vals.len() / cols;
    let hd = rows / n_head;
    let mut out = vec![0f32; vals.len()];
    for h in 0..n_head {
        for j in 0..2 {
            for i in 0..hd / 2 {
                let src = h * hd + j * (hd / 2) + i;
                let dst = h * hd + i * 2 + j;
                out[dst * cols..(dst + 1) * cols]
                    .copy_from_slice(&vals[src * cols..(src + 1) * cols]);
            }
        }
    }
    out
}

/// Writes the same (Llama, no bias) weights as a GGUF file with llama.cpp's names and
/// Q/K permutation; tensors stored as f32.
pub fn write_gguf(path: &Path, w: &Weights) {
    use gguf_file::Value;
    let mut md: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String("llama".into())),
        ("llama.block_count".into(), Value::U32(LAYERS as u32)),
        ("llama.context_length".into(), Value::U32(128)),
        ("llama.embedding_length".into(), Value::U32(HIDDEN as u32)),
        ("llama.feed_forward_length".into(), Value::U32(INTER as u32)),
        (
            "llama.attention.head_count".into(),
            Value::U32(HEADS as u32),
        ),
        (
            "llama.attention.head_count_kv".into(),
            Value::U32(KV_HEADS as u32),
        ),
        ("llama.rope.freq_base".into(), Value::F32(THETA as f32)),
        (
            "llama.attention.layer_norm_rms_epsilon".into(),
            Value::F32(EPS as f32),
        ),
        (
            "llama.rope.dimension_count".into(),
            Value::U32(HEAD_DIM as u32),
        ),
        ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
        ("tokenizer.ggml.pre".into(), Value::String("gpt2".into())),
        ("tokenizer.ggml.bos_token_id".into(), Value::U32(0)),
        ("tokenizer.ggml.eos_token_id".into(), Value::U32(1)),
    ];
    md.push((
        "tokenizer.ggml.tokens".into(),
        Value::Array(vocab_tokens().into_iter().map(Value::String).collect()),
    ));
    md.push((
        "tokenizer.ggml.merges".into(),
        Value::Array(vec![Value::String("Ġ t".into())]),
    ));
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    let q = |shape: &Vec<usize>, vals: Vec<f32>| {
        let t = Tensor::from_vec(vals, shape.as_slice(), &Device::Cpu).unwrap();
        QTensor::quantize(&t, GgmlDType::F32).unwrap()
    };
    for (name, (shape, vals)) in w {
        let g = if name == "model.embed_tokens.weight" {
            "token_embd.weight".to_string()
        } else if name == "model.norm.weight" {
            "output_norm.weight".to_string()
        } else if name == "lm_head.weight" {
            "output.weight".to_string()
        } else {
            let rest = name.strip_prefix("model.layers.").unwrap();
            let (l, m) = rest.split_once('.').unwrap();
            let g = match m {
                "input_layernorm.weight" => "attn_norm.weight",
                "post_attention_layernorm.weight" => "ffn_norm.weight",
                "self_attn.q_proj.weight" => "attn_q.weight",
                "self_attn.k_proj.weight" => "attn_k.weight",
                "self_attn.v_proj.weight" => "attn_v.weight",
                "self_attn.o_proj.weight" => "attn_output.weight",
                "mlp.gate_proj.weight" => "ffn_gate.weight",
                "mlp.up_proj.weight" => "ffn_up.weight",
                "mlp.down_proj.weight" => "ffn_down.weight",
                other => panic!("no GGUF name for {other}"),
            };
            format!("blk.{l}.{g}")
        };
        let vals = if g.ends_with("attn_q.weight") {
            permute(vals, HEADS, shape[1])
        } else if g.ends_with("attn_k.weight") {
            permute(vals, KV_HEADS, shape[1])
        } else {
            vals.clone()
        };
        tensors.push((g, q(shape, vals)));
    }
    let mut f = std::fs::File::create(path).unwrap();
    let md_refs: Vec<(&str, &Value)> = md.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let t_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    gguf_file::write(&mut f, &md_refs, &t_refs).unwrap();
}
