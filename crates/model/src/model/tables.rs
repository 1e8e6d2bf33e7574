//! The two vocabulary tables, the embedding and `lm_head`, in their stored dtype: read
//! from the model's files when first used, and dropped again by
//! [`Model::release_tables`](crate::Model::release_tables).
//!
//! Why: they are the largest tensors outside the blocks (1 GB each for Llama-3.1-8B in
//! bf16, 2 GB for 70B), and a pruning run needs them only at its ends: the embedding to
//! embed the calibration and evaluation windows, the head for the logits of an
//! evaluation. Held for the whole run they would sit beside the Gram matrices at the
//! prune loop's peak.

use crate::error::Result;
use candle_core::Tensor;
use std::sync::{Arc, Mutex, PoisonError};

/// Reads a vocabulary table (stored dtype) from where the model's weights are stored.
pub(crate) trait TableReader: std::fmt::Debug + Send + Sync {
    /// The tensor of this Hugging Face name.
    fn read_table(&self, name: &str) -> Result<Tensor>;
}

/// The embedding and head tables of a model, each read once when used and kept until
/// released.
#[derive(Debug)]
pub(crate) struct Tables {
    reader: Arc<dyn TableReader>,
    /// The tensor serving as the embedding: `model.embed_tokens.weight`, or
    /// `lm_head.weight` for a tied checkpoint that kept only the head.
    embed_name: String,
    /// `lm_head.weight` when the head has values of its own; `None` when tied.
    head_name: Option<String>,
    embed: Mutex<Option<Tensor>>,
    head: Mutex<Option<Tensor>>,
}

impl Clone for Tables {
    /// Shares the reader and the tables read so far (candle tensors share storage).
    fn clone(&self) -> Tables {
        Tables {
            reader: self.reader.clone(),
            embed_name: self.embed_name.clone(),
            head_name: self.head_name.clone(),
            embed: Mutex::new(lock(&self.embed).clone()),
            head: Mutex::new(lock(&self.head).clone()),
        }
    }
}

fn lock(m: &Mutex<Option<Tensor>>) -> std::sync::MutexGuard<'_, Option<Tensor>> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Tables {
    /// Tables read through `reader`; `embed` and `head` are the tensors the load already
    /// read (kept, so that the first use reads nothing).
    pub(crate) fn new(
        reader: Arc<dyn TableReader>,
        (embed_name, embed): (String, Tensor),
        head: Option<(String, Tensor)>,
    ) -> Tables {
        let (head_name, head) = match head {
            Some((n, t)) => (Some(n), Some(t)),
            None => (None, None),
        };
        Tables {
            reader,
            embed_name,
            head_name,
            embed: Mutex::new(Some(embed)),
            head: Mutex::new(head),
        }
    }

    fn get(&self, slot: &Mutex<Option<Tensor>>, name: &str) -> Result<Tensor> {
        let mut s = lock(slot);
        if let Some(t) = s.as_ref() {
            return Ok(t.clone());
        }
        let t = self.reader.read_table(name)?;
        *s = Some(t.clone());
        Ok(t)
    }

    /// The embedding table.
    pub(crate) fn embed(&self) -> Result<Tensor> {
        self.get(&self.embed, &self.embed_name)
    }

    /// The head table: its own tensor, or the embedding when tied.
    pub(crate) fn head(&self) -> Result<Tensor> {
        match &self.head_name {
            Some(name) => self.get(&self.head, name),
            None => self.embed(),
        }
    }

    /// Drops both tables (they are read again when next used); a tensor handed out
    /// earlier stays valid.
    pub(crate) fn release(&self) {
        *lock(&self.embed) = None;
        *lock(&self.head) = None;
    }

    /// Whether either table is held now.
    pub(crate) fn held(&self) -> bool {
        lock(&self.embed).is_some() || lock(&self.head).is_some()
    }
}
