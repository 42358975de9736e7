//! Webhooks in the store, all in `Table::Webhooks` under one key prefix per
//! kind: `s/<name>` the subscription ([`WebhookRecord`]), `c/<name>` its
//! delivery state and cursor ([`WebhookState`]), `d/<name>/<seq>` its dead
//! letters and `r/<name>/<seq>` the dead letters asked to be redriven
//! ([`DeadLetterRecord`]; `<seq>` big-endian, so they scan in log order).
//! Names never hold `/` (`crate::webhooks::validate_name`).
//!
//! The API's writes (create, delete, redrive) are durable before they are
//! acknowledged. The delivery worker's writes (cursor, attempts, dead
//! letters) are not waited for: a cursor lost to a crash only means the
//! event is delivered again (at least once), and each write checks the
//! subscription still exists, so a deleted one is never written back.

use super::{encode, Db, DbError};
use crate::records::{DeadLetterRecord, WebhookRecord, WebhookState};
use crate::store::{StoreError, Table, Txn};

fn sub_key(name: &str) -> Vec<u8> {
    format!("s/{name}").into_bytes()
}

fn state_key(name: &str) -> Vec<u8> {
    format!("c/{name}").into_bytes()
}

fn letters_prefix(kind: u8, name: &str) -> Vec<u8> {
    let mut k = vec![kind, b'/'];
    k.extend_from_slice(name.as_bytes());
    k.push(b'/');
    k
}

fn letter_key(kind: u8, name: &str, seq: u64) -> Vec<u8> {
    let mut k = letters_prefix(kind, name);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

const DEAD: u8 = b'd';
const REDRIVE: u8 = b'r';

/// The outcome of a worker's write.
#[derive(Debug, PartialEq, Eq)]
pub enum WorkerWrite {
    Done,
    /// The subscription was deleted (or its state changed under the worker):
    /// read again.
    Stale,
}

impl Db {
    /// Creates a subscription whose cursor starts at `rec.start_cursor`.
    pub async fn create_webhook(&self, rec: &WebhookRecord) -> Result<(), DbError> {
        let state = WebhookState {
            cursor: rec.start_cursor,
            ..Default::default()
        };
        self.write("webhook", || {
            if self
                .store
                .get(Table::Webhooks, &sub_key(&rec.name))?
                .is_some()
            {
                return Err(DbError::AlreadyExists {
                    kind: "webhook",
                    name: rec.name.clone(),
                });
            }
            let mut txn = Txn::new()
                .check_absent(Table::Webhooks, sub_key(&rec.name))
                .put(
                    Table::Webhooks,
                    sub_key(&rec.name),
                    encode(Table::Webhooks, rec)?,
                )
                .put(
                    Table::Webhooks,
                    state_key(&rec.name),
                    encode(Table::Webhooks, &state)?,
                );
            // Letters left by an earlier subscription of the same name.
            for kind in [DEAD, REDRIVE] {
                for (k, _) in self
                    .store
                    .scan_prefix(Table::Webhooks, &letters_prefix(kind, &rec.name))?
                {
                    txn.add_delete(Table::Webhooks, k);
                }
            }
            Ok((txn, ()))
        })
        .await
    }

    pub fn webhook(&self, name: &str) -> Result<Option<WebhookRecord>, DbError> {
        Ok(self
            .get::<WebhookRecord>(Table::Webhooks, &sub_key(name))?
            .map(|(r, _)| r))
    }

    /// Every subscription, by name.
    pub fn webhooks(&self) -> Result<Vec<WebhookRecord>, DbError> {
        Ok(self.scan(Table::Webhooks, b"s/")?)
    }

    /// Deletes a subscription with its state and letters.
    pub async fn delete_webhook(&self, name: &str) -> Result<WebhookRecord, DbError> {
        self.write("webhook", || {
            let (rec, bytes) = self
                .get::<WebhookRecord>(Table::Webhooks, &sub_key(name))?
                .ok_or_else(|| DbError::NotFound {
                    kind: "webhook",
                    name: name.to_owned(),
                })?;
            let mut txn = Txn::new()
                .check_equals(Table::Webhooks, sub_key(name), bytes)
                .delete(Table::Webhooks, sub_key(name))
                .delete(Table::Webhooks, state_key(name));
            for kind in [DEAD, REDRIVE] {
                for (k, _) in self
                    .store
                    .scan_prefix(Table::Webhooks, &letters_prefix(kind, name))?
                {
                    txn.add_delete(Table::Webhooks, k);
                }
            }
            Ok((txn, rec))
        })
        .await
    }

    /// A subscription's delivery state and its stored bytes (the check of
    /// the worker's next write).
    pub fn webhook_state(&self, name: &str) -> Result<Option<(WebhookState, Vec<u8>)>, DbError> {
        Ok(self.get::<WebhookState>(Table::Webhooks, &state_key(name))?)
    }

    /// The subscription's dead letters (`REDRIVE`: those waiting to be
    /// redriven), oldest event first.
    fn letters(&self, kind: u8, name: &str) -> Result<Vec<DeadLetterRecord>, DbError> {
        Ok(self.scan(Table::Webhooks, &letters_prefix(kind, name))?)
    }

    pub fn webhook_dead_letters(&self, name: &str) -> Result<Vec<DeadLetterRecord>, DbError> {
        self.letters(DEAD, name)
    }

    pub fn webhook_redrives(&self, name: &str) -> Result<Vec<DeadLetterRecord>, DbError> {
        self.letters(REDRIVE, name)
    }

    /// The first event waiting to be redriven.
    pub fn next_webhook_redrive(&self, name: &str) -> Result<Option<DeadLetterRecord>, DbError> {
        let prefix = letters_prefix(REDRIVE, name);
        let rows = self.store.scan_from(Table::Webhooks, &prefix, 1)?;
        match rows.into_iter().next() {
            Some((k, v)) if k.starts_with(&prefix) => {
                Ok(Some(super::decode(Table::Webhooks, &k, &v)?))
            }
            _ => Ok(None),
        }
    }

    /// Queues dead letters for delivery again: those of `seqs`, or all when
    /// it is empty. Returns how many.
    pub async fn redrive_webhook(&self, name: &str, seqs: &[u64]) -> Result<usize, DbError> {
        self.write("webhook", || {
            let bytes = self
                .store
                .get(Table::Webhooks, &sub_key(name))?
                .ok_or_else(|| DbError::NotFound {
                    kind: "webhook",
                    name: name.to_owned(),
                })?;
            let mut txn = Txn::new().check_equals(Table::Webhooks, sub_key(name), bytes);
            let rows = self
                .store
                .scan_prefix(Table::Webhooks, &letters_prefix(DEAD, name))?;
            let mut letters = Vec::with_capacity(rows.len());
            for (k, v) in rows {
                let l: DeadLetterRecord = super::decode(Table::Webhooks, &k, &v)?;
                letters.push((l, k, v));
            }
            for seq in seqs {
                if !letters.iter().any(|(l, _, _)| l.seq == *seq) {
                    return Err(DbError::NotFound {
                        kind: "dead letter",
                        name: format!("{name}/{seq}"),
                    });
                }
            }
            let mut n = 0;
            for (l, key, bytes) in letters {
                if !seqs.is_empty() && !seqs.contains(&l.seq) {
                    continue;
                }
                txn = txn
                    .check_equals(Table::Webhooks, key.clone(), bytes.clone())
                    .delete(Table::Webhooks, key)
                    .put(Table::Webhooks, letter_key(REDRIVE, name, l.seq), bytes);
                n += 1;
            }
            Ok((txn, n))
        })
        .await
    }

    /// Commits a worker's write: the new state (checked against `old`),
    /// plus `letter` dead-lettered and/or the redrive of `redriven` done.
    pub fn save_webhook_progress(
        &self,
        name: &str,
        old: &[u8],
        state: &WebhookState,
        letter: Option<&DeadLetterRecord>,
        redriven: Option<u64>,
    ) -> Result<WorkerWrite, DbError> {
        let Some(sub) = self.store.get(Table::Webhooks, &sub_key(name))? else {
            return Ok(WorkerWrite::Stale);
        };
        let mut txn = Txn::new()
            .check_equals(Table::Webhooks, sub_key(name), sub)
            .check_equals(Table::Webhooks, state_key(name), old.to_vec())
            .put(
                Table::Webhooks,
                state_key(name),
                encode(Table::Webhooks, state)?,
            );
        if let Some(seq) = redriven {
            txn.add_delete(Table::Webhooks, letter_key(REDRIVE, name, seq));
        }
        if let Some(l) = letter {
            txn.add_put(
                Table::Webhooks,
                letter_key(DEAD, name, l.seq),
                encode(Table::Webhooks, l)?,
            );
        }
        match self.store.commit(&txn) {
            Ok(()) => Ok(WorkerWrite::Done),
            Err(StoreError::Conflict) => Ok(WorkerWrite::Stale),
            Err(e) => Err(e.into()),
        }
    }
}
