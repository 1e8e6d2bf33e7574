//! A tiny random Llama-family model written by the tests themselves: an HF directory
//! (several shards and an index) and the same weights as a GGUF file.

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::Tokenizer;

pub const HIDDEN: usize = 32;
pub const INTER: usize = 48;
pub const HEADS: usize = 4;
pub const KV_HEADS: usize = 2;
pub const HEAD_DIM: usize = 8;
pub const LAYERS: usize = 2;
pub const EPS: f64 = 1e-6;
pub const THETA: f64 = 10000.0;

/// Deterministic pseudo-random values in [-scale, scale).
pub struct Lcg(u64);
impl Lcg {
    pub fn new(seed: u64) -> Lcg {
        Lcg(seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407))
    }
    pub fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    pub fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.next() * scale).collect()
    }
}

/// The byte-level alphabet plus one merged token "Ġt".
pub fn vocab_tokens() -> Vec<String> {
    let mut chars: Vec<char> = ByteLevel::alphabet().into_iter().collect();
    chars.sort();
    let mut v: Vec<String> = chars.into_iter().map(String::from).collect();
    v.push("Ġt".into());
    v
}

pub fn tokenizer() -> Tokenizer {
    let toks = vocab_tokens();
    let vocab: Vocab = toks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect();
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, vec![("Ġ".to_string(), "t".to_string())])
        .build()
        .unwrap();
    let mut tok = Tokenizer::new(bpe);
    tok.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    tok.with_decoder(Some(tokenizers::decoders::byte_level::ByteLevel::default()));
    tok
}

/// Weights by HF name: (shape, values).
pub type Weights = BTreeMap<String, Entry>;

/// Shape and values of one tensor.
pub type Entry = (Vec<usize>, Vec<f32>);

/// Random weights; q/k/v biases when `bias`; a separate lm_head when `!tied`.
pub fn weights(seed: u64, bias: bool, tied: bool) -> Weights {
    let v = vocab_tokens().len();
    let mut r = Lcg::new(seed);
    let mut w = Weights::new();
    let put =
        |w: &mut Weights, r: &mut Lcg, name: String, shape: Vec<usize>, scale: f32, offset: f32| {
            let n = shape.iter().product();
            let vals = r.vec(n, scale).into_iter().map(|x| x + offset).collect();
            w.insert(name, (shape, vals));
        };
    put(
        &mut w,
        &mut r,
        "model.embed_tokens.weight".into(),
        vec![v, HIDDEN],
        1.0,
        0.0,
    );
    put(
        &mut w,
        &mut r,
        "model.norm.weight".into(),
        vec![HIDDEN],
        0.2,
        1.0,
    );
    if !tied {
        put(
            &mut w,
            &mut r,
            "lm_head.weight".into(),
            vec![v, HIDDEN],
            0.3,
            0.0,
        );
    }
    let s = 1.0 / (HIDDEN as f32).sqrt();
    for l in 0..LAYERS {
        let p = format!("model.layers.{l}");
        put(
            &mut w,
            &mut r,
            format!("{p}.input_layernorm.weight"),
            vec![HIDDEN],
            0.2,
            1.0,
        );
        put(
            &mut w,
            &mut r,
            format!("{p}.post_attention_layernorm.weight"),
            vec![HIDDEN],
            0.2,
            1.0,
        );
        put(
            &mut w,
            &mut r,
            format!("{p}.self_attn.q_proj.weight"),
            vec![HEADS * HEAD_DIM, HIDDEN],
            3.0 * s,
            0.0,
        );
        put(
            &mut w,
            &mut r,
            format!("{p}.self_attn.k_proj.weight"),
            vec![KV_HEADS * HEAD_DIM, HIDDEN],
            3.0 * s,
            0.0,
        );
        put(
            &mut w,
            &mut r,
            format!("{p}.self_attn.v_proj.weight"),
            vec![KV_HEADS * HEAD_DIM, HIDDEN],
            s,
            0.0,
        );
        put(
            &mut w,
            &mut r,
            format!("{p}.self_attn.o_proj.weight"),
            vec![HIDDEN, HEADS * HEAD_DIM],
            s,
            0.0,
        );
        put(
            &mut w,
            &mut r,
            format!("{p}.mlp.gate_proj.weight"),
            vec![INTER, HIDDEN],
            s,
            0.0,
        );
        put(
            &mut w,
            &mut r,
            format!("{p}.mlp.up_proj.weight"),
            vec![INTER, HIDDEN],
            s,
            0.0,
        );
        put(
            &mut w,
            &mut r,
            format!("{p}.mlp.down_proj.weight"),
            vec![HIDDEN, INTER],
            s,
            0.0,
        );
        if bias {
            put(
                &mut w,
                &mut r,
                format!("{p}.self_attn.q_proj.bias"),
                vec![HEADS * HEAD_DIM],
                0.5,
                0.0,
            );
            put(
                &mut w,
                &mut r,
                format!("{p}.self_attn.k_proj.bias"),
                vec![KV_HEADS * HEAD_DIM],
                0.5,
                0.0,
            );
            put(
                &mut w,
                &mut r,
                format!("{p}.self_attn.v_proj.bias"),
                vec![KV_HEADS * HEAD_DIM],
                0.5,
                0.0,
            );
        }
    }
    w
}

pub fn config_json(arch: &str, tied: bool) -> serde_json::Value {
    json!({
        "architectures": [arch],
        "model_type": if arch.starts_with("Qwen2") { "qwen2" } else { "llama" },
        "hidden_size": HIDDEN,
        "intermediate_size": INTER,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "num_hidden_layers": LAYERS,
        "rms_norm_eps": EPS,
        "rope_theta": THETA,
        "vocab_size": vocab_tokens().len(),
        "max_position_embeddings": 128,
        "tie_word_embeddings": tied,
        "bos_token_id": 0,
        "eos_token_id": 1,
        "torch_dtype": "float32",
    })
}

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

/// A plain-Rust f64 forward of the tiny model (HF semantics): logits `[seq, vocab]`.
pub fn reference_logits(w: &Weights, ids: &[u32], tied: bool) -> Vec<Vec<f64>> {
    let g = |n: &str| -> &Vec<f32> { &w.get(n).unwrap_or_else(|| panic!("{n}")).1 };
    let s = ids.len();
    let emb = g("model.embed_tokens.weight");
    let mut h: Vec<Vec<f64>> = ids
        .iter()
        .map(|&i| {
            emb[i as usize * HIDDEN..(i as usize + 1) * HIDDEN]
                .iter()
                .map(|&x| x as f64)
                .collect()
        })
        .collect();
    let norm = |x: &[f64], wt: &[f32]| -> Vec<f64> {
        let ms = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
        let r = 1.0 / (ms + EPS).sqrt();
        x.iter().zip(wt).map(|(v, &g)| v * r * g as f64).collect()
    };
    let lin = |x: &[f64], wt: &[f32], b: Option<&Vec<f32>>, out: usize| -> Vec<f64> {
        let inp = x.len();
        (0..out)
            .map(|o| {
                let d: f64 = (0..inp).map(|i| wt[o * inp + i] as f64 * x[i]).sum();
                d + b.map(|b| b[o] as f64).unwrap_or(0.0)
            })
            .collect()
    };
    let rope = |v: &mut [f64], pos: usize| {
        for hd in v.chunks_mut(HEAD_DIM) {
            let half = HEAD_DIM / 2;
            for i in 0..half {
                let f = 1.0 / THETA.powf((2 * i) as f64 / HEAD_DIM as f64);
                let (c, sn) = ((pos as f64 * f).cos(), (pos as f64 * f).sin());
                let (a, b) = (hd[i], hd[i + half]);
                hd[i] = a * c - b * sn;
                hd[i + half] = b * c + a * sn;
            }
        }
    };
    for l in 0..LAYERS {
        let p = format!("model.layers.{l}");
        let b = |m: &str| w.get(&format!("{p}.{m}.bias")).map(|(_, v)| v);
        let xn: Vec<Vec<f64>> = h
            .iter()
            .map(|x| norm(x, g(&format!("{p}.input_layernorm.weight"))))
            .collect();
        // One attention input projection (`q_proj`, `k_proj`, `v_proj`) of every position.
        let proj = |m: &str, out: usize| -> Vec<Vec<f64>> {
            let wt = g(&format!("{p}.self_attn.{m}.weight"));
            let bias = b(&format!("self_attn.{m}"));
            xn.iter().map(|x| lin(x, wt, bias, out)).collect()
        };
        let mut q = proj("q_proj", HEADS * HEAD_DIM);
        let mut k = proj("k_proj", KV_HEADS * HEAD_DIM);
        let v = proj("v_proj", KV_HEADS * HEAD_DIM);
        for t in 0..s {
            rope(&mut q[t], t);
            rope(&mut k[t], t);
        }
        let rep = HEADS / KV_HEADS;
        let mut attn = vec![vec![0f64; HEADS * HEAD_DIM]; s];
        for t in 0..s {
            for hh in 0..HEADS {
                let kv = hh / rep;
                let qv = &q[t][hh * HEAD_DIM..(hh + 1) * HEAD_DIM];
                let sc: Vec<f64> = (0..=t)
                    .map(|u| {
                        qv.iter()
                            .zip(&k[u][kv * HEAD_DIM..(kv + 1) * HEAD_DIM])
                            .map(|(a, b)| a * b)
                            .sum::<f64>()
                            / (HEAD_DIM as f64).sqrt()
                    })
                    .collect();
                let m = sc.iter().cloned().fold(f64::MIN, f64::max);
                let e: Vec<f64> = sc.iter().map(|x| (x - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for (u, eu) in e.iter().enumerate() {
                    for d in 0..HEAD_DIM {
                        attn[t][hh * HEAD_DIM + d] += eu / z * v[u][kv * HEAD_DIM + d];
                    }
                }
            }
        }
        for t in 0..s {
            let o = lin(
                &attn[t],
                g(&format!("{p}.self_attn.o_proj.weight")),
                None,
                HIDDEN,
            );
            for i in 0..HIDDEN {
                h[t][i] += o[i];
            }
            let xn2 = norm(&h[t], g(&format!("{p}.post_attention_layernorm.weight")));
            let gt = lin(&xn2, g(&format!("{p}.mlp.gate_proj.weight")), None, INTER);
            let up = lin(&xn2, g(&format!("{p}.mlp.up_proj.weight")), None, INTER);
            let act: Vec<f64> = gt
                .iter()
                .zip(&up)
                .map(|(g, u)| g / (1.0 + (-g).exp()) * u)
                .collect();
            let d = lin(&act, g(&format!("{p}.mlp.down_proj.weight")), None, HIDDEN);
            for i in 0..HIDDEN {
                h[t][i] += d[i];
            }
        }
    }
    let head = if tied {
        g("model.embed_tokens.weight")
    } else {
        g("lm_head.weight")
    };
    let vsz = vocab_tokens().len();
    h.iter()
        .map(|x| lin(&norm(x, g("model.norm.weight")), head, None, vsz))
        .collect()
}
