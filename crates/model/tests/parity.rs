//! Parity with transformers: tiny random-weight models made and saved by transformers
//! (`scripts/parity/make_fixtures.py`, run by developers, not by CI), with the logits and
//! perplexity transformers computed for them (f32, eval mode, eager attention): the
//! Hugging Face directory `tests/fixtures/parity/<family>/model/` and, beside it,
//! `expected.safetensors` (`input_ids`, `logits`) and `expected.json` (text, perplexity).
//!
//! For each family the crate runs, our logits must match transformers' to a max relative
//! difference of 1e-4 (max |ours − theirs| over the largest |theirs|) and the perplexity
//! to 5 significant digits; each fixture's sequence crosses the family's sliding window
//! where it has one.

use safetensors::{Dtype, SafeTensors};
use sparseswaps_model::{load, perplexity, save_hf_dir, SaveDtype};
use std::path::PathBuf;

/// Max |ours − theirs| / max |theirs| over all logits.
const LOGITS_REL_TOL: f64 = 1e-4;
/// |ours − theirs| / theirs for the perplexity: below one unit of the 5th significant
/// digit.
const PPL_REL_TOL: f64 = 1e-5;

/// Every fixture directory, with the HF class its `config.json` names.
const FAMILIES: [(&str, &str); 9] = [
    ("llama", "LlamaForCausalLM"),
    ("mistral", "MistralForCausalLM"),
    ("qwen2", "Qwen2ForCausalLM"),
    ("qwen2_head", "Qwen2ForCausalLM"),
    ("qwen2_sliding", "Qwen2ForCausalLM"),
    ("qwen3", "Qwen3ForCausalLM"),
    ("gemma2", "Gemma2ForCausalLM"),
    ("gemma3", "Gemma3ForCausalLM"),
    ("phi3", "Phi3ForCausalLM"),
];

fn fixture(family: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/parity")
        .join(family)
}

/// What transformers computed for one fixture.
struct Expected {
    text: String,
    ids: Vec<u32>,
    /// `[seq][vocab]`.
    logits: Vec<Vec<f32>>,
    ppl: f64,
}

fn expected(family: &str) -> Expected {
    let dir = fixture(family);
    let bytes = std::fs::read(dir.join("expected.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let ids_view = st.tensor("input_ids").unwrap();
    let ids: Vec<u32> = match ids_view.dtype() {
        Dtype::I64 => ids_view
            .data()
            .chunks_exact(8)
            .map(|c| u32::try_from(i64::from_le_bytes(c.try_into().unwrap())).unwrap())
            .collect(),
        Dtype::U32 => ids_view
            .data()
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        other => panic!("{family}: input_ids has dtype {other:?}"),
    };
    let lv = st.tensor("logits").unwrap();
    assert_eq!(lv.dtype(), Dtype::F32, "{family}: logits dtype");
    let [seq, vocab] = lv.shape() else {
        panic!("{family}: logits shape {:?}", lv.shape())
    };
    assert_eq!(*seq, ids.len(), "{family}: one row of logits per token");
    let flat: Vec<f32> = lv
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let logits = flat.chunks_exact(*vocab).map(<[f32]>::to_vec).collect();
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    Expected {
        text: meta["text"].as_str().unwrap().to_string(),
        ids,
        logits,
        ppl: meta["ppl"].as_f64().unwrap(),
    }
}

/// Perplexity of `ids[1..]` from logits rows `[0, ids.len() − 1)`, in f64.
fn ppl_from_logits(logits: &[Vec<f32>], ids: &[u32]) -> f64 {
    let n = ids.len() - 1;
    let nll: f64 = (0..n)
        .map(|t| {
            let row = &logits[t];
            let m = row.iter().fold(f64::MIN, |m, &x| m.max(x as f64));
            let lse = m + row.iter().map(|&x| (x as f64 - m).exp()).sum::<f64>().ln();
            lse - row[ids[t + 1] as usize] as f64
        })
        .sum();
    (nll / n as f64).exp()
}

/// Loads the fixture, checks the tokenizer reproduces the ids, and compares logits and
/// perplexity with transformers' on the first `prefix` tokens (all when `None`; rows of
/// a causal model depend only on earlier tokens, so a prefix of transformers' rows is
/// what it computes for the prefix alone).
fn assert_matches_transformers(family: &str, prefix: Option<usize>) {
    let mut exp = expected(family);
    // The two reference files agree (up to f64 summation order).
    let from_logits = ppl_from_logits(&exp.logits, &exp.ids);
    assert!(
        (from_logits - exp.ppl).abs() <= 1e-12 * exp.ppl,
        "{family}: expected.json perplexity {} against {from_logits} from expected.safetensors",
        exp.ppl
    );
    let model = load(&fixture(family).join("model")).unwrap_or_else(|e| panic!("{family}: {e}"));
    assert_eq!(
        model.encode(&exp.text).unwrap(),
        exp.ids,
        "{family}: tokens"
    );
    if let Some(n) = prefix {
        exp.ids.truncate(n);
        exp.logits.truncate(n);
        exp.ppl = ppl_from_logits(&exp.logits, &exp.ids);
    }

    let ours: Vec<Vec<f32>> = model
        .forward(&exp.ids, 1)
        .unwrap()
        .squeeze(0)
        .unwrap()
        .to_vec2()
        .unwrap();
    assert_eq!(ours.len(), exp.logits.len(), "{family}: sequence length");
    let scale = exp
        .logits
        .iter()
        .flatten()
        .fold(0f64, |m, &x| m.max((x as f64).abs()));
    let (mut worst, mut at) = (0f64, (0, 0));
    for (t, (a, b)) in ours.iter().zip(&exp.logits).enumerate() {
        assert_eq!(a.len(), b.len(), "{family}: vocabulary size");
        for (v, (x, y)) in a.iter().zip(b).enumerate() {
            let d = (*x as f64 - *y as f64).abs();
            if d > worst {
                (worst, at) = (d, (t, v));
            }
        }
    }
    let rel = worst / scale;
    assert!(
        rel <= LOGITS_REL_TOL,
        "{family}: logits differ from transformers by {rel:.3e} of their scale {scale:.3} \
         (worst at token {}, id {}: ours {}, transformers {})",
        at.0,
        at.1,
        ours[at.0][at.1],
        exp.logits[at.0][at.1]
    );

    let p = perplexity(&model, &exp.ids, exp.ids.len(), 1, &mut |_, _| {}).unwrap();
    assert_eq!(p.tokens, exp.ids.len() - 1);
    let prel = (p.ppl - exp.ppl).abs() / exp.ppl;
    eprintln!(
        "{family}: max relative logit difference {rel:.2e}; perplexity {:.7} against \
         transformers' {:.7} (relative {prel:.1e})",
        p.ppl, exp.ppl
    );
    assert!(
        prel <= PPL_REL_TOL,
        "{family}: perplexity {} against transformers' {} (relative {prel:.2e})",
        p.ppl,
        exp.ppl
    );
}

/// The `sliding_window` of a fixture's `config.json`, if any.
fn sliding_window(family: &str) -> Option<usize> {
    let cfg = std::fs::read_to_string(fixture(family).join("model/config.json")).unwrap();
    serde_json::from_str::<serde_json::Value>(&cfg).unwrap()["sliding_window"]
        .as_u64()
        .map(|w| w as usize)
}

#[test]
fn every_fixture_is_checked() {
    let mut dirs: Vec<String> = std::fs::read_dir(fixture(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    let mut known: Vec<String> = FAMILIES.iter().map(|(f, _)| f.to_string()).collect();
    known.sort();
    assert_eq!(dirs, known, "fixture directories against FAMILIES");
    for (family, class) in FAMILIES {
        let cfg = std::fs::read_to_string(fixture(family).join("model/config.json")).unwrap();
        assert!(cfg.contains(class), "{family}: config.json names {class}");
        // The windows must be crossed where the family has them.
        if let Some(w) = sliding_window(family) {
            let seq = expected(family).ids.len();
            assert!(seq > w, "{family}: sequence of {seq} within window {w}");
        }
    }
}

#[test]
fn llama3_rope_scaling_untied_matches_transformers() {
    assert_matches_transformers("llama", None);
}

/// Up to the sliding window (16 tokens here) Mistral's attention is plain causal.
#[test]
fn mistral_matches_transformers_within_the_window() {
    let w = sliding_window("mistral").unwrap();
    assert_matches_transformers("mistral", Some(w));
}

/// Across the window: tokens past the 16th see only the 15 tokens before them.
#[test]
fn mistral_matches_transformers_across_the_window() {
    assert_matches_transformers("mistral", None);
}

/// Qwen2.5 as shipped: q/k/v biases and a tied head (issue 16).
#[test]
fn qwen2_tied_with_biases_matches_transformers() {
    assert_matches_transformers("qwen2", None);
}

/// Qwen2 with biases whose `config.json` says tied but whose checkpoint carries its own,
/// different `lm_head.weight`: transformers uses that head (it warns that it will not
/// tie), the crate today drops it and multiplies by the embedding.
#[test]
fn qwen2_tied_with_biases_and_head_in_file_matches_transformers() {
    assert_matches_transformers("qwen2_head", None);
}

/// Qwen2 with `use_sliding_window: true`, `sliding_window: 8`, `max_window_layers: 1`
/// and no `layer_types` (as configs written before transformers 5): block 0 attends to
/// every earlier token, block 1 to the last 8. Without the window transformers' logits
/// past token 8 differ from these by 1.2 (of a scale of 7).
#[test]
fn qwen2_sliding_window_from_max_window_layers_matches_transformers() {
    let model = load(&fixture("qwen2_sliding").join("model")).unwrap();
    let windows: Vec<Option<usize>> = (0..2).map(|l| model.config().attention_window(l)).collect();
    assert_eq!(windows, [None, Some(8)]);
    assert_matches_transformers("qwen2_sliding", None);
}

/// The writer keeps the source's sliding-window keys as they are (no `layer_types` is
/// added), and the written model has the same windows.
#[test]
fn writer_keeps_the_sliding_window_config() {
    let keys = [
        "use_sliding_window",
        "sliding_window",
        "max_window_layers",
        "layer_types",
    ];
    for family in [
        "mistral",
        "qwen2",
        "qwen2_sliding",
        "qwen3",
        "gemma2",
        "gemma3",
        "phi3",
    ] {
        let src = fixture(family).join("model");
        let model = load(&src).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        save_hf_dir(&model, &out, SaveDtype::F32, false).unwrap();
        let read = |p: PathBuf| -> serde_json::Value {
            serde_json::from_str(&std::fs::read_to_string(p.join("config.json")).unwrap()).unwrap()
        };
        let (a, b) = (read(src), read(out.clone()));
        for k in keys {
            assert_eq!(a.get(k), b.get(k), "{family}: key {k}");
        }
        let back = load(&out).unwrap();
        assert_eq!(
            back.config().sliding_window,
            model.config().sliding_window,
            "{family}"
        );
    }
}

/// Qwen3: q/k RMSNorm per head, no biases, tied head.
#[test]
fn qwen3_matches_transformers() {
    assert_matches_transformers("qwen3", None);
}

/// Gemma 2: block 0 slides over 8 tokens, block 1 sees all; scores capped at 5, logits
/// at 10 (small enough to bite at this scale).
#[test]
fn gemma2_matches_transformers_across_the_window() {
    let model = load(&fixture("gemma2").join("model")).unwrap();
    let windows: Vec<Option<usize>> = (0..2).map(|l| model.config().attention_window(l)).collect();
    assert_eq!(windows, [Some(8), None]);
    assert_matches_transformers("gemma2", None);
}

/// Gemma 3: block 0 local (window 8, rope base 10 000), block 1 global (base 10^6),
/// q/k norms, no soft-capping.
#[test]
fn gemma3_matches_transformers_across_the_window() {
    let model = load(&fixture("gemma3").join("model")).unwrap();
    let windows: Vec<Option<usize>> = (0..2).map(|l| model.config().attention_window(l)).collect();
    assert_eq!(windows, [Some(8), None]);
    assert_eq!(model.config().rope_theta, 1_000_000.0);
    assert_eq!(
        model.config().block.local_rope.as_ref().map(|r| r.theta),
        Some(10_000.0)
    );
    assert_matches_transformers("gemma3", None);
}

/// Phi-3: fused qkv_proj and gate_up_proj, a window of 16 in every block.
#[test]
fn phi3_matches_transformers_across_the_window() {
    assert_matches_transformers("phi3", None);
}

/// Every family written back under its own names and config keys (fused matrices
/// joined again, Gemma's four norms, q/k norms) and read back to the same logits.
#[test]
fn every_family_round_trips_through_the_writer() {
    for (family, class) in FAMILIES {
        let src = fixture(family).join("model");
        let model = load(&src).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        save_hf_dir(&model, &out, SaveDtype::F32, false).unwrap();
        let names = |dir: &std::path::Path| -> Vec<String> {
            let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
            let mut n: Vec<String> = SafeTensors::deserialize(&bytes)
                .unwrap()
                .names()
                .into_iter()
                .map(str::to_string)
                .collect();
            n.sort();
            n
        };
        assert_eq!(names(&out), names(&src), "{family}: tensor names");
        let cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap())
                .unwrap();
        assert_eq!(cfg["architectures"][0], class, "{family}");
        let back = load(&out).unwrap();
        assert_eq!(back.config(), model.config(), "{family}: config");
        let ids = expected(family).ids;
        let a: Vec<f32> = model
            .forward(&ids, 1)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let b: Vec<f32> = back
            .forward(&ids, 1)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(a, b, "{family}: logits after the round trip");
    }
}
