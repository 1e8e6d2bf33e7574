//! The decoder blocks of a loaded model as slots: on disk (read from the source when
//! used) or resident (weights changed through `set_weight`, kept until released), and
//! the count of f32 block weight sets alive in the process.
//!
//! A block read from disk is kept in a one-block cache until another block is read, so
//! the micro-batches of one walk read each block once; the cached block is dropped
//! *before* the next one is read, so a walk holds one block's f32 weights at a time.

use crate::error::{ModelError, Result};
use std::ops::Deref;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// How many f32 block weight sets ([`LiveBlock`]s) exist in the process now.
///
/// Every block a model reads from its files, and every copy of one, counts until it is
/// dropped; this is what bounds a run's memory to one block, and what tests assert.
pub fn live_f32_blocks() -> usize {
    LIVE.load(Ordering::SeqCst)
}

/// The most f32 block weight sets alive at once since the process started or since the
/// last [`reset_peak_live_f32_blocks`].
pub fn peak_live_f32_blocks() -> usize {
    PEAK.load(Ordering::SeqCst)
}

/// Restarts [`peak_live_f32_blocks`] from the number alive now.
pub fn reset_peak_live_f32_blocks() {
    PEAK.store(LIVE.load(Ordering::SeqCst), Ordering::SeqCst);
}

/// One block's weights in f32 (a [`BlockWeights`](crate::BlockWeights)), counted by
/// [`live_f32_blocks`] while it exists; derefs to them.
#[derive(Debug)]
pub struct LiveBlock<W> {
    weights: W,
}

impl<W> LiveBlock<W> {
    fn new(weights: W) -> LiveBlock<W> {
        let n = LIVE.fetch_add(1, Ordering::SeqCst) + 1;
        PEAK.fetch_max(n, Ordering::SeqCst);
        LiveBlock { weights }
    }
}

impl<W: Clone> Clone for LiveBlock<W> {
    fn clone(&self) -> LiveBlock<W> {
        LiveBlock::new(self.weights.clone())
    }
}

impl<W> Drop for LiveBlock<W> {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

impl<W> Deref for LiveBlock<W> {
    type Target = W;

    fn deref(&self) -> &W {
        &self.weights
    }
}

/// Reads one block's weights (f32) from where the model's weights are stored.
pub(crate) trait BlockReader<W>: std::fmt::Debug + Send + Sync {
    /// The weights of block `layer`.
    fn read_block(&self, layer: usize) -> Result<W>;
    /// Block `layer` with every tensor of its shape but no data read (each a single
    /// broadcast value): its names and shapes, for planning a checkpoint.
    fn block_shapes(&self, layer: usize) -> Result<W>;
}

/// The blocks of a model (weights of type `W`): where they are read from and which are
/// resident.
#[derive(Debug)]
pub(crate) struct Blocks<W> {
    reader: Arc<dyn BlockReader<W>>,
    /// `Some` for a resident block.
    slots: Vec<Option<Arc<LiveBlock<W>>>>,
    /// The shape of each linear weight of each block, in `LinearKind::ALL` order.
    shapes: Vec<Vec<Vec<usize>>>,
    /// The last block read from disk.
    cache: Mutex<Option<(usize, Arc<LiveBlock<W>>)>>,
}

impl<W> Clone for Blocks<W> {
    /// Shares the source and the resident blocks (a change to a block of either copy
    /// copies that block first); the cache starts empty.
    fn clone(&self) -> Blocks<W> {
        Blocks {
            reader: self.reader.clone(),
            slots: self.slots.clone(),
            shapes: self.shapes.clone(),
            cache: Mutex::new(None),
        }
    }
}

impl<W: Clone> Blocks<W> {
    /// `shapes[l][i]`: the shape of linear weight `LinearKind::ALL[i]` of block `l`.
    pub(crate) fn new(reader: Arc<dyn BlockReader<W>>, shapes: Vec<Vec<Vec<usize>>>) -> Blocks<W> {
        Blocks {
            reader,
            slots: vec![None; shapes.len()],
            shapes,
            cache: Mutex::new(None),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    fn check(&self, layer: usize) -> Result<()> {
        if layer < self.slots.len() {
            Ok(())
        } else {
            Err(ModelError::LayerOutOfRange {
                index: layer,
                count: self.slots.len(),
            })
        }
    }

    /// The shape of linear weight `i` (in `LinearKind::ALL` order) of block `layer`.
    pub(crate) fn shape(&self, layer: usize, i: usize) -> Result<&[usize]> {
        self.check(layer)?;
        self.shapes[layer]
            .get(i)
            .map(Vec::as_slice)
            .ok_or_else(|| ModelError::InvalidArgument(format!("no linear weight {i}")))
    }

    /// Block `layer`'s tensors by shape alone (see [`BlockReader::block_shapes`]).
    pub(crate) fn shapes_only(&self, layer: usize) -> Result<W> {
        self.check(layer)?;
        self.reader.block_shapes(layer)
    }

    fn read(&self, layer: usize) -> Result<Arc<LiveBlock<W>>> {
        Ok(Arc::new(LiveBlock::new(self.reader.read_block(layer)?)))
    }

    /// Block `layer`: the resident one, or the one read from disk (cached).
    pub(crate) fn get(&self, layer: usize) -> Result<Arc<LiveBlock<W>>> {
        self.check(layer)?;
        if let Some(b) = &self.slots[layer] {
            return Ok(b.clone());
        }
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((l, b)) = cache.as_ref() {
            if *l == layer {
                return Ok(b.clone());
            }
        }
        // Dropped before the next block is read: one block at a time.
        *cache = None;
        let b = self.read(layer)?;
        *cache = Some((layer, b.clone()));
        Ok(b)
    }

    /// Block `layer` made resident (taken from the cache or read), for changing.
    pub(crate) fn resident_mut(&mut self, layer: usize) -> Result<&mut W> {
        self.check(layer)?;
        if self.slots[layer].is_none() {
            let cached = self
                .cache
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            let b = match cached {
                Some((l, b)) if l == layer => b,
                other => {
                    drop(other);
                    self.read(layer)?
                }
            };
            self.slots[layer] = Some(b);
        }
        match self.slots[layer].as_mut() {
            Some(b) => Ok(&mut Arc::make_mut(b).weights),
            None => Err(ModelError::InvalidArgument(format!(
                "block {layer} is not resident"
            ))),
        }
    }

    /// Puts block `layer` back on disk, dropping its resident weights (and the cached
    /// copy); out of range does nothing.
    pub(crate) fn release(&mut self, layer: usize) {
        if let Some(s) = self.slots.get_mut(layer) {
            *s = None;
        }
        let cache = self.cache.get_mut().unwrap_or_else(PoisonError::into_inner);
        if cache.as_ref().is_some_and(|(l, _)| *l == layer) {
            *cache = None;
        }
    }

    /// Drops the block cached from the last read from disk.
    pub(crate) fn drop_cached(&self) {
        *self.cache.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    pub(crate) fn resident(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }
}
