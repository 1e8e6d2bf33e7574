//! A tiny random model made by the test itself: loads from sharded safetensors with q/k/v
//! biases, matches a plain-Rust f64 forward, exposes the block interface, round-trips
//! through the writer and through GGUF.

mod common;

use common::{max_abs_diff, tiny};
use sparseswaps_model::{
    load, save_hf_dir, Architecture, CapturePoint, LinearKind, Model, ModelError, SaveDtype,
    SourceDtype,
};

/// Max |Δlogit| between our f32 forward and the f64 reference.
const TOL: f64 = 1e-4;

fn logits_vec(t: &sparseswaps_model::Tensor) -> Vec<Vec<f32>> {
    t.squeeze(0).unwrap().to_vec2().unwrap()
}

fn max_diff(a: &[Vec<f32>], b: &[Vec<f64>]) -> f64 {
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| (*p as f64 - q).abs()))
        .fold(0.0, f64::max)
}

/// The weight matrix of linear layer `kind` in block `l`, as rows.
fn weight_rows(model: &Model, kind: LinearKind, l: usize) -> Vec<Vec<f32>> {
    model
        .weight(&kind.weight_name(l))
        .unwrap()
        .to_vec2::<f32>()
        .unwrap()
}

/// The named weight, flattened.
fn weight_flat(model: &Model, name: &str) -> Vec<f32> {
    model
        .weight(name)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
}

#[test]
fn sharded_qwen2_with_bias_loads_and_matches_reference() {
    let dir = tempfile::tempdir().unwrap();
    let w = tiny::weights(1, true, false);
    let mdir = dir.path().join("qwen2-tiny");
    tiny::write_hf(&mdir, "Qwen2ForCausalLM", &w, false, 3);
    assert!(mdir.join("model.safetensors.index.json").is_file());
    let model = load(&mdir).unwrap();
    assert_eq!(model.config().architecture, Architecture::Qwen2);
    assert_eq!(model.source().dtype, SourceDtype::F32);
    assert!(model.block(0).unwrap().bias(LinearKind::Q).is_some());

    let ids = model.encode("the tiny test talks").unwrap();
    assert!(ids.len() > 5);
    let ours = logits_vec(&model.forward(&ids, 1).unwrap());
    let reference = tiny::reference_logits(&w, &ids, false);
    let d = max_diff(&ours, &reference);
    assert!(d <= TOL, "max |Δlogit| {d} > {TOL}");

    // Two sequences in one batch give what each gives alone.
    let a = &ids[..4];
    let b = &ids[1..5];
    let both = model.forward(&[a, b].concat(), 2).unwrap();
    let alone = model.forward(b, 1).unwrap();
    assert!(max_abs_diff(&both.narrow(0, 1, 1).unwrap(), &alone) < 1e-5);
}

#[test]
fn block_interface_captures_the_inputs_of_every_linear_layer() {
    let dir = tempfile::tempdir().unwrap();
    let w = tiny::weights(2, false, true);
    tiny::write_hf(dir.path(), "LlamaForCausalLM", &w, true, 1);
    let mut model = load(dir.path()).unwrap();
    let ids = model.encode("a tiny batch!").unwrap();
    let n = ids.len() / 2 * 2;
    let ids = &ids[..n];
    let full = model.forward(ids, 2).unwrap();

    let mut h = model.embed(ids, 2).unwrap();
    for l in 0..model.num_layers() {
        let (out, cap) = model.block_forward_capture(l, &h).unwrap();
        assert_eq!((cap.attn.rows, cap.attn.cols), (n, tiny::HIDDEN));
        assert_eq!(
            (cap.attn_out.rows, cap.attn_out.cols),
            (n, tiny::HEADS * tiny::HEAD_DIM)
        );
        assert_eq!((cap.mlp.rows, cap.mlp.cols), (n, tiny::HIDDEN));
        assert_eq!((cap.mlp_act.rows, cap.mlp_act.cols), (n, tiny::INTER));
        assert_eq!(cap.input_of(LinearKind::K), cap.get(CapturePoint::Attn));
        assert_eq!(cap.input_of(LinearKind::Up), &cap.mlp);
        // out = in + attn_out · Woᵀ + mlp_act · Wdᵀ: the o_proj and down_proj inputs.
        let wo = weight_rows(&model, LinearKind::O, l);
        let wd = weight_rows(&model, LinearKind::Down, l);
        let hin = h.flatten_to(1).unwrap().to_vec2::<f32>().unwrap();
        let hout = out.flatten_to(1).unwrap().to_vec2::<f32>().unwrap();
        for t in 0..n {
            for i in 0..tiny::HIDDEN {
                let o: f32 = (0..cap.attn_out.cols)
                    .map(|j| wo[i][j] * cap.attn_out.data[t * cap.attn_out.cols + j])
                    .sum();
                let d: f32 = (0..cap.mlp_act.cols)
                    .map(|j| wd[i][j] * cap.mlp_act.data[t * cap.mlp_act.cols + j])
                    .sum();
                assert!(
                    (hin[t][i] + o + d - hout[t][i]).abs() < 1e-4,
                    "layer {l} token {t} dim {i}"
                );
            }
        }
        // mlp_act = silu(mlp · Wgᵀ) · (mlp · Wuᵀ): the gate/up input.
        let wg = weight_rows(&model, LinearKind::Gate, l);
        let wu = weight_rows(&model, LinearKind::Up, l);
        for t in 0..n {
            let x = &cap.mlp.data[t * tiny::HIDDEN..(t + 1) * tiny::HIDDEN];
            for k in 0..tiny::INTER {
                let g: f32 = (0..tiny::HIDDEN).map(|j| wg[k][j] * x[j]).sum();
                let u: f32 = (0..tiny::HIDDEN).map(|j| wu[k][j] * x[j]).sum();
                let want = g / (1.0 + (-g).exp()) * u;
                assert!((want - cap.mlp_act.data[t * tiny::INTER + k]).abs() < 1e-4);
            }
        }
        h = out;
    }
    let blockwise = model.logits(&h).unwrap();
    let diff = max_abs_diff(&blockwise, &full);
    assert!(
        diff < 1e-5,
        "block-by-block logits differ from forward by {diff}"
    );

    // Weights by HF name: replace one and the output changes; bad names and shapes fail.
    let name = "model.layers.1.mlp.down_proj.weight";
    assert_eq!(model.linear_names().len(), 7 * tiny::LAYERS);
    let shape = model.weight(name).unwrap().dims().to_vec();
    model
        .set_weight_f32(name, vec![0.0; shape[0] * shape[1]])
        .unwrap();
    let changed = model.forward(ids, 2).unwrap();
    let diff = max_abs_diff(&changed, &full);
    assert!(diff > 1e-3);
    let e = model
        .weight("model.layers.9.mlp.up_proj.weight")
        .unwrap_err();
    assert!(matches!(e, ModelError::UnknownWeight { .. }), "{e}");
    let e = model
        .set_weight_f32(name, vec![0.0; 3])
        .unwrap_err()
        .to_string();
    assert!(e.contains(name) && e.contains("3 values"), "{e}");
}

#[test]
fn writer_round_trips_f32_exactly_and_bf16_rounded() {
    let dir = tempfile::tempdir().unwrap();
    let w = tiny::weights(3, true, false);
    let src = dir.path().join("src");
    tiny::write_hf(&src, "Qwen2ForCausalLM", &w, false, 2);
    let model = load(&src).unwrap();
    let ids = model.encode("round trip").unwrap();
    let want = model.forward(&ids, 1).unwrap();

    let out = dir.path().join("out");
    save_hf_dir(&model, &out, SaveDtype::F32, false).unwrap();
    let back = load(&out).unwrap();
    let got = back.forward(&ids, 1).unwrap();
    let diff = max_abs_diff(&got, &want);
    assert_eq!(diff, 0.0);
    assert_eq!(back.config(), model.config());

    // An existing output is refused unless asked, and then replaced whole.
    let e = save_hf_dir(&model, &out, SaveDtype::BF16, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("already exists"), "{e}");
    save_hf_dir(&model, &out, SaveDtype::BF16, true).unwrap();
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["torch_dtype"], "bfloat16");
    assert_eq!(cfg["architectures"][0], "Qwen2ForCausalLM");
    let back = load(&out).unwrap();
    assert_eq!(back.source().dtype, SourceDtype::BF16);
    let name = "model.layers.0.self_attn.q_proj.weight";
    let a = weight_flat(&model, name);
    let b = weight_flat(&back, name);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(half::bf16::from_f32(*x).to_f32(), *y);
    }
    // No temporary directories are left beside the output.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn gguf_with_permuted_qk_matches_the_hf_weights() {
    let dir = tempfile::tempdir().unwrap();
    let w = tiny::weights(4, false, false);
    let hf = dir.path().join("hf");
    tiny::write_hf(&hf, "LlamaForCausalLM", &w, false, 1);
    let gguf = dir.path().join("tiny.gguf");
    tiny::write_gguf(&gguf, &w);
    let a = load(&hf).unwrap();
    let b = load(&gguf).unwrap();
    let text = "the test tokens 123";
    let ids = a.encode(text).unwrap();
    assert_eq!(ids, b.encode(text).unwrap());
    for k in LinearKind::ALL {
        let n = k.weight_name(1);
        let d = max_abs_diff(&a.weight(&n).unwrap(), &b.weight(&n).unwrap());
        assert_eq!(d, 0.0, "{n}");
    }
    let d = max_abs_diff(&a.forward(&ids, 1).unwrap(), &b.forward(&ids, 1).unwrap());
    assert_eq!(d, 0.0);
    assert!(matches!(b.source().dtype, SourceDtype::Gguf(ref q) if q == "F32"));
}
