//! Recorded skips: the one way a test may decline to run.
//!
//! cargo captures a passing test's output, so a skip that only prints is invisible and a
//! run that tested nothing looks green. [`skip`] therefore also appends one line to the
//! file named by `SPARSESWAPS_SKIP_LOG` (which `.ci/run` sets and counts), and under CI
//! (`CI` set, as CI services do) it refuses to skip for want of what CI must have: the
//! test fails instead, with the reason.

use std::fmt::Display;
use std::io::Write;
use std::path::Path;

/// The environment variable that marks a CI run (set by CI services; `.ci/run` passes
/// it through).
pub const CI_VAR: &str = "CI";

/// The environment variable naming the file that skips are appended to.
pub const SKIP_LOG_VAR: &str = "SPARSESWAPS_SKIP_LOG";

/// What a test needs and did not find. It decides whether CI may skip without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// The real-model assets of `scripts/fetch-assets.sh`. CI must have them.
    Assets,
    /// A C or C++ compiler (plugins, the kernels' CPU emulation). CI must have one.
    Compiler,
    /// A usable CUDA GPU. CI machines have none, so this skip is legitimate everywhere.
    Gpu,
    /// A private mount namespace (`unshare`) for the tmpfs fault tests. Some sandboxes
    /// and container runtimes refuse user namespaces, so this skip is legitimate too.
    MountNamespace,
}

impl Need {
    /// Whether a CI run must have it (a missing one fails the test there).
    pub fn required_in_ci(self) -> bool {
        matches!(self, Need::Assets | Need::Compiler)
    }

    /// The need in words, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Need::Assets => "the real-model assets (scripts/fetch-assets.sh)",
            Need::Compiler => "a C/C++ compiler",
            Need::Gpu => "a CUDA GPU",
            Need::MountNamespace => "a private mount namespace (unshare)",
        }
    }
}

/// Whether a value of `CI` marks a CI run: set, non-empty, and not `false` or `0`.
pub fn ci_value_is_set(value: Option<&str>) -> bool {
    match value.map(str::trim) {
        None | Some("") | Some("0") => false,
        Some(v) => !v.eq_ignore_ascii_case("false"),
    }
}

/// Whether this process runs under CI (see [`ci_value_is_set`]).
pub fn in_ci() -> bool {
    ci_value_is_set(std::env::var(CI_VAR).ok().as_deref())
}

/// The running test as `binary::test` (libtest names each test's thread after the
/// test), or the binary alone in a custom harness's main thread.
pub fn test_name() -> String {
    let bin = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .map(|s| strip_cargo_hash(&s).to_string())
        .unwrap_or_else(|| "test".to_string());
    match std::thread::current().name() {
        Some(t) if t != "main" => format!("{bin}::{t}"),
        _ => bin,
    }
}

/// `smollm2_small-0123456789abcdef` → `smollm2_small` (cargo's 16-hex-digit suffix).
fn strip_cargo_hash(stem: &str) -> &str {
    match stem.rsplit_once('-') {
        Some((base, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            base
        }
        _ => stem,
    }
}

/// Skips the calling test for want of `need`, or fails it where CI must have `need`.
///
/// The first line of `reason` is its summary (the skip log's line); later lines are
/// detail, printed and part of the failure message. Outside CI, or for a need CI
/// legitimately lacks (a GPU), it prints `SKIPPED <test>: <reason>` to stderr, appends
/// `<test>: <summary>` to the file named by `SPARSESWAPS_SKIP_LOG` when that is set, and
/// returns: the caller then returns from the test. Under CI for a need CI must have, it
/// panics with the reason. A skip log that cannot be written panics too, so that no skip
/// goes unrecorded.
pub fn skip(need: Need, reason: impl Display) {
    let reason = reason.to_string();
    let name = test_name();
    if in_ci() && need.required_in_ci() {
        panic!(
            "{name}: FAILED under CI ({CI_VAR}={:?}) instead of skipping: CI must have {}. \
             {reason}",
            std::env::var(CI_VAR).unwrap_or_default(),
            need.describe()
        );
    }
    eprintln!("SKIPPED {name}: {reason}");
    if let Some(log) = std::env::var_os(SKIP_LOG_VAR).filter(|v| !v.is_empty()) {
        let line = log_line(&name, &reason);
        append(Path::new(&log), &line).unwrap_or_else(|e| {
            panic!(
                "{name}: cannot record the skip in {SKIP_LOG_VAR}={}: {e}",
                Path::new(&log).display()
            )
        });
    }
}

/// The skip log's line for a test: `<test>: <first line of the reason>`.
pub fn log_line(test: &str, reason: &str) -> String {
    let summary = reason.lines().map(str::trim).find(|l| !l.is_empty());
    format!("{test}: {}\n", summary.unwrap_or("(no reason given)"))
}

/// Appends `line` with one write on a file opened for appending, so that tests running
/// concurrently (threads and test binaries) never interleave their lines.
fn append(path: &Path, line: &str) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .write_all(line.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ci_values() {
        for (v, want) in [
            (None, false),
            (Some(""), false),
            (Some("0"), false),
            (Some("false"), false),
            (Some("FALSE"), false),
            (Some(" false "), false),
            (Some("true"), true),
            (Some("1"), true),
            (Some("yes"), true),
        ] {
            assert_eq!(ci_value_is_set(v), want, "{v:?}");
        }
    }

    #[test]
    fn cargo_hash_is_stripped_and_nothing_else() {
        assert_eq!(
            strip_cargo_hash("smollm2_small-0123456789abcdef"),
            "smollm2_small"
        );
        assert_eq!(
            strip_cargo_hash("resume_cli-0123456789ABCDEF"),
            "resume_cli"
        );
        assert_eq!(strip_cargo_hash("gpu"), "gpu");
        assert_eq!(strip_cargo_hash("model-cli"), "model-cli");
        assert_eq!(strip_cargo_hash("x-0123456789abcdeg"), "x-0123456789abcdeg");
    }

    #[test]
    fn test_name_is_binary_and_test() {
        assert!(
            test_name().ends_with("::skip::tests::test_name_is_binary_and_test"),
            "{}",
            test_name()
        );
    }

    #[test]
    fn log_line_is_the_first_non_blank_line() {
        assert_eq!(
            log_line("bin::t", "\n  no registry  \nstderr...\n"),
            "bin::t: no registry\n"
        );
        assert_eq!(log_line("bin", ""), "bin: (no reason given)\n");
    }

    #[test]
    fn needs_ci_must_have() {
        assert!(Need::Assets.required_in_ci());
        assert!(Need::Compiler.required_in_ci());
        assert!(!Need::Gpu.required_in_ci());
        assert!(!Need::MountNamespace.required_in_ci());
    }
}
