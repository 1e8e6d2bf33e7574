//! The staging directory itself: its name, its owner, its leftovers, and fsync.

use crate::error::{io_err as io, Result};
use sparseswaps_tensor_io::write_atomic;
use std::path::{Path, PathBuf};

/// The staging directory of an output directory: `.NAME.partial` beside it.
pub fn staging_dir(out_dir: &Path) -> PathBuf {
    let parent = match out_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = out_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    parent.join(format!(".{name}.partial"))
}

/// fsyncs a directory, so the renames inside it survive a power loss.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io(dir))
}

/// fsyncs every file and directory under `dir` (and `dir`), so that files written
/// without their own fsync (the model directory) are durable before the final rename.
pub fn fsync_tree(dir: &Path) -> Result<()> {
    for e in std::fs::read_dir(dir).map_err(io(dir))? {
        let p = e.map_err(io(dir))?.path();
        if p.is_dir() {
            fsync_tree(&p)?;
        } else {
            std::fs::File::open(&p)
                .and_then(|f| f.sync_all())
                .map_err(io(&p))?;
        }
    }
    fsync_dir(dir)
}

/// Removes what a killed process may have left half-written in a staging directory:
/// temporaries (names starting with `.`) in it, in `checkpoint/` and in `layers/`, and
/// block files beyond `blocks_done` (written before the manifest that would count them).
pub fn clean_leftovers(staging: &Path, blocks_done: usize) -> Result<()> {
    for dir in [
        staging.to_path_buf(),
        staging.join("checkpoint"),
        staging.join("layers"),
    ] {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd {
            let e = e.map_err(io(&dir))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let stale_block = name
                .strip_prefix("block-")
                .and_then(|n| n.strip_suffix(".safetensors"))
                .and_then(|n| n.parse::<usize>().ok())
                .is_some_and(|l| l >= blocks_done);
            if name.starts_with('.') || stale_block {
                let p = e.path();
                let r = if p.is_dir() {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
                r.map_err(io(&p))?;
            }
        }
    }
    Ok(())
}

/// The process id recorded in `owner.pid`, when that process is still alive (Linux:
/// `/proc/PID` exists) and is not this one.
pub fn live_owner(staging: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(staging.join("owner.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (pid != std::process::id() && Path::new(&format!("/proc/{pid}")).exists()).then_some(pid)
}

/// Records this process as the staging directory's writer.
pub fn claim(staging: &Path) -> Result<()> {
    write_atomic(
        &staging.join("owner.pid"),
        std::process::id().to_string().as_bytes(),
    )?;
    Ok(())
}
