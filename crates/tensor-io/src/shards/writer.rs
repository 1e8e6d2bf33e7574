//! Writing a planned sharded checkpoint tensor by tensor: each shard's file is written
//! under a temporary name as its tensors arrive, fsynced and renamed once complete.

use super::plan::{ShardPlan, INDEX_FILE};
use crate::error::{Result, TensorIoError};
use crate::write::{write_atomic, OwnedTensor};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The temporary name of a shard being written: hidden, and stable across processes so
/// that a resumed run finds it.
pub fn partial_name(file_name: &str) -> String {
    format!(".{file_name}.partial")
}

/// The shard file being filled.
#[derive(Debug)]
struct Open {
    shard: usize,
    file: File,
}

/// Writes the tensors of a [`ShardPlan`] in plan order into a directory.
///
/// Only one shard is open at a time, and each tensor's bytes go straight to its place in
/// the file (the plan knows every offset), so memory holds one tensor. A shard gets its
/// final name only once every byte is written and synced; an error leaves at most the
/// temporary `.NAME.partial`, never a final name over half a file. Tensors must come in
/// plan order: the count written so far is the writer's whole state, which is what makes
/// [`ShardWriter::resume`] possible.
#[derive(Debug)]
pub struct ShardWriter {
    dir: PathBuf,
    plan: ShardPlan,
    next: usize,
    open: Option<Open>,
    /// The tensor being written in parts: its bytes so far, of how many.
    part: Option<(u64, u64)>,
    /// Test hook: fail with "no space left" once this many more bytes are written.
    #[cfg(test)]
    pub(crate) space: Option<u64>,
}

impl ShardWriter {
    /// A writer of `plan` into the existing directory `dir`, from the first tensor.
    pub fn create(dir: &Path, plan: ShardPlan) -> Result<ShardWriter> {
        if !dir.is_dir() {
            return Err(TensorIoError::NoOutputDir {
                path: dir.join(plan.shards()[0].file_name.as_str()),
                dir: dir.into(),
            });
        }
        Ok(ShardWriter {
            dir: dir.into(),
            plan,
            next: 0,
            open: None,
            part: None,
            #[cfg(test)]
            space: None,
        })
    }

    /// A writer of `plan` into `dir` that continues after the first `written` tensors,
    /// which an earlier writer wrote and [`ShardWriter::sync`]ed. The shard holding tensor
    /// `written` is reopened (from its temporary file, or from its final file, renamed
    /// back); later shards and the index are removed. What the earlier writer wrote after
    /// its last sync is overwritten by the same tensors written again, so the files end
    /// up byte for byte as an uninterrupted writer leaves them.
    pub fn resume(dir: &Path, plan: ShardPlan, written: usize) -> Result<ShardWriter> {
        let mut w = ShardWriter::create(dir, plan)?;
        let n = w.plan.tensors().len();
        if written > n {
            return Err(w.bad_resume(format!("{written} tensors written of {n} planned")));
        }
        w.next = written;
        // The shard the next tensor goes to; every shard is complete when all are written.
        let current = w.plan.place(written).map_or(usize::MAX, |p| p.0);
        let shards: Vec<(String, Option<usize>)> = w
            .plan
            .shards()
            .iter()
            .map(|s| (s.file_name.clone(), s.tensors.first().copied()))
            .collect();
        for (s, (name, first)) in shards.into_iter().enumerate() {
            let fin = dir.join(&name);
            let part = dir.join(partial_name(&name));
            // Shards before the current one are complete; the current one is reopened
            // unless the next tensor is its first; the rest are written again.
            if s < current {
                if !fin.is_file() {
                    return Err(w.bad_resume(format!("{} is missing", fin.display())));
                }
            } else if s == current && first != Some(written) {
                if !part.is_file() {
                    if !fin.is_file() {
                        return Err(w.bad_resume(format!("{} is missing", part.display())));
                    }
                    fs::rename(&fin, &part).map_err(io(&fin))?;
                }
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&part)
                    .map_err(io(&fin))?;
                w.open = Some(Open { shard: s, file });
            } else {
                remove_if_present(&fin)?;
                remove_if_present(&part)?;
            }
        }
        remove_if_present(&dir.join(INDEX_FILE))?;
        Ok(w)
    }

    fn bad_resume(&self, reason: String) -> TensorIoError {
        TensorIoError::NotSafetensors {
            path: self.dir.clone(),
            reason: format!("cannot resume writing the shards: {reason}"),
        }
    }

    /// The plan.
    pub fn plan(&self) -> &ShardPlan {
        &self.plan
    }

    /// Tensors written so far (the next one is `plan().tensors()[written()]`).
    pub fn written(&self) -> usize {
        self.next
    }

    /// The name of the next tensor expected, `None` when all are written.
    pub fn next_name(&self) -> Option<&str> {
        self.plan.tensors().get(self.next).map(|t| t.name.as_str())
    }

    /// Writes the next tensor, `name`, from its little-endian bytes. Completes (syncs and
    /// renames) its shard when it is the shard's last.
    pub fn write(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        self.begin(name, bytes.len() as u64)?;
        self.append(bytes)?;
        self.end()
    }

    /// Starts writing the next tensor, `name` of `len` bytes, in parts: its bytes follow
    /// through [`ShardWriter::append`], and [`ShardWriter::end`] finishes it. A large
    /// tensor is then never held whole in its written form (an 8B model's embedding is
    /// 1 GB in bf16).
    pub fn begin(&mut self, name: &str, len: u64) -> Result<()> {
        let i = self.next;
        if self.part.is_some() {
            let why = "cannot be written: the previous tensor is not finished";
            return Err(self.out_of_order(name, why));
        }
        let Some(t) = self.plan.tensors().get(i) else {
            return Err(self.out_of_order(
                name,
                "cannot be written: all planned tensors are already written",
            ));
        };
        if t.name != name {
            let why = format!("cannot be written: expected '{}' next", t.name);
            return Err(self.out_of_order(name, &why));
        }
        if t.byte_len() != Some(len) {
            let why = format!(
                "cannot be written: has {len} bytes, the plan ({:?} {:?}) needs {:?}",
                t.dtype,
                t.shape,
                t.byte_len()
            );
            return Err(self.out_of_order(name, &why));
        }
        let (s, _) = self.plan.place(i).unwrap_or_default();
        if self.open.as_ref().map(|o| o.shard) != Some(s) {
            self.start_shard(s)?;
        }
        self.part = Some((0, len));
        Ok(())
    }

    /// Appends the next bytes of the tensor started by [`ShardWriter::begin`].
    pub fn append(&mut self, bytes: &[u8]) -> Result<()> {
        let i = self.next;
        let name = self.plan.tensors().get(i).map(|t| t.name.clone());
        let name = name.unwrap_or_default();
        let Some((done, len)) = self.part else {
            return Err(self.out_of_order(&name, "cannot take bytes: no tensor is begun"));
        };
        if done + bytes.len() as u64 > len {
            let why = format!(
                "cannot take {} more bytes: {done} of its {len} are written",
                bytes.len()
            );
            return Err(self.out_of_order(&name, &why));
        }
        let (s, offset) = self.plan.place(i).unwrap_or_default();
        let fin = self.dir.join(&self.plan.shards()[s].file_name);
        self.put(offset + done, bytes).map_err(io(&fin))?;
        self.part = Some((done + bytes.len() as u64, len));
        Ok(())
    }

    /// Finishes the tensor started by [`ShardWriter::begin`], once all its bytes are in;
    /// completes its shard when it is the shard's last tensor.
    pub fn end(&mut self) -> Result<()> {
        let i = self.next;
        let name = self.plan.tensors().get(i).map(|t| t.name.clone());
        let name = name.unwrap_or_default();
        match self.part {
            Some((done, len)) if done == len => {}
            Some((done, len)) => {
                let why = format!("is unfinished: {done} of its {len} bytes are written");
                return Err(self.out_of_order(&name, &why));
            }
            None => return Err(self.out_of_order(&name, "cannot end: no tensor is begun")),
        }
        self.part = None;
        let (s, _) = self.plan.place(i).unwrap_or_default();
        self.next += 1;
        let shard = &self.plan.shards()[s];
        if shard.tensors.last() == Some(&i) {
            self.complete(s)?;
        }
        Ok(())
    }

    fn out_of_order(&self, name: &str, why: &str) -> TensorIoError {
        TensorIoError::BadTensor {
            path: self.dir.clone(),
            name: name.into(),
            reason: why.to_string(),
        }
    }

    /// Creates shard `s`'s temporary file with its header.
    fn start_shard(&mut self, s: usize) -> Result<()> {
        let shard = &self.plan.shards()[s];
        let fin = self.dir.join(&shard.file_name);
        let part = self.dir.join(partial_name(&shard.file_name));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&part)
            .map_err(io(&fin))?;
        let header = shard.header.clone();
        self.open = Some(Open { shard: s, file });
        self.put(0, &header).map_err(io(&fin))
    }

    /// Writes `bytes` at `offset` of the open shard.
    fn put(&mut self, offset: u64, bytes: &[u8]) -> std::io::Result<()> {
        #[cfg(test)]
        if let Some(left) = self.space.as_mut() {
            if (bytes.len() as u64) > *left {
                return Err(std::io::Error::from_raw_os_error(28));
            }
            *left -= bytes.len() as u64;
        }
        let open = self
            .open
            .as_mut()
            .ok_or_else(|| std::io::Error::other("no shard open"))?;
        open.file.seek(SeekFrom::Start(offset))?;
        open.file.write_all(bytes)
    }

    /// Checks, syncs and renames the finished shard `s`.
    fn complete(&mut self, s: usize) -> Result<()> {
        let shard = &self.plan.shards()[s];
        let fin = self.dir.join(&shard.file_name);
        let part = self.dir.join(partial_name(&shard.file_name));
        let Some(open) = self.open.take() else {
            return Ok(());
        };
        let len = open.file.metadata().map_err(io(&fin))?.len();
        if len != shard.file_size {
            return Err(io(&fin)(std::io::Error::other(format!(
                "shard is {len} bytes, the plan says {}",
                shard.file_size
            ))));
        }
        open.file.sync_all().map_err(io(&fin))?;
        drop(open);
        fs::rename(&part, &fin).map_err(io(&fin))?;
        sync_dir(&self.dir)
    }

    /// Makes everything written so far durable: the open shard's file and the directory.
    /// A checkpoint that counts [`ShardWriter::written`] tensors is safe once this returns.
    pub fn sync(&mut self) -> Result<()> {
        if let Some(open) = &self.open {
            let fin = self.dir.join(&self.plan.shards()[open.shard].file_name);
            open.file.sync_all().map_err(io(&fin))?;
        }
        sync_dir(&self.dir)
    }

    /// Reads back a tensor already written (final or temporary file), by name.
    pub fn read_back(&self, name: &str) -> Result<OwnedTensor> {
        let i = self
            .plan
            .position(name)
            .filter(|&i| i < self.next)
            .ok_or_else(|| self.out_of_order(name, "is not written yet"))?;
        let t = &self.plan.tensors()[i];
        let (s, offset) = self.plan.place(i).unwrap_or_default();
        let shard = &self.plan.shards()[s];
        let fin = self.dir.join(&shard.file_name);
        let path = if fin.is_file() {
            fin.clone()
        } else {
            self.dir.join(partial_name(&shard.file_name))
        };
        let mut bytes = vec![0u8; t.byte_len().unwrap_or_default() as usize];
        File::open(&path)
            .and_then(|mut f| {
                f.seek(SeekFrom::Start(offset))?;
                f.read_exact(&mut bytes)
            })
            .map_err(io(&fin))?;
        Ok(OwnedTensor {
            dtype: t.dtype,
            shape: t.shape.clone(),
            bytes,
        })
    }

    /// Checks that every tensor was written and writes the index (when there are several
    /// shards). Returns the paths of the shard files.
    pub fn finish(self) -> Result<Vec<PathBuf>> {
        if let Some(name) = self.next_name() {
            return Err(
                self.out_of_order(name, "was never written: the writer was finished before it")
            );
        }
        if self.plan.shards().len() > 1 {
            write_atomic(&self.dir.join(INDEX_FILE), &self.plan.index_json())?;
            sync_dir(&self.dir)?;
        }
        Ok(self
            .plan
            .shards()
            .iter()
            .map(|s| self.dir.join(&s.file_name))
            .collect())
    }

    /// Removes the open shard's temporary file (after an error, when nothing will
    /// resume this writer).
    pub fn discard(mut self) {
        if let Some(open) = self.open.take() {
            let name = &self.plan.shards()[open.shard].file_name;
            drop(open);
            let _ = fs::remove_file(self.dir.join(partial_name(name)));
        }
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> TensorIoError + '_ {
    move |error| TensorIoError::Io {
        path: path.into(),
        error,
    }
}

fn remove_if_present(p: &Path) -> Result<()> {
    match fs::remove_file(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(p)(e)),
        _ => Ok(()),
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|f| f.sync_all()).map_err(io(dir))
}
