//! GGUF files of the families beyond Llama and Qwen2, made here from the parity fixtures
//! as llama.cpp's `convert_hf_to_gguf.py` writes them (f32 tensors): its tensor names,
//! its metadata keys, Gemma's norm weights stored as `1 + w`, Phi-3's `attn_qkv` and
//! `ffn_up` (gate then up) fused. Qwen3, Gemma 2, Gemma 3 and Phi-3 must match
//! transformers as their Hugging Face directories do, and convert to a directory of
//! their family that reloads with the same logits; an architecture the crate does not
//! read from GGUF is refused, naming it and listing those it reads.
//!
//! The tokenizer is the fixture's own vocabulary: as a SentencePiece (`llama`) one in the
//! Gemma files, as llama.cpp writes Gemma's, and as byte-level BPE (`gpt2`) in the others.
//! Two fixture settings llama.cpp's converter does not record are written with
//! llama.cpp's general keys (see `gguf/family.rs`): Gemma's `query_pre_attn_scalar` (24,
//! where llama.cpp implies `head_dim`, 16) as `attention.scale`, and Gemma 3's two-block
//! `layer_types` (llama.cpp implies five sliding blocks in six) as
//! `attention.sliding_window_pattern`.

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use safetensors::SafeTensors;
use sparseswaps_model::{load, perplexity, save_hf_dir, Device, Model, SaveDtype, Tensor};
use std::path::{Path, PathBuf};

fn fixture(family: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/parity")
        .join(family)
}

/// llama.cpp's name of an HF tensor (no Q/K permutation: these families rotate halves,
/// as HF), from `gguf-py/gguf/tensor_mapping.py`; Gemma's four norms have names of their
/// own.
fn gguf_name(hf: &str, gemma: bool) -> String {
    match hf {
        "model.embed_tokens.weight" => return "token_embd.weight".into(),
        "model.norm.weight" => return "output_norm.weight".into(),
        "lm_head.weight" => return "output.weight".into(),
        _ => {}
    }
    let rest = hf.strip_prefix("model.layers.").unwrap();
    let (l, m) = rest.split_once('.').unwrap();
    let g = match (m, gemma) {
        ("input_layernorm.weight", _) => "attn_norm.weight",
        ("post_attention_layernorm.weight", false) => "ffn_norm.weight",
        ("post_attention_layernorm.weight", true) => "post_attention_norm.weight",
        ("pre_feedforward_layernorm.weight", true) => "ffn_norm.weight",
        ("post_feedforward_layernorm.weight", true) => "post_ffw_norm.weight",
        ("self_attn.q_proj.weight", _) => "attn_q.weight",
        ("self_attn.k_proj.weight", _) => "attn_k.weight",
        ("self_attn.v_proj.weight", _) => "attn_v.weight",
        ("self_attn.qkv_proj.weight", _) => "attn_qkv.weight",
        ("self_attn.o_proj.weight", _) => "attn_output.weight",
        ("self_attn.q_norm.weight", _) => "attn_q_norm.weight",
        ("self_attn.k_norm.weight", _) => "attn_k_norm.weight",
        ("mlp.gate_proj.weight", _) => "ffn_gate.weight",
        ("mlp.up_proj.weight", _) => "ffn_up.weight",
        ("mlp.gate_up_proj.weight", _) => "ffn_up.weight",
        ("mlp.down_proj.weight", _) => "ffn_down.weight",
        (other, _) => panic!("no GGUF name for {other}"),
    };
    format!("blk.{l}.{g}")
}

/// The metadata `convert_hf_to_gguf.py` writes for `arch` beyond the common keys, from
/// the fixture's `config.json` `cfg`, and the general keys for what it does not record.
fn family_metadata(arch: &str, cfg: &serde_json::Value) -> Vec<(String, gguf_file::Value)> {
    use gguf_file::Value;
    let f = |k: &str| Value::F32(cfg[k].as_f64().unwrap() as f32);
    let u = |k: &str| Value::U32(cfg[k].as_u64().unwrap() as u32);
    let key = |k: &str| format!("{arch}.{k}");
    let scale = || {
        let s = cfg["query_pre_attn_scalar"].as_f64().unwrap();
        Value::F32((1.0 / s.sqrt()) as f32)
    };
    match arch {
        "gemma2" => vec![
            (key("attn_logit_softcapping"), f("attn_logit_softcapping")),
            (key("final_logit_softcapping"), f("final_logit_softcapping")),
            (key("attention.sliding_window"), u("sliding_window")),
            (key("attention.scale"), scale()),
        ],
        "gemma3" => {
            let types = cfg["layer_types"].as_array().unwrap();
            assert!(cfg["final_logit_softcapping"].is_null());
            vec![
                (
                    key("rope.freq_base"),
                    Value::F32(
                        cfg["rope_parameters"]["full_attention"]["rope_theta"]
                            .as_f64()
                            .unwrap() as f32,
                    ),
                ),
                (key("attention.sliding_window"), u("sliding_window")),
                (key("attention.scale"), scale()),
                (
                    key("attention.sliding_window_pattern"),
                    Value::Array(
                        types
                            .iter()
                            .map(|t| Value::Bool(t == "sliding_attention"))
                            .collect(),
                    ),
                ),
            ]
        }
        "phi3" => vec![
            (
                key("rope.freq_base"),
                Value::F32(cfg["rope_parameters"]["rope_theta"].as_f64().unwrap() as f32),
            ),
            (
                key("rope.scaling.original_context_length"),
                u("original_max_position_embeddings"),
            ),
            (key("attention.sliding_window"), u("sliding_window")),
        ],
        _ => vec![(
            key("rope.freq_base"),
            Value::F32(cfg["rope_parameters"]["rope_theta"].as_f64().unwrap() as f32),
        )],
    }
}

/// The tokenizer keys for the fixture's vocabulary `vocab` (byte-level pieces, one per
/// character, no merges). Gemma files carry SentencePiece vocabularies
/// (`tokenizer.ggml.model = "llama"`, `add_space_prefix` false, as llama.cpp's Gemma
/// converters write): the same pieces with the space mark `▁` for byte-level's `Ġ`,
/// which tokenize the fixture's text to the same ids. The others carry the byte-level
/// BPE as `gpt2`.
fn tokenizer_metadata(
    sentencepiece: bool,
    vocab: Vec<(u64, String)>,
) -> Vec<(String, gguf_file::Value)> {
    use gguf_file::Value;
    let strings = |v: Vec<String>| Value::Array(v.into_iter().map(Value::String).collect());
    let tokens: Vec<String> = vocab.into_iter().map(|(_, t)| t).collect();
    if !sentencepiece {
        return vec![
            ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
            ("tokenizer.ggml.pre".into(), Value::String("qwen2".into())),
            ("tokenizer.ggml.tokens".into(), strings(tokens)),
            ("tokenizer.ggml.merges".into(), Value::Array(vec![])),
        ];
    }
    let n = tokens.len();
    let pieces = tokens
        .into_iter()
        .map(|t| t.replace('\u{120}', "\u{2581}"))
        .collect();
    vec![
        ("tokenizer.ggml.model".into(), Value::String("llama".into())),
        ("tokenizer.ggml.pre".into(), Value::String("default".into())),
        ("tokenizer.ggml.tokens".into(), strings(pieces)),
        (
            "tokenizer.ggml.scores".into(),
            Value::Array((0..n).map(|i| Value::F32(-(i as f32))).collect()),
        ),
        (
            "tokenizer.ggml.token_type".into(),
            Value::Array(vec![Value::I32(1); n]),
        ),
        ("tokenizer.ggml.add_space_prefix".into(), Value::Bool(false)),
    ]
}

/// The fixture of `family` as a GGUF file of architecture `arch` at `out`.
fn write_gguf(family: &str, arch: &str, out: &Path) {
    write_gguf_with(family, arch, out, &|_| true, &|_, t| Some(t));
}

/// What [`write_gguf_with`] does to a tensor (by GGUF name): keep, change or drop it.
type TensorEdit<'a> = &'a dyn Fn(&str, Tensor) -> Option<Tensor>;

/// [`write_gguf`] with only the metadata keys `keep` accepts and each tensor passed
/// through `edit`.
fn write_gguf_with(
    family: &str,
    arch: &str,
    out: &Path,
    keep: &dyn Fn(&str) -> bool,
    edit: TensorEdit<'_>,
) {
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
    let mut md: Vec<(String, Value)> = vec![
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
            format!("{arch}.attention.layer_norm_rms_epsilon"),
            Value::F32(cfg["rms_norm_eps"].as_f64().unwrap() as f32),
        ),
        ("tokenizer.ggml.bos_token_id".into(), u("bos_token_id")),
        ("tokenizer.ggml.eos_token_id".into(), u("eos_token_id")),
    ];
    let gemma = arch.starts_with("gemma");
    md.extend(tokenizer_metadata(gemma, vocab));
    md.extend(family_metadata(arch, &cfg));
    md.retain(|(k, _)| keep(k));
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let tensors: Vec<(String, QTensor)> = st
        .tensors()
        .into_iter()
        .filter_map(|(n, v)| {
            // llama.cpp's Gemma converters store every norm weight as `1 + w`.
            let shift = if gemma && n.ends_with("norm.weight") {
                1.0
            } else {
                0.0
            };
            let vals: Vec<f32> = v
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()) + shift)
                .collect();
            let t = Tensor::from_vec(vals, v.shape(), &Device::Cpu).unwrap();
            let g = gguf_name(&n, gemma);
            let t = edit(&g, t)?;
            Some((g, QTensor::quantize(&t, GgmlDType::F32).unwrap()))
        })
        .collect();
    let md_refs: Vec<(&str, &Value)> = md.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let t_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut f = std::fs::File::create(out).unwrap();
    gguf_file::write(&mut f, &md_refs, &t_refs).unwrap();
}

/// Transformers' text, ids, logits `[seq][vocab]` and perplexity for a fixture.
fn expected(family: &str) -> (String, Vec<u32>, Vec<Vec<f32>>, f64) {
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
        meta["ppl"].as_f64().unwrap(),
    )
}

/// The fixture of `family` written as a GGUF of architecture `arch` loads as `hf_class`,
/// tokenizes the text as transformers did, and its logits match transformers' (max
/// relative difference 1e-4) and its perplexity to 5 significant digits; converted to a
/// Hugging Face directory (`sparseswaps convert`) it reloads with the same config and
/// logits. Returns the loaded model for further checks.
fn assert_gguf_matches_transformers(family: &str, arch: &str, hf_class: &str) -> Model {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join(format!("{family}.gguf"));
    write_gguf(family, arch, &path);
    let model = load(&path).unwrap();
    assert_eq!(model.config().architecture.hf_class(), hf_class);
    let (text, ids, theirs, ppl) = expected(family);
    assert_eq!(model.encode(&text).unwrap(), ids, "{family}: tokens");
    assert_eq!(model.decode(&ids).unwrap(), text, "{family}: decoded");
    let logits = |m: &Model| -> Vec<Vec<f32>> {
        m.forward(&ids, 1)
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_vec2()
            .unwrap()
    };
    let ours = logits(&model);
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
    let p = perplexity(&model, &ids, ids.len(), 1, &mut |_, _| {}).unwrap();
    let prel = (p.ppl - ppl).abs() / ppl;
    eprintln!(
        "{family} GGUF ({arch}): max relative logit difference {:.2e}; perplexity {:.7} \
         against transformers' {ppl:.7} (relative {prel:.1e})",
        worst / scale,
        p.ppl
    );
    assert!(
        worst / scale <= 1e-4,
        "{family}: relative difference {}",
        worst / scale
    );
    assert!(prel <= 1e-5, "{family}: perplexity {} against {ppl}", p.ppl);

    // Converted to a Hugging Face directory (`convert`): the family's names and keys,
    // the same logits.
    let out = tmp.path().join("hf");
    save_hf_dir(&model, &out, SaveDtype::F32, false).unwrap();
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        cfg["architectures"][0], hf_class,
        "{family}: converted class"
    );
    let back = load(&out).unwrap();
    assert_eq!(back.config(), model.config(), "{family}: converted config");
    assert_eq!(logits(&back), ours, "{family}: converted logits");
    assert_eq!(
        back.encode(&text).unwrap(),
        ids,
        "{family}: converted tokenizer"
    );
    model
}

#[test]
fn qwen3_gguf_matches_transformers() {
    let model = assert_gguf_matches_transformers("qwen3", "qwen3", "Qwen3ForCausalLM");
    assert!(model.config().block.qk_norm);
}

#[test]
fn gemma2_gguf_matches_transformers() {
    let model = assert_gguf_matches_transformers("gemma2", "gemma2", "Gemma2ForCausalLM");
    let c = model.config();
    assert_eq!(c.block.attn_softcap, Some(5.0));
    assert_eq!(c.block.final_softcap, Some(10.0));
    assert_eq!(c.block.query_pre_attn_scalar, Some(24.0));
    let w = c.sliding_window.as_ref().unwrap();
    assert_eq!((w.size, w.layers.clone()), (8, vec![true, false]));
    assert!(c.tie_word_embeddings);
}

#[test]
fn gemma3_gguf_matches_transformers() {
    let model = assert_gguf_matches_transformers("gemma3", "gemma3", "Gemma3ForCausalLM");
    let c = model.config();
    assert!(c.block.qk_norm);
    assert_eq!((c.block.attn_softcap, c.block.final_softcap), (None, None));
    assert_eq!(c.rope_theta, 1_000_000.0);
    assert_eq!(c.block.local_rope.as_ref().unwrap().theta, 10_000.0);
}

#[test]
fn phi3_gguf_matches_transformers() {
    let model = assert_gguf_matches_transformers("phi3", "phi3", "Phi3ForCausalLM");
    let c = model.config();
    assert!(c.block.fused_qkv && c.block.fused_gate_up);
    assert_eq!(c.sliding_window.as_ref().unwrap().size, 16);
    assert!(!c.tie_word_embeddings);
}

/// Without llama.cpp's general keys, a Gemma file gets llama.cpp's implied settings:
/// the attention scalar is `head_dim`, Gemma 2 windows the even blocks, Gemma 3 five
/// blocks in six (here both of two).
#[test]
fn gemma_gguf_without_general_keys_takes_llama_cpp_defaults() {
    for (family, windows) in [("gemma2", vec![true, false]), ("gemma3", vec![true, true])] {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("g.gguf");
        write_gguf_with(
            family,
            family,
            &path,
            &|k| !k.ends_with("attention.scale") && !k.ends_with("sliding_window_pattern"),
            &|_, t| Some(t),
        );
        let model = load(&path).unwrap();
        let c = model.config();
        assert_eq!(c.block.query_pre_attn_scalar, Some(16.0), "{family}");
        assert_eq!(
            c.sliding_window.as_ref().unwrap().layers,
            windows,
            "{family}"
        );
    }
}

#[test]
fn a_gguf_architecture_not_read_is_named_with_those_read() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("falcon.gguf");
    write_gguf("qwen3", "falcon", &path);
    let e = load(&path).err().unwrap().to_string();
    assert_eq!(
        e,
        format!(
            "{}: unsupported GGUF architecture 'falcon' (supported: llama, qwen2, qwen3, \
             gemma2, gemma3, phi3)",
            path.display()
        )
    );
}

/// The error of loading `family`'s fixture written as a GGUF with `edit` applied to its
/// tensors and metadata keys `keep` kept, with the file's path.
fn load_error(family: &str, keep: &dyn Fn(&str) -> bool, edit: TensorEdit<'_>) -> (String, String) {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join(format!("{family}.gguf"));
    write_gguf_with(family, family, &path, keep, edit);
    let e = load(&path).err().unwrap().to_string();
    (e, path.display().to_string())
}

#[test]
fn a_gguf_lacking_a_family_tensor_names_it() {
    for (family, missing) in [
        ("phi3", "blk.1.attn_qkv.weight"),
        ("gemma2", "blk.0.post_ffw_norm.weight"),
        ("gemma3", "blk.1.attn_k_norm.weight"),
    ] {
        let (e, path) = load_error(family, &|_| true, &|g, t| (g != missing).then_some(t));
        assert!(e.starts_with(&path) && e.contains(missing), "{family}: {e}");
        assert_eq!(e.lines().count(), 1, "{e}");
    }
}

#[test]
fn a_fused_phi3_matrix_with_a_slice_missing_is_refused() {
    // Gate without up: half the rows of `ffn_up`.
    let (e, path) = load_error("phi3", &|_| true, &|g, t| {
        Some(if g == "blk.0.ffn_up.weight" {
            // A copy: quantizing reads a view's whole storage.
            let (rows, cols) = t.dims2().unwrap();
            let half: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
            Tensor::from_vec(
                half[..rows / 2 * cols].to_vec(),
                (rows / 2, cols),
                &Device::Cpu,
            )
            .unwrap()
        } else {
            t
        })
    });
    // Named by the Hugging Face name the loader gives it (`ffn_up` is `gate_up_proj`).
    assert!(
        e.contains(&path) && e.contains("'model.layers.0.mlp.gate_up_proj.weight'"),
        "{e}"
    );
    assert!(e.contains("rows of gate 128 + up 128"), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
}

#[test]
fn a_window_pattern_of_the_wrong_length_names_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("gemma3.gguf");
    write_gguf("gemma3", "gemma3", &path);
    // The file written, then written again with a one-entry pattern for its two blocks.
    let bytes = std::fs::read(&path).unwrap();
    let mut r = std::io::Cursor::new(&bytes);
    let ct = gguf_file::Content::read(&mut r).unwrap();
    let mut md: Vec<(String, gguf_file::Value)> = ct.metadata.clone().into_iter().collect();
    for (k, v) in md.iter_mut() {
        if k == "gemma3.attention.sliding_window_pattern" {
            *v = gguf_file::Value::Array(vec![gguf_file::Value::Bool(true)]);
        }
    }
    let tensors: Vec<(String, QTensor)> = ct
        .tensor_infos
        .keys()
        .map(|n| (n.clone(), ct.tensor(&mut r, n, &Device::Cpu).unwrap()))
        .collect();
    let md_refs: Vec<(&str, &gguf_file::Value)> = md.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let t_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut f = std::fs::File::create(&path).unwrap();
    gguf_file::write(&mut f, &md_refs, &t_refs).unwrap();
    drop(f);
    let e = load(&path).err().unwrap().to_string();
    assert_eq!(
        e,
        format!(
            "{}: invalid GGUF file: metadata 'gemma3.attention.sliding_window_pattern' has 1 \
             entries, \
             gemma3.block_count is 2",
            path.display()
        )
    );
}
