//! `sparseswaps run` stopped and resumed, run twice, and run into faults, on SmolLM2-135M
//! at the small CI size (8 x 256 calibration tokens, 10 swaps per row, the first few
//! blocks): a run killed with SIGKILL after a random finished block, and again while
//! writing its outputs, resumes to masks, model and report bit-identical to an
//! uninterrupted run; one and two threads give the same bytes; every refused resume and
//! every I/O fault ends with one line naming what is at fault and no finished-looking
//! output.

use serde_json::Value;
use sparseswaps_testkit::{skip, Need};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_sparseswaps");

/// The folder of the fetched assets; `None` (a recorded skip) only when the registries
/// cannot be reached outside CI (see `sparseswaps_testkit::assets`).
fn assets() -> Option<PathBuf> {
    sparseswaps_testkit::assets().map(|a| a.dir().to_path_buf())
}

/// The small CI configuration, pruning blocks `0..blocks`; `calib` is the calibration
/// text, `extra` is appended.
fn config(assets: &Path, calib: &Path, out: &Path, blocks: usize, extra: &str) -> String {
    let include: Vec<String> = (0..blocks)
        .map(|l| format!("\"model.layers.{l}.*\""))
        .collect();
    format!(
        r#"
[model]
path = "{a}/smollm2-135m-instruct-q4_1.gguf"
dtype = "bf16"
[calibration]
text = "{c}"
samples = 8
seq_len = 256
seed = 1
[targets]
include = [{inc}]
[pattern]
sparsity = 0.5
[refine]
max_swaps = 10
[output]
dir = "{o}"
plot = false
{extra}
"#,
        a = assets.display(),
        c = calib.display(),
        o = out.display(),
        inc = include.join(", ")
    )
}

fn cli(args: &[&str], threads: Option<&str>) -> Output {
    let mut c = Command::new(BIN);
    c.arg("run").args(args);
    if let Some(t) = threads {
        c.env("RAYON_NUM_THREADS", t);
    }
    c.output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The last stderr line (the error), after checking the run failed.
fn error_line(o: &Output) -> String {
    assert!(!o.status.success(), "expected a failure: {}", stderr(o));
    let e = stderr(o);
    let last = e.trim_end().lines().last().unwrap_or("").to_string();
    assert!(last.starts_with("error: "), "{e}");
    last
}

fn staging(out: &Path) -> PathBuf {
    out.with_file_name(format!(
        ".{}.partial",
        out.file_name().unwrap().to_string_lossy()
    ))
}

/// Blocks finished according to the checkpoint manifest (0 when there is none yet).
fn blocks_done(out: &Path) -> usize {
    std::fs::read(staging(out).join("checkpoint/manifest.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| v["blocks_done"].as_u64())
        .map_or(0, |n| n as usize)
}

/// Waits until `ready()` or the child exits (a panic then, with its stderr).
fn wait_for(child: &mut Child, what: &str, ready: &dyn Fn() -> bool) {
    while !ready() {
        if let Some(status) = child.try_wait().unwrap() {
            let mut e = String::new();
            if let Some(mut s) = child.stderr.take() {
                use std::io::Read;
                let _ = s.read_to_string(&mut e);
            }
            panic!("run exited ({status}) before {what}: {e}");
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

fn spawn(cfg: &Path, args: &[&str]) -> Child {
    Command::new(BIN)
        .arg("run")
        .arg(cfg)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// SIGKILL and reap, so that the pid is gone (not a zombie) when the next run checks it.
fn kill9(mut child: Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A report without what legitimately changes between runs: timings, peak memory.
fn report_sans_timings(dir: &Path) -> Value {
    let mut v: Value =
        serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
    let o = v.as_object_mut().unwrap();
    o.remove("total_seconds");
    o.remove("peak_memory_bytes");
    o.remove("memory");
    for l in o["layers"].as_array_mut().unwrap() {
        l.as_object_mut().unwrap().remove("seconds");
    }
    for p in ["dense_ppl", "pruned_ppl"] {
        if let Some(p) = o.get_mut(p).and_then(|p| p.as_object_mut()) {
            p.remove("seconds");
        }
    }
    v
}

/// A seed from the clock, printed, so a failing draw can be replayed with
/// `SPARSESWAPS_TEST_SEED`.
fn seed() -> u64 {
    let s = std::env::var("SPARSESWAPS_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos() as u64
        });
    eprintln!("seed {s} (SPARSESWAPS_TEST_SEED={s} replays it)");
    s
}

#[test]
fn sigkill_after_a_random_block_and_while_writing_then_resume_is_bit_identical() {
    let Some(assets) = assets() else { return };
    let dir = tempfile::tempdir().unwrap();
    let calib = assets.join("brown.txt");
    let blocks = 3;
    // The uninterrupted reference.
    let reference = dir.path().join("reference");
    let ref_cfg = dir.path().join("ref.toml");
    std::fs::write(&ref_cfg, config(&assets, &calib, &reference, blocks, "")).unwrap();
    let o = cli(&[ref_cfg.to_str().unwrap(), "--quiet"], None);
    assert!(o.status.success(), "{}", stderr(&o));

    let out = dir.path().join("killed");
    let cfg = dir.path().join("p.toml");
    std::fs::write(&cfg, config(&assets, &calib, &out, blocks, "")).unwrap();
    let n = 1 + (seed() % (blocks as u64 - 1)) as usize;
    eprintln!("killing after block {n} of {blocks} is finished");
    let mut child = spawn(&cfg, &["--quiet"]);
    wait_for(&mut child, "the checkpoint of block n", &|| {
        blocks_done(&out) >= n
    });
    // While it runs, a second process may not touch its staging directory.
    let live = cli(&[cfg.to_str().unwrap(), "--resume"], None);
    let e = error_line(&live);
    assert!(
        e.contains("is being written by a running sparseswaps (pid"),
        "{e}"
    );
    kill9(child);
    let done = blocks_done(&out);
    eprintln!("killed with {done} blocks checkpointed");
    assert!(done >= n && done <= blocks);
    assert!(!out.exists(), "a killed run left a finished-looking output");

    // Resume, and kill it again while it writes the model: every block pruned, the
    // blocks after the last target being copied into the staged shard, which is still
    // under its temporary name.
    let mut child = spawn(&cfg, &["--resume"]);
    let st = staging(&out);
    wait_for(&mut child, "writing the model", &|| {
        blocks_done(&out) == blocks && st.join("model/.model.safetensors.partial").exists()
    });
    kill9(child);
    assert!(
        !out.exists(),
        "a run killed while writing left a finished-looking output"
    );
    assert!(!st.join("report.json").exists());
    assert_eq!(blocks_done(&out), blocks);

    // Resume once more: nothing left to prune, only the outputs to write.
    let o = cli(&[cfg.to_str().unwrap(), "--resume"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("resuming from block {blocks} of {blocks}")),
        "{}",
        stderr(&o)
    );
    assert!(!st.exists(), "staging directory left after success");
    assert!(
        !out.join("checkpoint").exists(),
        "checkpoint left in output"
    );
    assert!(!out.join("owner.pid").exists());
    for f in ["masks.safetensors", "model/model.safetensors"] {
        assert!(
            std::fs::read(out.join(f)).unwrap() == std::fs::read(reference.join(f)).unwrap(),
            "{f} differs from the uninterrupted run"
        );
    }
    let (mut a, b) = (report_sans_timings(&out), report_sans_timings(&reference));
    // The only config difference is the output directory.
    a["config"]["output"]["dir"] = b["config"]["output"]["dir"].clone();
    assert_eq!(a, b, "report differs from the uninterrupted run");
}

#[test]
fn one_and_two_threads_give_identical_masks_and_reports() {
    let Some(assets) = assets() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let cfg = dir.path().join("p.toml");
    let eval = format!(
        "[eval]\ntext = \"{}\"\nseq_len = 128\nwindows = 2\ndense = false\n",
        assets.join("moby-dick.txt").display()
    );
    std::fs::write(
        &cfg,
        config(&assets, &assets.join("brown.txt"), &out, 2, &eval)
            .replace("plot = false", "plot = false\nmodel = false"),
    )
    .unwrap();
    let c = cfg.to_str().unwrap();
    let o = cli(&[c, "--quiet"], Some("1"));
    assert!(o.status.success(), "{}", stderr(&o));
    let one = dir.path().join("one");
    std::fs::rename(&out, &one).unwrap();
    let o = cli(&[c, "--quiet"], Some("2"));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        std::fs::read(out.join("masks.safetensors")).unwrap()
            == std::fs::read(one.join("masks.safetensors")).unwrap(),
        "masks differ between 1 and 2 threads"
    );
    let (a, b) = (report_sans_timings(&out), report_sans_timings(&one));
    assert!(a["pruned_ppl"]["ppl"].as_f64().unwrap() > 1.0);
    assert_eq!(a, b, "reports differ between 1 and 2 threads");

    // A finished output has nothing to resume, and stays as it is.
    let before = std::fs::read(out.join("report.json")).unwrap();
    let e = error_line(&cli(&[c, "--resume"], None));
    assert!(
        e.contains("resume refused: no checkpoint of")
            && e.contains("(the output is already finished)"),
        "{e}"
    );
    assert_eq!(std::fs::read(out.join("report.json")).unwrap(), before);
}

/// Every way a resume is refused, on one checkpoint of a killed run; none of them
/// changes the checkpoint or leaves a finished-looking output.
#[test]
fn refused_resumes_name_what_differs() {
    let Some(assets) = assets() else { return };
    let dir = tempfile::tempdir().unwrap();
    // A private copy of the calibration text, to change it.
    let calib = dir.path().join("brown.txt");
    std::fs::copy(assets.join("brown.txt"), &calib).unwrap();
    let out = dir.path().join("out");
    let cfg = dir.path().join("p.toml");
    let text = config(&assets, &calib, &out, 2, "");
    std::fs::write(&cfg, &text).unwrap();
    let c = cfg.to_str().unwrap();
    let mut child = spawn(&cfg, &["--quiet"]);
    wait_for(&mut child, "the checkpoint of block 0", &|| {
        blocks_done(&out) >= 1
    });
    kill9(child);
    let st = staging(&out);
    let manifest = st.join("checkpoint/manifest.json");
    let saved = std::fs::read(&manifest).unwrap();
    let check = |o: Output, needles: &[&str]| {
        let e = error_line(&o);
        for n in needles {
            assert!(e.contains(n), "'{n}' not in: {e}");
        }
        assert!(!out.exists(), "finished-looking output after: {e}");
        assert_eq!(
            std::fs::read(&manifest).unwrap(),
            saved,
            "checkpoint changed by: {e}"
        );
    };

    // A leftover staging directory without --resume.
    check(
        cli(&[c], None),
        &[
            "holds an unfinished run of",
            "blocks checkpointed",
            "--resume",
            "--force",
        ],
    );
    // --resume and --force together.
    check(
        cli(&[c, "--resume", "--force"], None),
        &["--resume and --force exclude each other"],
    );
    // The config changed between the run and the resume.
    std::fs::write(&cfg, text.replace("samples = 8", "samples = 4")).unwrap();
    check(
        cli(&[c, "--resume"], None),
        &[
            "resume refused: calibration.samples differs from the checkpoint in",
            "manifest.json (4 now, 8 in the checkpoint)",
        ],
    );
    std::fs::write(&cfg, text.replace("max_swaps = 10", "max_swaps = \"none\"")).unwrap();
    check(
        cli(&[c, "--resume"], None),
        &["resume refused: refine.max_swaps differs"],
    );
    std::fs::write(&cfg, &text).unwrap();
    // An input file changed between the run and the resume.
    let original = std::fs::read(&calib).unwrap();
    let mut changed = original.clone();
    changed.extend_from_slice(b"One more sentence .\n");
    std::fs::write(&calib, &changed).unwrap();
    check(
        cli(&[c, "--resume"], None),
        &[&format!(
            "resume refused: input {} changed since the checkpoint",
            calib.display()
        )],
    );
    std::fs::write(&calib, &original).unwrap();
    // --resume of an output that never ran.
    let other = dir.path().join("other.toml");
    std::fs::write(
        &other,
        config(&assets, &calib, &dir.path().join("never"), 2, ""),
    )
    .unwrap();
    check(
        cli(&[other.to_str().unwrap(), "--resume"], None),
        &[
            "resume refused: no checkpoint of",
            "never.partial does not exist",
        ],
    );
    // A damaged block file (not something a kill can do: the files are renamed into
    // place whole) is named, and the run stops before writing anything.
    let block = st.join("checkpoint/block-00000.safetensors");
    let bytes = std::fs::read(&block).unwrap();
    std::fs::write(&block, &bytes[..bytes.len() / 2]).unwrap();
    check(
        cli(&[c, "--resume"], None),
        &["block-00000.safetensors", "not a valid safetensors file"],
    );
    // A damaged manifest.
    std::fs::write(&manifest, b"{ not json").unwrap();
    let e = error_line(&cli(&[c, "--resume"], None));
    assert!(
        e.contains("manifest.json: not a checkpoint manifest"),
        "{e}"
    );
    assert!(!out.exists());
}

/// Runs `sparseswaps run` inside a private mount namespace (`unshare`), with a tmpfs
/// mounted at `mnt` with `opts`; returns the output and the listing of `mnt` after the
/// run, or `None` (a recorded skip, see `sparseswaps_testkit::skip`) where namespaces or
/// tmpfs mounts are not available.
fn run_on_tmpfs(mnt: &Path, opts: &str, cfg: &Path) -> Option<(Output, String)> {
    let script = format!(
        "mount -t tmpfs -o {opts} tmpfs '{m}' || exit 97; '{BIN}' run '{c}' --quiet; rc=$?; echo \"listing: $(ls -A '{m}' | tr '\\n' ' ')\" 1>&2; exit $rc",
        m = mnt.display(),
        c = cfg.display()
    );
    let o = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c", &script])
        .output();
    let o = match o {
        Ok(o) => o,
        Err(e) => {
            skip(
                Need::MountNamespace,
                format!("cannot run unshare to mount a private tmpfs: {e}"),
            );
            return None;
        }
    };
    let e = stderr(&o);
    if o.status.code() == Some(97) || e.contains("unshare:") {
        skip(
            Need::MountNamespace,
            format!("no private mount namespace with a tmpfs here: {}", e.trim()),
        );
        return None;
    }
    let listing = e
        .lines()
        .find_map(|l| l.strip_prefix("listing: "))
        .unwrap_or("")
        .trim()
        .to_string();
    // The error line comes before the listing.
    Some((o, listing))
}

fn error_before_listing(o: &Output) -> String {
    assert!(!o.status.success(), "expected a failure: {}", stderr(o));
    stderr(o)
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line: {}", stderr(o)))
        .to_string()
}

#[test]
fn read_only_output_directory_fails_cleanly() {
    let Some(assets) = assets() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("ro");
    std::fs::create_dir(&mnt).unwrap();
    let cfg = dir.path().join("p.toml");
    std::fs::write(
        &cfg,
        config(&assets, &assets.join("brown.txt"), &mnt.join("out"), 1, ""),
    )
    .unwrap();
    // A read-only mount refuses writes even to root, where chmod would not.
    let Some((o, listing)) = run_on_tmpfs(&mnt, "ro", &cfg) else {
        return;
    };
    let e = error_before_listing(&o);
    assert!(
        e.contains(".out.partial") && e.contains("Read-only file system"),
        "{e}"
    );
    assert_eq!(listing, "", "left in the read-only directory: {listing}");
}

#[test]
fn full_output_filesystem_keeps_the_checkpoint_and_no_output() {
    let Some(assets) = assets() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let cfg = dir.path().join("p.toml");
    std::fs::write(
        &cfg,
        config(&assets, &assets.join("brown.txt"), &mnt.join("out"), 3, ""),
    )
    .unwrap();
    // Room for the staged model's embedding and block 0 (63.7 MB of bf16 in the shard
    // being filled) and block 0's checkpoint (3.5 MB of masks, 4.7 MB of hidden
    // states): 72 MB; not for block 1's 7.1 MB more in the shard.
    let Some((o, listing)) = run_on_tmpfs(&mnt, "size=74m", &cfg) else {
        return;
    };
    let e = error_before_listing(&o);
    assert!(
        e.contains("model/model.safetensors") && e.contains("No space left on device"),
        "{e}"
    );
    assert!(
        e.contains("1 of 3 blocks are checkpointed") && e.contains("--resume"),
        "{e}"
    );
    assert_eq!(
        listing, ".out.partial",
        "only the staging directory may be left"
    );
}
