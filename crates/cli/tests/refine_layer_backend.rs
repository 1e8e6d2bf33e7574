//! `refine-layer --backend` and the warm-start fallback rule through the binary:
//! `--backend auto` (the default) works without a GPU and says it chose the CPU;
//! `--backend cuda` fails cleanly where CUDA cannot run; options for a warm start that
//! falls back to its built-in code are an error, not dropped.

use sparseswaps_tensor_io::{read_tensor_u8, TensorSpec};
use sparseswaps_testkit::layer_files::{gram_of_rows, write_layer_files};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A layer `[4, 16]` and the Gram matrix of 64 pseudo-random tokens.
fn layer(dir: &Path) -> (PathBuf, PathBuf) {
    let (d_out, d_in, tokens) = (4usize, 16usize, 64usize);
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        ((s >> 11) as f64 / (1u64 << 53) as f64 - 0.5) as f32
    };
    let w: Vec<f32> = (0..d_out * d_in).map(|_| next()).collect();
    let x: Vec<f32> = (0..tokens * d_in).map(|_| next()).collect();
    let g = gram_of_rows(&x, d_in);
    write_layer_files(dir, &w, d_out, d_in, &g)
}

fn refine_layer(exe: &Path, dir: &Path, out: &Path, extra: &[&str]) -> Output {
    let (wp, gp) = layer(dir);
    let mut cmd = Command::new(exe);
    cmd.args(["refine-layer", "--weight"])
        .arg(&wp)
        .arg("--gram")
        .arg(&gp)
        .args(["--sparsity", "0.5", "--out"])
        .arg(out)
        .args(extra)
        .env_remove("SPARSESWAPS_PLUGIN_PATH");
    // A freshly copied binary may be briefly busy (ETXTBSY) while another test thread
    // forks: retry.
    for _ in 0..100 {
        match cmd.output() {
            Err(e) if e.raw_os_error() == Some(26) => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            r => return r.unwrap(),
        }
    }
    panic!("{} stayed busy", exe.display())
}

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_sparseswaps"))
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn backend_auto_works_without_a_gpu_and_names_the_backend() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.safetensors");
    let report = dir.path().join("r.json");
    let o = refine_layer(
        bin(),
        dir.path(),
        &out,
        &["--report", report.to_str().unwrap()],
    );
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let backend = json["report"]["backend"].as_str().unwrap().to_string();
    let search = json["options"]["search"].as_str().unwrap().to_string();
    // Auto is the default; without a usable GPU it runs on the CPU, says why, and
    // searches bounded; with one, CUDA runs the exhaustive search.
    match backend.as_str() {
        "cpu" => {
            assert!(
                stdout.contains("backend cpu")
                    && stdout.contains("backend auto       chose the CPU ("),
                "{stdout}"
            );
            assert_eq!(search, "bounded");
        }
        "cuda" => assert_eq!(search, "exhaustive"),
        other => panic!("unknown backend {other}"),
    }
    let mask = read_tensor_u8(&TensorSpec::parse(out.to_str().unwrap()), 2).unwrap();
    assert_eq!(mask.data.iter().filter(|&&m| m == 1).count(), 4 * 8);

    // The CPU asked for explicitly: the same mask, no note.
    let cpu = dir.path().join("cpu.safetensors");
    let o = refine_layer(bin(), dir.path(), &cpu, &["--backend", "cpu"]);
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stdout.contains("backend cpu") && !stdout.contains("backend auto"),
        "{stdout}"
    );
    let cpu_mask = read_tensor_u8(&TensorSpec::parse(cpu.to_str().unwrap()), 2).unwrap();
    if backend == "cpu" {
        assert_eq!(cpu_mask.data, mask.data);
    }

    // CUDA asked for where it cannot run: one line naming why, no output.
    if backend == "cpu" {
        let bad = dir.path().join("cuda.safetensors");
        let o = refine_layer(bin(), dir.path(), &bad, &["--backend", "cuda"]);
        let (_, stderr) = text(&o);
        assert!(!o.status.success());
        assert!(stderr.contains("CUDA"), "{stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(!bad.exists());
    }
    let o = refine_layer(bin(), dir.path(), &cpu, &["--backend", "tpu"]);
    assert!(!o.status.success());
}

#[test]
fn fallback_with_plugin_options_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    // A copy of the binary alone: nothing beside it, so no plugin library is found.
    let lone = dir.path().join("bin");
    std::fs::create_dir(&lone).unwrap();
    let exe = lone.join("sparseswaps");
    std::fs::copy(bin(), &exe).unwrap();
    let out = dir.path().join("m.safetensors");
    let o = refine_layer(
        &exe,
        dir.path(),
        &out,
        &["--warm-start", "magnitude", "--plugin-options", "alpha=0.5"],
    );
    let (_, stderr) = text(&o);
    assert!(!o.status.success());
    assert!(
        stderr.contains("options 'alpha=0.5' were given")
            && stderr.contains("the built-in magnitude takes no options"),
        "{stderr}"
    );
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(!out.exists());
    // Without options the same binary falls back, with a note.
    let o = refine_layer(&exe, dir.path(), &out, &["--warm-start", "magnitude"]);
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("using the built-in magnitude"), "{stderr}");
    assert!(
        stdout.contains("(built in: no plugin library found)"),
        "{stdout}"
    );
    // Options for a mask file are refused too.
    let spec = format!("mask:{}", out.display());
    let again = dir.path().join("m2.safetensors");
    let o = refine_layer(
        bin(),
        dir.path(),
        &again,
        &["--warm-start", &spec, "--plugin-options", "x"],
    );
    let (_, stderr) = text(&o);
    assert!(
        !o.status.success() && stderr.contains("a mask file takes no options"),
        "{stderr}"
    );
}
