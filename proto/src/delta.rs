//! Desired-state deltas: the protocol both ends of the agent link keep, as
//! pure state machines. The scheduler's [`DeltaSender`] turns each new full
//! set of an instance into the message that brings the agent there from
//! what it was sent last: the whole set ([`Update::Full`]) on a new stream,
//! after the agent asked for it, or when the agent cannot take deltas;
//! otherwise only the items added or changed and the keys removed
//! ([`Update::Delta`]), based on the generation sent last. The agent's
//! [`DeltaReceiver`] applies them and refuses a delta whose base is not the
//! generation it holds ([`Resync`]); the agent then asks for the whole set.
//!
//! The link stays level-triggered: a new stream starts with the whole set,
//! and any doubt ends in the whole set, so a lost message or a restart of
//! either side heals (the property test below drives random interleavings).
//! Items are identified by [`Keyed::key`]; a delta changes items in place
//! and adds new ones at the end.

use std::collections::{HashMap, HashSet};

use indexmap::IndexMap;

/// An item of a set, identified by a key (a task's ARN).
pub trait Keyed {
    fn key(&self) -> &str;
}

/// The wire form of a desired task (clients that keep the wire types).
impl Keyed for crate::v1::DesiredTask {
    fn key(&self) -> &str {
        &self.task_arn
    }
}

/// One message of the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update<T> {
    /// The whole set at `generation`: replaces what the receiver holds.
    Full { generation: u64, items: Vec<T> },
    /// From `base` to `generation`: `upserts` replace or add items by key,
    /// `removed` drops keys.
    Delta {
        base: u64,
        generation: u64,
        upserts: Vec<T>,
        removed: Vec<String>,
    },
}

impl<T> Update<T> {
    /// The generation the receiver holds once this is applied.
    pub fn generation(&self) -> u64 {
        match self {
            Self::Full { generation, .. } | Self::Delta { generation, .. } => *generation,
        }
    }

    /// Items carried (all of them for a full set, the upserts of a delta).
    pub fn items(&self) -> &[T] {
        match self {
            Self::Full { items, .. } => items,
            Self::Delta { upserts, .. } => upserts,
        }
    }
}

/// The scheduler's end: what was sent last on this stream, and what the
/// agent acknowledged.
#[derive(Debug)]
pub struct DeltaSender<T> {
    deltas: bool,
    last: Option<(u64, HashMap<String, T>)>,
    acked: Option<u64>,
    /// The generation found unacknowledged at the last [`Self::overdue`].
    outstanding: Option<u64>,
}

impl<T: Keyed + Clone + PartialEq> DeltaSender<T> {
    /// A sender for a new stream; `deltas` says whether the agent takes them
    /// (it said so in its Hello). The first update is always the whole set.
    pub fn new(deltas: bool) -> Self {
        Self {
            deltas,
            last: None,
            acked: None,
            outstanding: None,
        }
    }

    /// The message bringing the agent to `items` at `generation`. `None`
    /// when a delta would carry nothing (the agent keeps its generation,
    /// which stays the next delta's base).
    pub fn update(&mut self, generation: u64, items: Vec<T>) -> Option<Update<T>> {
        let Some((base, last)) = self.last.as_mut().filter(|_| self.deltas) else {
            let map = items
                .iter()
                .map(|t| (t.key().to_owned(), t.clone()))
                .collect();
            self.last = Some((generation, map));
            return Some(Update::Full { generation, items });
        };
        let mut upserts = Vec::new();
        let mut next = HashMap::with_capacity(items.len());
        for t in items {
            if last.get(t.key()) != Some(&t) {
                upserts.push(t.clone());
            }
            next.insert(t.key().to_owned(), t);
        }
        let removed: Vec<String> = last
            .keys()
            .filter(|k| !next.contains_key(*k))
            .cloned()
            .collect();
        if upserts.is_empty() && removed.is_empty() {
            return None;
        }
        let update = Update::Delta {
            base: *base,
            generation,
            upserts,
            removed,
        };
        *base = generation;
        *last = next;
        Some(update)
    }

    /// The agent asked for the whole set, or never acknowledged what it
    /// was sent: the next update is the whole set.
    pub fn resync(&mut self) {
        self.last = None;
        self.outstanding = None;
    }

    /// The agent applied `generation`.
    pub fn ack(&mut self, generation: u64) {
        self.acked = Some(self.acked.map_or(generation, |a| a.max(generation)));
    }

    /// Called on a periodic tick: whether the generation sent last was
    /// already unacknowledged at the previous tick (a message lost on the
    /// way, say); the caller then resyncs. Never for an agent without
    /// deltas (it does not acknowledge, and always gets the whole set).
    pub fn overdue(&mut self) -> bool {
        let sent = self.sent();
        let pending = self.deltas && sent.is_some() && self.acked < sent;
        if !pending {
            self.outstanding = None;
            return false;
        }
        if self.outstanding == sent {
            return true;
        }
        self.outstanding = sent;
        false
    }

    /// The generation the agent acknowledged last, if any.
    pub fn acked(&self) -> Option<u64> {
        self.acked
    }

    /// The generation sent last, if any.
    pub fn sent(&self) -> Option<u64> {
        self.last.as_ref().map(|(g, _)| *g)
    }
}

/// A delta the receiver cannot apply: its base is not what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a delta from generation {base} does not apply to {held:?}; the whole set is needed")]
pub struct Resync {
    pub base: u64,
    pub held: Option<u64>,
}

/// The agent's end: the set it holds, by key, in the order the items came
/// (a whole set's order, then each new item after the others).
#[derive(Debug)]
pub struct DeltaReceiver<T> {
    held: Option<(u64, IndexMap<String, T>)>,
}

impl<T> Default for DeltaReceiver<T> {
    fn default() -> Self {
        Self { held: None }
    }
}

impl<T: Keyed> DeltaReceiver<T> {
    /// Applies `update`; returns the generation now held. A delta that does
    /// not apply leaves nothing held, so every later delta is refused too
    /// until the whole set arrives.
    pub fn apply(&mut self, update: Update<T>) -> Result<u64, Resync> {
        match update {
            Update::Full { generation, items } => {
                let map = items.into_iter().map(|t| (t.key().to_owned(), t)).collect();
                self.held = Some((generation, map));
                Ok(generation)
            }
            Update::Delta {
                base,
                generation,
                upserts,
                removed,
            } => match self.held.as_mut() {
                Some((g, held)) if *g == base => {
                    *g = generation;
                    if !removed.is_empty() {
                        let gone: HashSet<&str> = removed.iter().map(String::as_str).collect();
                        held.retain(|k, _| !gone.contains(k.as_str()));
                    }
                    for t in upserts {
                        held.insert(t.key().to_owned(), t);
                    }
                    Ok(generation)
                }
                other => {
                    let held = other.map(|(g, _)| *g);
                    self.held = None;
                    Err(Resync { base, held })
                }
            },
        }
    }

    /// The items held.
    pub fn items(&self) -> impl Iterator<Item = &T> {
        self.held.iter().flat_map(|(_, m)| m.values())
    }

    /// A new stream: forget what was held (the whole set comes first).
    pub fn reset(&mut self) {
        self.held = None;
    }

    /// The generation held, if any.
    pub fn generation(&self) -> Option<u64> {
        self.held.as_ref().map(|(g, _)| *g)
    }
}

#[cfg(test)]
mod tests;
