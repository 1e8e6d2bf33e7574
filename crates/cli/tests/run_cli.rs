//! `sparseswaps run`: config errors reach the user as one line and a non-zero exit,
//! before any model is loaded, and leave no output directory.

use std::process::Command;

fn run(args: &[&str]) -> (bool, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_sparseswaps"))
        .arg("run")
        .args(args)
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn config_errors_are_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let cases = [
        ("[model]\npath = \"m\"\n[calibration]\ntext = \"c\"\n[pattern]\nsparsity = 0.5\n[output]\ndir = \"OUT\"\n[refine]\nmax_swap = 3\n", "unknown field `max_swap`"),
        ("[model]\npath = \"m\"\n[calibration]\ntext = \"c\"\n[pattern]\nsparsity = 0.5\nn_m = \"2:4\"\n[output]\ndir = \"OUT\"\n", "exactly one of sparsity and n_m"),
        ("[model]\npath = \"m\"\n[calibration]\ntext = \"c\"\n[pattern]\nn_m = \"4:4\"\n[output]\ndir = \"OUT\"\n", "0 < N < M"),
        ("[model]\npath = \"m\"\n[calibration]\ntext = \"c\"\n[pattern]\nsparsity = 0.5\n[refine]\nbackend = \"tpu\"\n[output]\ndir = \"OUT\"\n", "refine.backend = 'tpu'"),
        ("[model]\npath = \"/nonexistent/model.gguf\"\n[calibration]\ntext = \"c\"\n[pattern]\nsparsity = 0.5\n[output]\ndir = \"OUT\"\n", "/nonexistent/model.gguf: no such file"),
        ("[model\npath = 1", "p.toml"),
    ];
    for (text, needle) in cases {
        let p = dir.path().join("p.toml");
        std::fs::write(&p, text.replace("OUT", out.to_str().unwrap())).unwrap();
        let (ok, err) = run(&[p.to_str().unwrap()]);
        assert!(!ok, "expected failure for {text}");
        assert!(err.contains(needle), "'{needle}' not in: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(!out.exists());
    }
    let (ok, err) = run(&[dir.path().join("missing.toml").to_str().unwrap()]);
    assert!(!ok && err.contains("missing.toml"), "{err}");
}
