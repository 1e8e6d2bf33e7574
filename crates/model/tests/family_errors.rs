//! Bad input for the families beyond Llama: each fails with one line naming the file and
//! the tensor or key. Built from the parity fixtures (`tests/fixtures/parity/`) with one
//! thing changed.

use safetensors::tensor::TensorView;
use safetensors::SafeTensors;
use sparseswaps_model::load;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

fn fixture(family: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/parity")
        .join(family)
        .join("model")
}

/// A copy of a fixture's model directory whose tensors pass through `edit` (name,
/// shape, bytes → kept as returned, dropped when `None`) and whose `config.json` goes
/// through `config`.
fn variant(
    family: &str,
    edit: impl Fn(&str, &[usize], &[u8]) -> Option<(Vec<usize>, Vec<u8>)>,
    config: impl Fn(&mut serde_json::Value),
) -> TempDir {
    let src = fixture(family);
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        src.join("tokenizer.json"),
        dir.path().join("tokenizer.json"),
    )
    .unwrap();
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    config(&mut cfg);
    std::fs::write(dir.path().join("config.json"), cfg.to_string()).unwrap();
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let kept: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .filter_map(|(n, v)| {
            edit(&n, v.shape(), v.data()).map(|(shape, data)| (n, v.dtype(), shape, data))
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = kept
        .iter()
        .map(|(n, dt, shape, data)| {
            (
                n.clone(),
                TensorView::new(*dt, shape.clone(), data).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, &dir.path().join("model.safetensors")).unwrap();
    dir
}

fn keep(_: &str, shape: &[usize], data: &[u8]) -> Option<(Vec<usize>, Vec<u8>)> {
    Some((shape.to_vec(), data.to_vec()))
}

fn err(dir: &Path) -> String {
    let e = match load(dir) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e.to_string(),
    };
    assert_eq!(e.lines().count(), 1, "one line: {e}");
    e
}

#[test]
fn gemma2_without_a_pre_feedforward_norm_names_the_tensor() {
    let gone = "model.layers.1.pre_feedforward_layernorm.weight";
    let dir = variant(
        "gemma2",
        |n, s, d| (n != gone).then(|| (s.to_vec(), d.to_vec())),
        |_| {},
    );
    assert_eq!(
        err(dir.path()),
        format!("{}: missing tensor '{gone}'", dir.path().display())
    );
}

#[test]
fn gemma3_without_a_k_norm_names_the_tensor() {
    let gone = "model.layers.0.self_attn.k_norm.weight";
    let dir = variant(
        "gemma3",
        |n, s, d| (n != gone).then(|| (s.to_vec(), d.to_vec())),
        |_| {},
    );
    assert_eq!(
        err(dir.path()),
        format!("{}: missing tensor '{gone}'", dir.path().display())
    );
}

/// q (64 rows) + k (32) + v (32) = 128 rows of 64: one slice short, or one extra.
#[test]
fn phi3_fused_qkv_with_a_slice_missing_or_extra_names_the_tensor() {
    let name = "model.layers.0.self_attn.qkv_proj.weight";
    for rows in [96usize, 160] {
        let dir = variant(
            "phi3",
            |n, s, d| {
                if n != name {
                    return Some((s.to_vec(), d.to_vec()));
                }
                let mut d = d.to_vec();
                d.resize(rows * s[1] * 4, 0);
                Some((vec![rows, s[1]], d))
            },
            |_| {},
        );
        assert_eq!(
            err(dir.path()),
            format!(
                "tensor '{name}': in {} has shape [{rows}, 64], the config implies [128, 64] \
                 (rows of q 64 + k 32 + v 32)",
                dir.path().display()
            )
        );
    }
}

#[test]
fn phi3_fused_gate_up_of_the_wrong_shape_names_the_tensor() {
    let name = "model.layers.1.mlp.gate_up_proj.weight";
    let dir = variant(
        "phi3",
        |n, s, d| {
            if n != name {
                return Some((s.to_vec(), d.to_vec()));
            }
            Some((vec![s[0] / 2, s[1]], d[..d.len() / 2].to_vec()))
        },
        |_| {},
    );
    let e = err(dir.path());
    assert!(
        e.starts_with(&format!("tensor '{name}': in {}", dir.path().display()))
            && e.ends_with(
                "has shape [128, 64], the config implies [256, 64] (rows of gate 128 + up 128)"
            ),
        "{e}"
    );
}

/// A Qwen3 checkpoint declared Qwen2 would run without its q/k norms: refused.
#[test]
fn a_checkpoint_of_another_family_is_refused() {
    let dir = variant("qwen3", keep, |c| {
        c["architectures"] = serde_json::json!(["Qwen2ForCausalLM"]);
        c["model_type"] = serde_json::json!("qwen2");
    });
    assert_eq!(
        err(dir.path()),
        format!(
            "{}: unsupported tensor 'model.layers.0.self_attn.k_norm.weight': a Qwen2ForCausalLM \
             block has no such tensor (is the config's architecture right?)",
            dir.path().display()
        )
    );
}

const SUPPORTED: &str = "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, \
    Qwen3ForCausalLM, Gemma2ForCausalLM, Gemma3ForCausalLM, Phi3ForCausalLM";

#[test]
fn an_unsupported_architecture_is_named_with_the_supported_ones() {
    let dir = variant("gemma3", keep, |c| {
        c["architectures"] = serde_json::json!(["Gemma3ForConditionalGeneration"]);
    });
    let cfg = dir.path().join("config.json");
    assert_eq!(
        err(dir.path()),
        format!(
            "{}: unsupported architecture 'Gemma3ForConditionalGeneration' (supported: {SUPPORTED})",
            cfg.display()
        )
    );
    let dir = variant("phi3", keep, |c| {
        c.as_object_mut().unwrap().remove("architectures");
        c["model_type"] = serde_json::json!("phimoe");
    });
    assert_eq!(
        err(dir.path()),
        format!(
            "{}: unsupported model_type 'phimoe' (supported: llama, mistral, qwen2, qwen3, \
             gemma2, gemma3_text, phi3)",
            dir.path().join("config.json").display()
        )
    );
}

/// A change to a `config.json`.
type EditConfig = fn(&mut serde_json::Value);

#[test]
fn what_a_family_does_not_implement_is_refused_by_key() {
    let cases: [(&str, EditConfig, &str); 4] = [
        (
            "gemma3",
            |c| c["attn_logit_softcapping"] = serde_json::json!(50.0),
            "unsupported attn_logit_softcapping = 50 in a Gemma 3 config",
        ),
        (
            "phi3",
            |c| c["rope_parameters"]["partial_rotary_factor"] = serde_json::json!(0.75),
            "unsupported partial_rotary_factor 0.75",
        ),
        (
            "gemma2",
            |c| c["hidden_activation"] = serde_json::json!("relu"),
            "unsupported hidden_activation 'relu' (supported: gelu_pytorch_tanh)",
        ),
        (
            "qwen3",
            |c| c["hidden_act"] = serde_json::json!("gelu"),
            "unsupported hidden_act 'gelu' (supported: silu, swish)",
        ),
    ];
    for (family, edit, want) in cases {
        let dir = variant(family, keep, edit);
        let e = err(dir.path());
        let prefix = format!("{}: {want}", dir.path().join("config.json").display());
        assert!(e.starts_with(&prefix), "{family}: {e}");
    }
}
