//! `sparseswaps run`: config errors reach the user as one line and a non-zero exit,
//! before any model is loaded, and leave no output directory; so does a memory plan over
//! `--max-memory`.

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
        ("[model]\npath = \"m\"\n[calibration]\ntext = \"c\"\n[pattern]\nsparsity = 0.5\n[output]\ndir = \"OUT\"\nshard_size = \"5 apples\"\n", "output.shard_size: '5 apples' is not a size"),
        ("[model]\npath = \"m\"\n[calibration]\ntext = \"c\"\n[pattern]\nsparsity = 0.5\n[output]\ndir = \"OUT\"\n[run]\nmax_memory = \"lots\"\n", "run.max_memory: 'lots' is not a size"),
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

#[test]
fn a_plan_over_max_memory_is_refused_in_one_line() {
    use sparseswaps_testkit::tiny;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tiny::write_hf(
        &d.join("model"),
        "LlamaForCausalLM",
        &tiny::weights(5, false, true),
        true,
        1,
    );
    std::fs::write(
        d.join("calib.txt"),
        "tiny words for a tiny model. ".repeat(30),
    )
    .unwrap();
    let out = d.join("out");
    let toml = format!(
        "[model]\npath = \"{m}\"\n[calibration]\ntext = \"{c}\"\nsamples = 2\nseq_len = 16\n[pattern]\nsparsity = 0.5\n[output]\ndir = \"{o}\"\n",
        m = d.join("model").display(),
        c = d.join("calib.txt").display(),
        o = out.display()
    );
    let p = d.join("p.toml");
    std::fs::write(&p, toml).unwrap();
    let (ok, err) = run(&[p.to_str().unwrap(), "--quiet", "--max-memory", "0.000001"]);
    assert!(!ok, "{err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(
        errors[0].contains("does not fit the memory limit of 0.00 GB: estimated peak memory")
            && errors[0].contains("disk to write"),
        "{err}"
    );
    assert!(!out.exists());
    let (ok, err) = run(&[p.to_str().unwrap(), "--max-memory", "much"]);
    assert!(!ok && err.contains("'much' is not a size"), "{err}");
    assert!(!out.exists());
}
