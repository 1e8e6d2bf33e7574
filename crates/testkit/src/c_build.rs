//! Compiles C sources with the system C compiler (`$CC`, else `cc`), for the tests that
//! build C plugins and programs (plugin-abi, plugin-host, cli).
//!
//! A compiler that cannot be run fails the test (everywhere, not only under CI): these
//! tests are the only check of the C ABI, so they never skip.
//!
//! Outputs go under the calling test's `CARGO_TARGET_TMPDIR`, so they are never committed
//! and work wherever `CARGO_TARGET_DIR` points. Each output is written under a temporary
//! name and renamed, so concurrent tests never load a half-written library.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root (two levels above a crate's manifest directory).
pub fn repo_root(manifest_dir: &str) -> PathBuf {
    Path::new(manifest_dir)
        .ancestors()
        .find(|p| p.join("plugins/include/sparseswaps_plugin.h").is_file())
        .expect("plugins/include/sparseswaps_plugin.h above the crate")
        .to_path_buf()
}

fn compiler() -> String {
    std::env::var("CC").unwrap_or_else(|_| "cc".to_string())
}

fn run(mut cmd: Command, out: &Path) {
    let tmp = out.with_extension(format!("tmp{}", std::process::id()));
    cmd.arg("-o").arg(&tmp);
    let res = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler {:?}: {e}", compiler()));
    assert!(
        res.status.success(),
        "C compiler failed: {cmd:?}\n{}",
        String::from_utf8_lossy(&res.stderr)
    );
    std::fs::rename(&tmp, out).unwrap();
}

/// Compiles `src` into an executable at `out`.
pub fn build_c_program(root: &Path, src: &Path, out: &Path) -> PathBuf {
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let mut cmd = Command::new(compiler());
    cmd.arg("-std=c11")
        .arg("-O1")
        .arg("-I")
        .arg(root.join("plugins/include"))
        .arg(src);
    run(cmd, out);
    out.to_path_buf()
}

/// Compiles `src` with `defines` (`NAME` or `NAME=VALUE`) into the shared library
/// `<dir>/<DLL_PREFIX><name><DLL_SUFFIX>`, and returns its path.
pub fn build_c_plugin(
    root: &Path,
    src: &Path,
    dir: &Path,
    name: &str,
    defines: &[&str],
) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let out = dir.join(format!(
        "{}{name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    let mut cmd = Command::new(compiler());
    cmd.args([
        "-std=c11",
        "-O2",
        "-shared",
        "-fPIC",
        "-fvisibility=hidden",
        "-Wall",
        "-Werror",
    ])
    .arg("-I")
    .arg(root.join("plugins/include"));
    for d in defines {
        cmd.arg(format!("-D{d}"));
    }
    cmd.arg(src).arg("-lm");
    run(cmd, &out);
    out
}
