//! Plugins loaded as shared libraries: the RIA example (C) against a Rust reference, the
//! panicking Rust fixture, and every rejection the host must make, each naming the library.
//!
//! The C libraries are compiled by this test into `CARGO_TARGET_TMPDIR` (never committed).

use sparseswaps_core::Pattern;
use sparseswaps_plugin_host::{resolve, MaskInput, Plugin, PluginError, Registry, SearchPath};
use sparseswaps_testkit::{c_build, ria_ref};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn root() -> PathBuf {
    c_build::repo_root(env!("CARGO_MANIFEST_DIR"))
}

fn out_dir(tag: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("plugin-host-c")
        .join(tag)
}

/// The RIA example, built once per test binary, alone in its directory.
fn ria_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = out_dir("ria");
        let src = root().join("plugins/examples/ria/ria.c");
        c_build::build_c_plugin(&root(), &src, &dir, "ria", &[]);
        dir
    })
}

/// A broken fixture built with `-DMODE_<mode>`, alone in its directory.
fn fixture(mode: &str) -> PathBuf {
    let name = format!("fixture_{}", mode.to_lowercase());
    let src = root().join("plugins/fixtures/broken.c");
    let fixture_name = format!("FIXTURE_NAME=\"{name}\"");
    c_build::build_c_plugin(
        &root(),
        &src,
        &out_dir(&name),
        &name,
        &[&format!("MODE_{mode}"), &fixture_name],
    )
}

fn lib_name(stem: &str) -> String {
    format!(
        "{}{stem}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

/// Deterministic weights and an LLM-like Gram diagonal (a few 100x channels).
fn layer(rows: usize, cols: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let w = (0..rows * cols).map(|_| (next() - 0.5) as f32).collect();
    let d = (0..cols)
        .map(|j| {
            let base = 0.1 + next();
            (if j % 13 == 3 { 1e4 * base } else { base }) as f32
        })
        .collect();
    (w, d)
}

fn input<'a>(w: &'a [f32], rows: usize, cols: usize, diag: Option<&'a [f32]>) -> MaskInput<'a> {
    MaskInput {
        weights: w,
        rows,
        cols,
        gram_diag: diag,
        gram: None,
        options: None,
    }
}

fn err_text(e: PluginError) -> String {
    e.to_string()
}

/// The error text of a `compute_mask` call that must fail.
fn mask_err(p: &Plugin, input: &MaskInput, pattern: Pattern) -> String {
    err_text(p.compute_mask(input, &pattern).unwrap_err())
}

#[test]
fn ria_plugin_matches_the_rust_reference() {
    let reg = Registry::discover(&SearchPath::only(&[ria_dir().to_path_buf()]));
    let ria = reg.get("ria").unwrap();
    assert_eq!((ria.version(), ria.abi_version()), ("1.0.0", 1));
    assert_eq!(ria.pattern_names(), "unstructured, N:M");
    let (rows, cols) = (24, 64);
    let (w, diag) = layer(rows, cols, 1);
    for (pattern, spec) in [
        (Pattern::unstructured(0.5).unwrap(), Err(32)),
        (Pattern::unstructured(0.7).unwrap(), Err(19)),
        (Pattern::n_m(2, 4).unwrap(), Ok((2, 4))),
        (Pattern::n_m(1, 4).unwrap(), Ok((1, 4))),
    ] {
        let got = ria
            .compute_mask(&input(&w, rows, cols, Some(&diag)), &pattern)
            .unwrap();
        let want = ria_ref::ria_mask(&w, rows, cols, &diag, 0.5, spec);
        assert_eq!(got.as_slice(), &want[..], "pattern {pattern}");
    }
    // alpha from the options string; the full Gram alone is enough (its diagonal is read).
    let p = Pattern::unstructured(0.5).unwrap();
    let mut gram = vec![0.0f32; cols * cols];
    for j in 0..cols {
        gram[j * cols + j] = diag[j];
    }
    let opts = MaskInput {
        gram_diag: None,
        gram: Some(&gram),
        options: Some("alpha=1.0"),
        ..input(&w, rows, cols, None)
    };
    let got = ria.compute_mask(&opts, &p).unwrap();
    assert_eq!(
        got.as_slice(),
        &ria_ref::ria_mask(&w, rows, cols, &diag, 1.0, Err(32))[..]
    );
    // It differs from magnitude-like choices on this layer: the activation term matters.
    let flat = vec![1.0f32; cols];
    let got_flat = ria
        .compute_mask(&input(&w, rows, cols, Some(&flat)), &p)
        .unwrap();
    assert_ne!(got_flat.as_slice(), got.as_slice());
}

#[test]
fn ria_reports_its_own_errors() {
    let ria = Plugin::load(&ria_dir().join(lib_name("ria"))).unwrap();
    let (w, _) = layer(2, 8, 2);
    let p = Pattern::unstructured(0.5).unwrap();
    let e = mask_err(&ria, &input(&w, 2, 8, None), p);
    assert!(
        e.contains("plugin 'ria'")
            && e.contains("libria")
            && e.contains("needs the Gram diagonal")
            && e.contains("which this caller does not provide"),
        "{e}"
    );
    let d = [1.0f32; 8];
    let bad = MaskInput {
        options: Some("beta=2"),
        ..input(&w, 2, 8, Some(&d))
    };
    let e = mask_err(&ria, &bad, p);
    assert!(e.contains("bad options 'beta=2'"), "{e}");
}

#[test]
fn discovery_order_naming_and_shadowing() {
    // The file name does not matter: the descriptor's name does.
    let dir = out_dir("renamed");
    std::fs::create_dir_all(&dir).unwrap();
    let renamed = dir.join(lib_name("my_favourite_warm_start"));
    std::fs::copy(ria_dir().join(lib_name("ria")), &renamed).unwrap();
    let reg = Registry::discover(&SearchPath::only(std::slice::from_ref(&dir)));
    assert_eq!(reg.get("ria").unwrap().path(), renamed);
    // First in search order wins; the other is listed as shadowed.
    let env = std::env::join_paths([ria_dir()]).unwrap();
    let sp = SearchPath::from_parts(None, std::slice::from_ref(&dir), Some(&env));
    let reg = Registry::discover(&sp);
    assert_eq!(reg.get("ria").unwrap().path(), renamed);
    assert_eq!(reg.shadowed().len(), 1);
    assert_eq!(reg.shadowed()[0].path(), ria_dir().join(lib_name("ria")));
    // The variable's directories are searched too.
    let sp = SearchPath::from_parts(None, &[], Some(&env));
    assert!(Registry::discover(&sp).get("ria").is_ok());
    // A spec with a path loads that file.
    let p = resolve(renamed.to_str().unwrap(), &SearchPath::only(&[])).unwrap();
    assert_eq!(p.name(), "ria");
}

#[test]
fn unknown_name_lists_the_paths_searched() {
    let missing = out_dir("no-such-dir");
    let sp = SearchPath::only(&[ria_dir().to_path_buf(), missing.clone()]);
    let e = err_text(resolve("nope", &sp).unwrap_err());
    assert!(
        e.contains("no warm-start plugin named 'nope'")
            && e.contains(&format!("{} (--plugin-dir)", ria_dir().display()))
            && e.contains(&missing.display().to_string())
            && e.contains("plugins found: ria"),
        "{e}"
    );
    // An explicit library path that does not exist.
    let path = missing.join(lib_name("ghost"));
    let e = err_text(resolve(path.to_str().unwrap(), &sp).unwrap_err());
    assert_eq!(e, format!("{}: plugin library not found", path.display()));
}

#[test]
fn not_a_shared_library() {
    let dir = out_dir("garbage");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(lib_name("garbage"));
    std::fs::write(&path, "this is not an ELF file\n").unwrap();
    let e = err_text(Plugin::load(&path).unwrap_err());
    assert!(
        e.starts_with(&format!(
            "{}: not a loadable shared library (",
            path.display()
        )),
        "{e}"
    );
    // Discovery skips it, and says so when a lookup fails.
    let reg = Registry::discover(&SearchPath::only(std::slice::from_ref(&dir)));
    assert_eq!(reg.skipped().len(), 1);
    let e = err_text(reg.get("x").unwrap_err());
    assert!(
        e.contains("libraries skipped") && e.contains("not a loadable"),
        "{e}"
    );
}

#[test]
fn missing_entry_symbol() {
    let path = fixture("NO_ENTRY");
    let e = err_text(Plugin::load(&path).unwrap_err());
    assert_eq!(
        e,
        format!(
            "{}: no entry symbol `sparseswaps_plugin_v1` (not a sparseswaps plugin)",
            path.display()
        )
    );
    let path = fixture("V2_ONLY");
    let e = err_text(Plugin::load(&path).unwrap_err());
    assert!(
        e.starts_with(&path.display().to_string())
            && e.contains(
                "it exports `sparseswaps_plugin_v2`: built for another ABI major version"
            ),
        "{e}"
    );
}

#[test]
fn wrong_abi_version() {
    let path = fixture("WRONG_ABI");
    let e = err_text(Plugin::load(&path).unwrap_err());
    assert_eq!(
        e,
        format!(
            "{}: plugin 'fixture_wrong_abi' was built for plugin ABI version 2, this host speaks version 1",
            path.display()
        )
    );
}

#[test]
fn struct_size_too_small() {
    let path = fixture("SMALL_STRUCT");
    let e = err_text(Plugin::load(&path).unwrap_err());
    assert!(
        e.starts_with(&format!(
            "{}: descriptor struct_size 16 is smaller than the",
            path.display()
        )),
        "{e}"
    );
}

#[test]
fn plugin_error_code_and_message_are_shown() {
    let path = fixture("FAILS");
    let p = Plugin::load(&path).unwrap();
    let (w, d) = layer(2, 8, 3);
    let e = mask_err(
        &p,
        &input(&w, 2, 8, Some(&d)),
        Pattern::unstructured(0.5).unwrap(),
    );
    assert_eq!(
        e,
        format!(
            "plugin 'fixture_fails' ({}) failed with status 4 (failed): out of cheese in row 3",
            path.display()
        )
    );
}

#[test]
fn rust_plugin_panic_is_caught_and_reported() {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .join(lib_name("sparseswaps_plugin_fixture_panic"));
    let p = Plugin::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.name(), "panicky");
    let (w, d) = layer(3, 8, 4);
    for _ in 0..2 {
        // Twice: the process and the plugin survive a caught panic.
        let e = mask_err(&p, &input(&w, 3, 8, Some(&d)), Pattern::n_m(2, 4).unwrap());
        assert_eq!(
            e,
            format!(
                "plugin 'panicky' ({}) failed with status 5 (panic): plugin panicked: fixture panics on a 3x8 layer",
                path.display()
            )
        );
    }
}

#[test]
fn mask_with_a_wrong_row_count_is_rejected() {
    let path = fixture("BAD_COUNT");
    let p = Plugin::load(&path).unwrap();
    let (w, d) = layer(3, 8, 5);
    let e = mask_err(
        &p,
        &input(&w, 3, 8, Some(&d)),
        Pattern::unstructured(0.5).unwrap(),
    );
    assert_eq!(
        e,
        format!(
            "plugin 'fixture_bad_count' ({}) returned an invalid mask: row 1 keeps 5 weights, pattern 0.5 requires 4",
            path.display()
        )
    );
    // The same plugin is fine for N:M.
    p.compute_mask(&input(&w, 3, 8, Some(&d)), &Pattern::n_m(2, 4).unwrap())
        .unwrap();
}

#[test]
fn mask_breaking_n_m_is_rejected() {
    let path = fixture("BAD_NM");
    let p = Plugin::load(&path).unwrap();
    let (w, d) = layer(2, 12, 6);
    let e = mask_err(&p, &input(&w, 2, 12, Some(&d)), Pattern::n_m(2, 4).unwrap());
    assert_eq!(
        e,
        format!(
            "plugin 'fixture_bad_nm' ({}) returned an invalid mask: row 0, group 1 (columns 4..8) keeps 3, pattern 2:4 requires 2",
            path.display()
        )
    );
}

#[test]
fn unsupported_pattern_is_refused_before_the_call() {
    let path = fixture("UNSTRUCTURED_ONLY");
    let p = Plugin::load(&path).unwrap();
    let (w, d) = layer(2, 8, 7);
    let e = mask_err(&p, &input(&w, 2, 8, Some(&d)), Pattern::n_m(2, 4).unwrap());
    assert_eq!(
        e,
        format!(
            "plugin 'fixture_unstructured_only' ({}) does not support N:M patterns (it supports: unstructured)",
            path.display()
        )
    );
    let m = p
        .compute_mask(
            &input(&w, 2, 8, Some(&d)),
            &Pattern::unstructured(0.25).unwrap(),
        )
        .unwrap();
    assert_eq!(m.row(0), &[1, 1, 1, 1, 1, 1, 0, 0]);
}

#[test]
fn inputs_are_checked_before_the_call() {
    let ria = Plugin::load(&ria_dir().join(lib_name("ria"))).unwrap();
    let (w, d) = layer(2, 8, 8);
    let e = mask_err(
        &ria,
        &input(&w[..15], 2, 8, Some(&d)),
        Pattern::unstructured(0.5).unwrap(),
    );
    assert!(e.contains("weights have 15 values, expected 2 x 8"), "{e}");
    let e = mask_err(
        &ria,
        &input(&w, 2, 8, Some(&d[..7])),
        Pattern::unstructured(0.5).unwrap(),
    );
    assert!(e.contains("Gram diagonal has 7 values"), "{e}");
    let e = mask_err(
        &ria,
        &input(&w, 2, 8, Some(&d)),
        Pattern::n_m(1, 3).unwrap(),
    );
    assert!(e.contains("does not divide"), "{e}");
}
