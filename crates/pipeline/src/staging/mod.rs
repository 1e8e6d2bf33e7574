//! Staging and checkpoints: where a run writes until it is finished, so that a failed
//! run leaves nothing that looks finished and a run stopped at block 25 of 32 does not
//! cost the first 24.
//!
//! A run works in a staging directory beside its output, `.NAME.partial` (a stable name,
//! so a later `--resume` finds it), which is renamed to `NAME` only when every output is
//! written ([`Staging::publish`]). Whether a run starts fresh, resumes or is refused is
//! decided from that directory before any expensive work ([`decide`]). Inside it,
//! `checkpoint/` holds:
//!
//! - `manifest.json` ([`manifest`]): the checkpoint format, the sparseswaps version, the
//!   config (its canonical JSON form, defaults filled in), the sha256 of every input, how
//!   many blocks are finished, the report rows of their layers, the dense perplexity when
//!   it was evaluated, and the seconds spent so far;
//! - `block-NNNNN.safetensors` per finished block ([`blocks`]): for each target,
//!   `mask/NAME` (u8, 1 = kept);
//! - `hidden-NNNNN.safetensors`: the hidden states (f32, one tensor `h.I` per
//!   micro-batch) that the last finished block hands to the next. Only the latest is
//!   kept: the previous one is deleted once the manifest that no longer needs it is
//!   durable.
//!
//! Beside `checkpoint/`, `model/` is the pruned model being written (format 2 of the
//! checkpoint): its shards (`model-0000i-of-0000N.safetensors`, transformers' layout,
//! in the written dtype) are written as the blocks finish, in the fixed order
//! embedding, blocks, final norm, head, each shard under the temporary name
//! `.FILE.partial` until its last tensor is in, then synced and renamed. The shards are
//! the checkpoint of the pruned weights, so the checkpoint's own size does not grow
//! with the model: the writer is synced before each manifest, and a manifest counting
//! `blocks_done` blocks guarantees that the embedding and blocks `0..blocks_done` are
//! durable in `model/` (in finished shards and in the one `.partial` being filled). A
//! resumed run reopens that `.partial` at the first tensor of block `blocks_done` and
//! removes every later shard file (see `ShardWriter::resume` in tensor-io): whatever a
//! killed process wrote past its last manifest is written again, at the same offsets,
//! with the same bytes, because the shard plan (every file's header and every tensor's
//! offset) is a function of the model's config, the dtype and `output.shard_size`
//! alone. The pruned evaluation loads the finished `model/` (a resumed run's earlier
//! blocks included): it sees the weights as written, in the output dtype (the same
//! values as the f32 weights of the block loop for an f32 output, and for bf16/f16
//! outputs of a bf16/f16 source pruned by masks alone, whose kept weights are the
//! source's). `model/` is written even when `output.model = false` (it is the
//! checkpoint of the pruned weights) and removed before publishing then.
//!
//! Every file is written under a temporary name, fsynced and renamed, and the directory
//! is fsynced after the block files and again after the manifest, so that the manifest
//! never counts a block whose files are not on disk. `owner.pid` beside `checkpoint/`
//! names the process writing the staging directory ([`dir`]), so that a second process
//! does not write into a live run.

pub mod blocks;
pub mod dir;
pub mod manifest;

pub use blocks::{read_block, read_hidden, remove_hidden, write_block, write_hidden, BlockTargets};
pub use dir::{claim, clean_leftovers, fsync_dir, fsync_tree, live_owner, staging_dir};
pub use manifest::{
    check_resumable, first_difference, manifest_path, read_manifest, write_manifest, Manifest,
    FORMAT,
};

use crate::error::{io_err as io, PipelineError, Result};
use crate::events::{Event, Events};
use std::path::{Path, PathBuf};

/// How a run starts, decided by [`decide`] from the output and staging directories.
#[derive(Debug)]
pub struct Start {
    /// The staging directory (`.NAME.partial` beside the output).
    pub path: PathBuf,
    /// The checkpoint continued (`--resume`), or `None` for a fresh run.
    pub manifest: Option<Manifest>,
    /// Whether the finished run may replace an existing output: `--force`, or a resumed
    /// run whose checkpoint was forced.
    pub force: bool,
}

/// Refuses, looking at the output path only, what no staging directory can change:
/// `--resume` with `--force`, and an existing output without either.
pub fn check_output(out_dir: &Path, force: bool, resume: bool) -> Result<()> {
    if resume && force {
        return Err(PipelineError::Input(format!(
            "--resume and --force exclude each other: --resume continues the checkpoint in {}, --force discards it",
            staging_dir(out_dir).display()
        )));
    }
    if out_dir.exists() && !force && !resume {
        return Err(PipelineError::OutputExists(out_dir.into()));
    }
    Ok(())
}

/// Decides between a fresh run, a resumed one and a refusal from what the staging
/// directory of `out_dir` holds, before any expensive work: a live writer, an unfinished
/// run without `--resume` or `--force`, no checkpoint to resume, or a checkpoint of
/// another config (`config`, canonical JSON) are refused. The inputs' checksums are
/// compared later, by [`check_resumable`], once they are computed.
pub fn decide(
    out_dir: &Path,
    force: bool,
    resume: bool,
    config: &serde_json::Value,
    events: Events<'_>,
) -> Result<Start> {
    check_output(out_dir, force, resume)?;
    let path = staging_dir(out_dir);
    let mut manifest: Option<Manifest> = None;
    if path.exists() {
        if let Some(pid) = live_owner(&path) {
            return Err(PipelineError::Unfinished(format!(
                "{} is being written by a running sparseswaps (pid {pid}); wait for it or stop it first",
                path.display()
            )));
        }
        if resume {
            manifest = read_manifest(&path)?;
            match &manifest {
                Some(m) => check_resumable(m, &path, config, None)?,
                None => events(Event::Note(format!(
                    "{} holds no checkpoint manifest (the run stopped before its first checkpoint): starting from the beginning",
                    path.display()
                ))),
            }
        } else if !force {
            let done = match read_manifest(&path) {
                Ok(Some(m)) => format!("{} of {} blocks checkpointed", m.blocks_done, m.blocks),
                _ => "no block checkpointed".into(),
            };
            return Err(PipelineError::Unfinished(format!(
                "{} holds an unfinished run of {} ({done}); rerun with --resume to continue it or --force to discard it",
                path.display(),
                out_dir.display()
            )));
        }
    } else if resume {
        return Err(PipelineError::Resume(format!(
            "no checkpoint of {} to resume: {} does not exist{}",
            out_dir.display(),
            path.display(),
            if out_dir.exists() {
                " (the output is already finished)"
            } else {
                ""
            }
        )));
    }
    // A resumed run may replace an existing output only when the run it continues could.
    let force = force || manifest.as_ref().is_some_and(|m| m.force);
    if out_dir.exists() && !force {
        return Err(PipelineError::OutputExists(out_dir.into()));
    }
    Ok(Start {
        path,
        manifest,
        force,
    })
}

/// The staging directory of a run, claimed by this process. Dropping it removes the
/// directory unless it holds a checkpoint worth resuming ([`Staging::keep`]) or has been
/// renamed into place.
#[derive(Debug)]
pub struct Staging {
    path: PathBuf,
    keep: bool,
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

impl Staging {
    /// Makes (for a fresh run) and claims the staging directory of `start`. It is made
    /// before the long checksumming and loading, so that an unwritable output directory
    /// fails at once and a second process sees this one; a failure before the first
    /// checkpoint removes it again.
    pub fn open(start: &Start) -> Result<Staging> {
        let fresh = start.manifest.is_none();
        let staging = Staging {
            path: start.path.clone(),
            keep: !fresh,
        };
        if fresh {
            let parent = parent_dir(&staging.path);
            std::fs::create_dir_all(&parent).map_err(io(&parent))?;
            if staging.path.exists() {
                // Only reached with --force, or --resume on a directory with no manifest.
                std::fs::remove_dir_all(&staging.path).map_err(io(&staging.path))?;
            }
            std::fs::create_dir(&staging.path).map_err(io(&staging.path))?;
            let ck = staging.path.join("checkpoint");
            std::fs::create_dir(&ck).map_err(io(&ck))?;
            fsync_dir(&parent)?;
        }
        claim(&staging.path)?;
        Ok(staging)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps the directory on failure from now on: it holds something worth resuming.
    pub fn keep(&mut self) {
        self.keep = true;
    }

    /// Whether the directory is kept on failure.
    pub fn is_kept(&self) -> bool {
        self.keep
    }

    /// The manifest of a resumed run (`resumed`, already checked by [`check_resumable`]),
    /// checked against the blocks the config selects now (`new.blocks`), with what a
    /// killed process left half-written removed; or `new` for a fresh run.
    pub fn manifest(&self, resumed: Option<Manifest>, new: Manifest) -> Result<Manifest> {
        let Some(m) = resumed else {
            return Ok(new);
        };
        if m.blocks != new.blocks {
            return Err(PipelineError::Checkpoint {
                path: manifest_path(&self.path),
                reason: format!(
                    "{} blocks recorded, the config selects {}",
                    m.blocks, new.blocks
                ),
            });
        }
        clean_leftovers(&self.path, m.blocks_done)?;
        Ok(m)
    }

    /// Renames the finished staging directory to `out_dir` (replacing it when `force`),
    /// everything made durable first, then removes the checkpoint, which is not an output.
    pub fn publish(&mut self, out_dir: &Path, force: bool, events: Events<'_>) -> Result<()> {
        let owner = self.path.join("owner.pid");
        std::fs::remove_file(&owner).map_err(io(&owner))?;
        // Everything durable before the rename that makes it look finished.
        fsync_tree(&self.path)?;
        let parent = parent_dir(out_dir);
        if out_dir.exists() {
            if !force {
                return Err(PipelineError::OutputExists(out_dir.into()));
            }
            // Replace: move the old output aside first, so a failed rename loses nothing.
            let name = out_dir.file_name().unwrap_or_default().to_string_lossy();
            let old = parent.join(format!(".{name}.old-{}", std::process::id()));
            std::fs::rename(out_dir, &old).map_err(io(out_dir))?;
            if let Err(e) = std::fs::rename(&self.path, out_dir) {
                let _ = std::fs::rename(&old, out_dir);
                return Err(io(out_dir)(e));
            }
            self.keep = true;
            std::fs::remove_dir_all(&old).map_err(io(&old))?;
        } else {
            std::fs::rename(&self.path, out_dir).map_err(io(out_dir))?;
            self.keep = true;
        }
        fsync_dir(&parent)?;
        // A process killed before this line leaves the checkpoint in a complete output
        // directory, where it is harmless.
        let ck = out_dir.join("checkpoint");
        if let Err(e) = std::fs::remove_dir_all(&ck) {
            events(Event::Note(format!(
                "{}: could not remove the checkpoint: {e}",
                ck.display()
            )));
        }
        Ok(())
    }
}

/// The directory holding `path` (`.` for a bare name).
fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
