//! Warm starts as plugins through the binary: `plugins list`, `refine-layer --warm-start
//! ria` end to end with the C example plugin (built here), the bundled plugins without
//! flags, and a clear error for an unknown name.

use sparseswaps_tensor_io::{read_tensor_u8, write_safetensors_atomic, OwnedTensor, TensorSpec};
use sparseswaps_testkit::layer_files::{gram_of_rows, write_layer_files};
use sparseswaps_testkit::{c_build, ria_ref};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

fn sparseswaps<S: AsRef<OsStr>>(args: &[S], env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sparseswaps"));
    cmd.args(args).env_remove("SPARSESWAPS_PLUGIN_PATH");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run sparseswaps")
}

/// Runs a command whose program was just written by this process. Another test thread
/// that forks between our write and its own exec briefly holds the file open for writing,
/// and exec then fails with ETXTBSY ("Text file busy"); that passes, so retry.
fn output_of_fresh_copy(cmd: &mut Command) -> Output {
    const ETXTBSY: i32 = 26;
    for _ in 0..100 {
        match cmd.output() {
            Err(e) if e.raw_os_error() == Some(ETXTBSY) => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            r => return r.unwrap(),
        }
    }
    panic!("{:?} stayed busy (ETXTBSY) for 2 s", cmd.get_program())
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `refine-layer --weight W --gram G` followed by `rest`.
fn refine_layer_args(wp: &Path, gp: &Path, rest: &[&str]) -> Vec<String> {
    [
        "refine-layer",
        "--weight",
        wp.to_str().unwrap(),
        "--gram",
        gp.to_str().unwrap(),
    ]
    .iter()
    .chain(rest)
    .map(|s| s.to_string())
    .collect()
}

/// The 0/1 mask written at `p`.
fn read_mask(p: &Path) -> Vec<u8> {
    read_tensor_u8(&TensorSpec::parse(p.to_str().unwrap()), 2)
        .unwrap()
        .data
}

/// The RIA example plugin, compiled once for this test binary.
fn ria_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = c_build::repo_root(env!("CARGO_MANIFEST_DIR"));
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-plugins/ria");
        c_build::build_c_plugin(
            &root,
            &root.join("plugins/examples/ria/ria.c"),
            &dir,
            "ria",
            &[],
        );
        dir
    })
}

/// A synthetic layer: weights and a Gram matrix of random activations with outliers.
fn layer(dir: &Path, d_out: usize, d_in: usize) -> (PathBuf, PathBuf, Vec<f32>, Vec<f32>) {
    let mut s = 0x1234_5678_9ABC_DEF1u64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        ((s >> 11) as f64 / (1u64 << 53) as f64 - 0.5) as f32
    };
    let w: Vec<f32> = (0..d_out * d_in).map(|_| next()).collect();
    let tokens = 4 * d_in;
    let x: Vec<f32> = (0..tokens * d_in)
        .map(|i| {
            if i % d_in % 11 == 4 {
                30.0 * next()
            } else {
                next()
            }
        })
        .collect();
    let g = gram_of_rows(&x, d_in);
    let (wp, gp) = write_layer_files(dir, &w, d_out, d_in, &g);
    (wp, gp, w, g)
}

#[test]
fn plugins_list_shows_bundled_and_extra_plugins() {
    let out = sparseswaps(&["plugins", "list"], &[]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.starts_with("NAME"), "{t}");
    for want in [
        "magnitude",
        "wanda",
        "unstructured, N:M",
        "libsparseswaps_warmstart_wanda",
    ] {
        assert!(t.contains(want), "missing {want}: {t}");
    }
    assert!(!t.contains("ria "), "{t}");
    // Each plugin's needed inputs, as its descriptor declares them.
    for (name, needs) in [
        ("sparsegpt ", "full Gram"),
        ("wanda ", "Gram diagonal"),
        ("magnitude ", "nothing declared"),
    ] {
        let line = t.lines().find(|l| l.starts_with(name));
        assert!(
            line.is_some_and(|l| l.contains(needs)),
            "{name}{needs}: {t}"
        );
    }
    let out = sparseswaps(
        &[
            "plugins",
            "list",
            "--plugin-dir",
            ria_dir().to_str().unwrap(),
        ],
        &[],
    );
    let t = text(&out);
    let ria_line = t
        .lines()
        .find(|l| l.starts_with("ria "))
        .unwrap_or_else(|| panic!("{t}"));
    assert!(
        ria_line.contains("1.0.0") && ria_line.contains("libria"),
        "{ria_line}"
    );
    assert!(
        t.contains(&format!("{} (--plugin-dir)", ria_dir().display())),
        "{t}"
    );
    // The same through the variable.
    let out = sparseswaps(
        &["plugins", "list"],
        &[("SPARSESWAPS_PLUGIN_PATH", ria_dir())],
    );
    assert!(
        text(&out).lines().any(|l| l.starts_with("ria ")),
        "{}",
        text(&out)
    );
}

#[test]
fn refine_layer_with_the_ria_plugin_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let (d_out, d_in) = (8, 32);
    let (wp, gp, w, g) = layer(dir.path(), d_out, d_in);
    let (m1, m2) = (
        dir.path().join("m1.safetensors"),
        dir.path().join("m2.safetensors"),
    );
    let report = dir.path().join("r.json");
    let args = |warm: &str, out: &Path| -> Vec<String> {
        refine_layer_args(
            &wp,
            &gp,
            &[
                "--sparsity",
                "0.5",
                "--warm-start",
                warm,
                "--plugin-dir",
                ria_dir().to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                "--report",
                report.to_str().unwrap(),
            ],
        )
    };
    let out = sparseswaps(&args("ria", &m1), &[]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("warm start         ria (plugin 1.0.0,"), "{t}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(json["warm_start_plugin"]["name"], "ria");

    // The same refinement from the reference RIA mask given as a file ends identically.
    let diag: Vec<f32> = (0..d_in).map(|j| g[j * d_in + j]).collect();
    let want = ria_ref::ria_mask(&w, d_out, d_in, &diag, 0.5, Err(16));
    let ref_mask = dir.path().join("ria_ref.safetensors");
    write_safetensors_atomic(
        &ref_mask,
        &[("mask".into(), OwnedTensor::u8(vec![d_out, d_in], want))],
        None,
    )
    .unwrap();
    let out = sparseswaps(&args(&format!("mask:{}", ref_mask.display()), &m2), &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(read_mask(&m1), read_mask(&m2));
    assert_eq!(
        read_mask(&m1).iter().map(|&v| v as usize).sum::<usize>(),
        d_out * d_in / 2
    );
}

#[test]
fn bundled_plugins_need_no_flags_and_unknown_names_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let (wp, gp, _, _) = layer(dir.path(), 4, 16);
    let out_path = dir.path().join("m.safetensors");
    let run = |warm: &str| {
        sparseswaps(
            &refine_layer_args(
                &wp,
                &gp,
                &[
                    "--pattern",
                    "2:4",
                    "--warm-start",
                    warm,
                    "--out",
                    out_path.to_str().unwrap(),
                ],
            ),
            &[],
        )
    };
    for name in ["magnitude", "wanda"] {
        let out = run(name);
        assert!(out.status.success(), "{name}: {}", text(&out));
        assert!(text(&out).contains(&format!("warm start         {name} (plugin")));
    }
    std::fs::remove_file(&out_path).unwrap();
    let out = run("nope");
    assert!(!out.status.success());
    let t = text(&out);
    assert!(
        t.contains("error: no warm-start plugin named 'nope'; searched (in order): ")
            && t.contains("(beside the binary)")
            && t.contains("(bundled)")
            && t.contains("plugins found: "),
        "{t}"
    );
    assert_eq!(t.lines().count(), 1, "one line: {t}");
    assert!(!out_path.exists());
}

#[test]
fn a_binary_without_plugins_falls_back_to_the_built_in_warm_starts() {
    let dir = tempfile::tempdir().unwrap();
    let (wp, gp, _, _) = layer(dir.path(), 4, 16);
    // A copy of the binary alone: nothing beside it, so no plugin is found.
    let lone = dir.path().join("bin");
    std::fs::create_dir(&lone).unwrap();
    let exe = lone.join("sparseswaps");
    std::fs::copy(env!("CARGO_BIN_EXE_sparseswaps"), &exe).unwrap();
    let run = |exe: &Path, out: &Path| {
        let mut cmd = Command::new(exe);
        cmd.args(refine_layer_args(
            &wp,
            &gp,
            &[
                "--sparsity",
                "0.5",
                "--warm-start",
                "wanda",
                "--out",
                out.to_str().unwrap(),
            ],
        ))
        .env_remove("SPARSESWAPS_PLUGIN_PATH");
        output_of_fresh_copy(&mut cmd)
    };
    let (m1, m2) = (
        dir.path().join("m1.safetensors"),
        dir.path().join("m2.safetensors"),
    );
    let out = run(&exe, &m1);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("note: no warm-start plugin named 'wanda'")
            && t.contains("using the built-in wanda")
            && t.contains("warm start         wanda (built in: no plugin library found)"),
        "{t}"
    );
    // Same mask as through the plugin.
    let out = run(Path::new(env!("CARGO_BIN_EXE_sparseswaps")), &m2);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(read_mask(&m1), read_mask(&m2));
}
