//! End-to-end tests of `sparseswaps refine-layer`: a good run, and every bad input
//! giving one clear line, a non-zero exit and no output file.

use sparseswaps_tensor_io::{write_safetensors_atomic, OwnedTensor};
use sparseswaps_testkit::layer_files::{gram_of_rows, write_layer_files};
use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sparseswaps"))
}

/// `sparseswaps refine-layer --weight W --gram G`, for the caller to add the rest.
fn refine_layer(w: &str, g: &str) -> Command {
    let mut cmd = bin();
    cmd.args(["refine-layer", "--weight", w, "--gram", g]);
    cmd
}

/// The `mask` tensor of the safetensors file at `path`.
fn read_mask(path: &Path) -> sparseswaps_tensor_io::Loaded<u8> {
    sparseswaps_tensor_io::read_tensor_u8(
        &sparseswaps_tensor_io::TensorSpec::parse(&format!("{}:mask", path.display())),
        2,
    )
    .unwrap()
}

/// A small layer: weights [6, 8] and a PSD Gram [8, 8] (X Xᵀ of 20 samples).
fn layer(dir: &Path) -> (PathBuf, PathBuf) {
    let (d_out, d_in, t) = (6, 8, 20);
    let x: Vec<f32> = (0..d_in * t)
        .map(|i| ((i * 7919 % 101) as f32 - 50.0) / 25.0 * if i % d_in == 3 { 30.0 } else { 1.0 })
        .collect();
    let g = gram_of_rows(&x, d_in);
    let w: Vec<f32> = (0..d_out * d_in)
        .map(|i| ((i * 104729 % 211) as f32 - 105.0) / 50.0)
        .collect();
    write_layer_files(dir, &w, d_out, d_in, &g)
}

fn write(dir: &Path, name: &str, tensors: Vec<(&str, OwnedTensor)>) -> String {
    let p = dir.join(name);
    let t: Vec<(String, OwnedTensor)> = tensors
        .into_iter()
        .map(|(n, t)| (n.to_string(), t))
        .collect();
    write_safetensors_atomic(&p, &t, None).unwrap();
    p.display().to_string()
}

/// Runs with `args`, expects failure with one stderr line containing `needle`, and no
/// file at `out`.
fn fails(args: &[&str], out: &Path, needle: &str) {
    let o = bin().args(args).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "expected failure for {args:?}");
    assert!(
        err.contains(needle),
        "stderr for {args:?} lacks '{needle}':\n{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    assert!(!out.exists(), "output file created for {args:?}");
    let leftovers: Vec<_> = std::fs::read_dir(out.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn refines_and_writes_mask_and_report() {
    let dir = tempfile::tempdir().unwrap();
    let (w, g) = layer(dir.path());
    let out = dir.path().join("mask.safetensors");
    let rep = dir.path().join("report.json");
    for warm in ["magnitude", "wanda"] {
        let o = refine_layer(w.to_str().unwrap(), g.to_str().unwrap())
            .args(["--sparsity", "0.5", "--warm-start", warm, "--out"])
            .arg(&out)
            .arg("--report")
            .arg(&rep)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(
            stdout.contains("refined error") && stdout.contains("reduction"),
            "{stdout}"
        );
        let m = read_mask(&out);
        assert_eq!(m.shape, vec![6, 8]);
        for row in m.data.chunks(8) {
            assert_eq!(row.iter().map(|&v| v as usize).sum::<usize>(), 4);
        }
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&rep).unwrap()).unwrap();
        let r = &json["report"];
        assert!(r["final_error"].as_f64().unwrap() <= r["warm_error"].as_f64().unwrap());
        assert_eq!(r["rows"].as_array().unwrap().len(), 6);
    }
    // The refined mask is a valid warm start for another run, here under 2:4.
    let o = refine_layer(w.to_str().unwrap(), g.to_str().unwrap())
        .args([
            "--pattern",
            "2:4",
            "--warm-start",
            "magnitude",
            "--max-swaps",
            "none",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let spec = format!("mask:{}", out.display());
    let out2 = dir.path().join("mask2.safetensors");
    let o = refine_layer(w.to_str().unwrap(), g.to_str().unwrap())
        .args(["--pattern", "2:4", "--warm-start", &spec, "--out"])
        .arg(&out2)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("swaps              0"));
}

/// A Gram matrix with a negative diagonal entry is not positive semi-definite: the error
/// says so, naming the entry and its value (it used to be reported as a shape mismatch).
#[test]
fn negative_gram_diagonal_is_not_a_gram_matrix() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (w, _) = layer(d);
    let mut g = vec![0f32; 64];
    (0..8).for_each(|i| g[i * 9] = 1.0);
    g[3 * 9] = -2.5;
    let neg = write(
        d,
        "neg.safetensors",
        vec![("g", OwnedTensor::f32(vec![8, 8], &g))],
    );
    let out = d.join("out.safetensors");
    let o = refine_layer(w.to_str().unwrap(), &neg)
        .args(["--sparsity", "0.5", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "exit status; stderr: {err}");
    assert!(
        err.contains(
            "not a Gram matrix: negative diagonal entry G[3,3] = -2.5 \
             (a Gram matrix is positive semi-definite)"
        ),
        "{err}"
    );
    assert!(!err.contains("shape mismatch"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    assert!(!out.exists(), "output file written");
}

#[test]
fn bad_inputs_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (w, g) = layer(d);
    let (w, g) = (w.display().to_string(), g.display().to_string());
    let out = d.join("out.safetensors");
    let o = out.display().to_string();
    let base = |wt: &str, gr: &str, extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["refine-layer", "--weight", wt, "--gram", gr, "--out", &o]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |args: Vec<String>, needle: &str| {
        let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        fails(&a, &out, needle);
    };
    let s50 = ["--sparsity", "0.5"];

    let nonsq = write(
        d,
        "nonsq.safetensors",
        vec![("g", OwnedTensor::f32(vec![8, 4], &[1.0; 32]))],
    );
    run(base(&w, &nonsq, &s50), "not square");
    let small = write(
        d,
        "small.safetensors",
        vec![("g", OwnedTensor::f32(vec![4, 4], &[0.0; 16]))],
    );
    run(base(&w, &small, &s50), "d_in = 8");
    let rank1 = write(
        d,
        "rank1.safetensors",
        vec![("w", OwnedTensor::f32(vec![8], &[1.0; 8]))],
    );
    run(base(&format!("{rank1}:w"), &g, &s50), "rank 1");
    let mut wn = vec![0.5f32; 48];
    wn[13] = f32::NAN;
    let wnan = write(
        d,
        "wnan.safetensors",
        vec![("w", OwnedTensor::f32(vec![6, 8], &wn))],
    );
    run(
        base(&wnan, &g, &s50),
        "non-finite value in weights at index 13",
    );
    let mut gi = vec![0f32; 64];
    (0..8).for_each(|i| gi[i * 9] = 1.0);
    gi[9] = f32::INFINITY;
    let ginf = write(
        d,
        "ginf.safetensors",
        vec![("g", OwnedTensor::f32(vec![8, 8], &gi))],
    );
    run(base(&w, &ginf, &s50), "non-finite value in Gram matrix");
    run(base(&w, &g, &["--sparsity", "1.0"]), "outside [0, 1)");
    run(base(&w, &g, &["--sparsity=-0.2"]), "outside [0, 1)");
    run(base(&w, &g, &["--pattern", "4:4"]), "0 < N < M");
    run(base(&w, &g, &["--pattern", "2:3"]), "does not divide");
    let two = write(
        d,
        "two.safetensors",
        vec![
            ("a", OwnedTensor::f32(vec![6, 8], &[1.0; 48])),
            ("b", OwnedTensor::f32(vec![6, 8], &[1.0; 48])),
        ],
    );
    run(base(&two, &g, &s50), "several tensors of rank 2");
    run(
        base(&format!("{two}:c"), &g, &s50),
        "no tensor named 'c'; tensors present: a [6, 8] F32, b [6, 8] F32",
    );
    let junk = d.join("junk.safetensors");
    std::fs::write(&junk, b"this is not a safetensors file").unwrap();
    run(
        base(junk.to_str().unwrap(), &g, &s50),
        "not a valid safetensors file",
    );
    run(
        base(d.join("absent.safetensors").to_str().unwrap(), &g, &s50),
        "absent.safetensors",
    );
    run(
        base(&w, &g, &["--sparsity", "0.5", "--warm-start", "nosuch"]),
        "no warm-start plugin named 'nosuch'",
    );
    run(
        base(&w, &g, &["--sparsity", "0.5", "--max-swaps", "lots"]),
        "--max-swaps 'lots'",
    );
    let badmask = write(
        d,
        "badmask.safetensors",
        vec![("m", OwnedTensor::u8(vec![6, 8], vec![1; 48]))],
    );
    run(
        base(
            &w,
            &g,
            &[
                "--sparsity",
                "0.5",
                "--warm-start",
                &format!("mask:{badmask}"),
            ],
        ),
        "row 0 keeps 8 weights, pattern 0.5 requires 4",
    );
    // An output whose directory does not exist.
    let missing = d.join("no/such/dir/out.safetensors");
    let args = [
        "refine-layer",
        "--weight",
        &w,
        "--gram",
        &g,
        "--sparsity",
        "0.5",
        "--out",
        missing.to_str().unwrap(),
    ];
    let o = bin().args(args).output().unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("does not exist") && err.trim_end().lines().count() == 1,
        "{err}"
    );
    assert!(!missing.exists());
}

/// `--budget layer --reconstruct --weights-out`: the mask keeps the layer total, the
/// summary shows the kept-count distribution and both errors, the weights file holds
/// the re-fitted weights (zeros where pruned), the report carries the new fields; bad
/// budget flags fail with one line naming the flag.
#[test]
fn budget_and_reconstruction() {
    let dir = tempfile::tempdir().unwrap();
    let (w, g) = layer(dir.path());
    let out = dir.path().join("mask.safetensors");
    let wout = dir.path().join("weights.safetensors");
    let rep = dir.path().join("r.json");
    let (ws, gs) = (
        format!("{}:weight", w.display()),
        format!("{}:gram", g.display()),
    );
    let o = refine_layer(&ws, &gs)
        .args(["--sparsity", "0.5"])
        .args(["--budget", "layer", "--reconstruct", "--max-swaps", "none"])
        .args([
            "--out",
            out.to_str().unwrap(),
            "--weights-out",
            wout.to_str().unwrap(),
        ])
        .args(["--report", rep.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        stdout.contains("kept per row") && stdout.contains("reconstructed error"),
        "{stdout}"
    );
    let mask = read_mask(&out);
    assert_eq!(mask.data.iter().filter(|&&m| m == 1).count(), 6 * 4);
    let nw = sparseswaps_tensor_io::read_tensor_f32(
        &sparseswaps_tensor_io::TensorSpec::parse(&format!("{}:weight", wout.display())),
        2,
    )
    .unwrap();
    assert_eq!(nw.shape, vec![6, 8]);
    assert!(nw
        .data
        .iter()
        .zip(&mask.data)
        .all(|(&x, &m)| m == 1 || x == 0.0));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&rep).unwrap()).unwrap();
    let r = &json["report"];
    assert_eq!(r["budget"]["mode"], "layer");
    let (fe, re) = (
        r["final_error"].as_f64().unwrap(),
        r["reconstructed_error"].as_f64().unwrap(),
    );
    assert!(re <= fe, "{re} > {fe}");
    assert_eq!(
        json["reconstruction"]["reconstructed_error"]
            .as_f64()
            .unwrap(),
        re
    );
    assert!(r["kept"]["min"].as_u64().unwrap() >= 1);

    let bad = dir.path().join("bad.safetensors");
    let base = [
        "refine-layer",
        "--weight",
        &ws,
        "--gram",
        &gs,
        "--out",
        bad.to_str().unwrap(),
    ];
    fails(
        &[&base[..], &["--pattern", "2:4", "--budget", "layer"][..]].concat(),
        &bad,
        "--budget layer needs --sparsity",
    );
    fails(
        &[
            &base[..],
            &["--sparsity", "0.5", "--max-row-imbalance", "0.1"][..],
        ]
        .concat(),
        &bad,
        "--max-row-imbalance applies to --budget band only",
    );
    fails(
        &[&base[..], &["--sparsity", "0.5", "--budget", "rows"][..]].concat(),
        &bad,
        "budget 'rows'",
    );
    fails(
        &[
            &base[..],
            &[
                "--sparsity",
                "0.5",
                "--budget",
                "band",
                "--max-row-imbalance=-1",
            ][..],
        ]
        .concat(),
        &bad,
        "max_row_imbalance -1",
    );
}

/// `--objective refit`: the summary gains the refit line, the weights file holds the
/// re-fitted weights of the final mask (exact per-row counts), the report the refit
/// figures, never worse than swaps + re-fit; `--damping` needs a re-fit.
#[test]
fn objective_refit() {
    let dir = tempfile::tempdir().unwrap();
    let (w, g) = layer(dir.path());
    let out = dir.path().join("mask.safetensors");
    let wout = dir.path().join("weights.safetensors");
    let rep = dir.path().join("r.json");
    let (ws, gs) = (w.to_str().unwrap(), g.to_str().unwrap());
    let o = refine_layer(ws, gs)
        .args(["--sparsity", "0.5", "--objective", "refit"])
        .args(["--out", out.to_str().unwrap()])
        .args(["--weights-out", wout.to_str().unwrap()])
        .args(["--report", rep.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        stdout.contains("refit swaps") && stdout.contains("reconstructed error"),
        "{stdout}"
    );
    let mask = read_mask(&out);
    for row in mask.data.chunks(8) {
        assert_eq!(row.iter().filter(|&&m| m == 1).count(), 4);
    }
    let nw = sparseswaps_tensor_io::read_tensor_f32(
        &sparseswaps_tensor_io::TensorSpec::parse(&format!("{}:weight", wout.display())),
        2,
    )
    .unwrap();
    assert!(nw
        .data
        .iter()
        .zip(&mask.data)
        .all(|(&x, &m)| m == 1 || x == 0.0));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&rep).unwrap()).unwrap();
    assert_eq!(json["objective"], "refit");
    let f = &json["refit"];
    let (before, after) = (
        f["refit_error_before"].as_f64().unwrap(),
        f["refit_error_after"].as_f64().unwrap(),
    );
    assert!(after <= before, "{after} > {before}");
    assert_eq!(
        json["report"]["reconstructed_error"].as_f64().unwrap(),
        after
    );
    assert_eq!(
        json["report"]["final_error"].as_f64().unwrap(),
        f["mask_error_after"].as_f64().unwrap()
    );
    assert_eq!(f["rows"].as_array().unwrap().len(), 6);

    let bad = dir.path().join("bad.safetensors");
    let base = ["refine-layer", "--weight", ws, "--gram", gs];
    let bad_args = ["--sparsity", "0.5", "--out", bad.to_str().unwrap()];
    fails(
        &[&base[..], &bad_args[..], &["--damping", "1e-3"][..]].concat(),
        &bad,
        "--damping applies with --reconstruct or --objective refit only",
    );
    let o = bin()
        .args([&base[..], &bad_args[..], &["--objective", "refitted"][..]].concat())
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--objective"));
    assert!(!bad.exists());
}
