//! The sled implementation of [`Store`]: one sled tree per [`Table`], atomic
//! multi-tree transactions for [`Txn`], `Db::flush` for durability.
//!
//! sled has no point-in-time view across trees, so [`Store::export`] holds
//! the write side of a lock whose read side every commit holds: commits run
//! concurrently with each other, and none while an export reads.

use std::path::Path;
use std::sync::RwLock;

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use super::{Check, KeyValue, Op, Store, StoreError, Table, Txn};

/// Store backed by an embedded sled database in the scheduler's data dir.
pub struct SledStore {
    db: sled::Db,
    trees: Vec<sled::Tree>,
    /// Read by every commit, written by an export (see the module doc).
    commits: RwLock<()>,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore").finish_non_exhaustive()
    }
}

impl SledStore {
    /// Opens (creating if needed) the database under `dir`.
    /// [`SledStore::open`] for tests that reopen a store they just closed:
    /// sled releases its file lock only when its last handle (a flusher
    /// thread's, say) is gone, which may be a moment after `close`. Waits
    /// up to 10 s for the lock.
    #[cfg(test)]
    pub fn open_when_free(dir: &Path) -> Result<Self, StoreError> {
        // 500 tries, 20 ms apart.
        let mut tries = 0;
        loop {
            match Self::open(dir) {
                Err(e) if e.to_string().contains("could not acquire lock") && tries < 500 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => return other,
            }
        }
    }

    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let db = sled::Config::new()
            .path(dir.join("sled"))
            // Durability is explicit (GroupCommit); no background timer flushes.
            .flush_every_ms(None)
            .open()?;
        let trees = Table::ALL
            .iter()
            .map(|t| db.open_tree(t.name()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            db,
            trees,
            commits: RwLock::new(()),
        })
    }

    fn tree(&self, table: Table) -> &sled::Tree {
        &self.trees[table.index()]
    }
}

impl Store for SledStore {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree(table).get(key)?.map(|v| v.to_vec()))
    }

    fn scan_prefix(&self, table: Table, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        self.tree(table)
            .scan_prefix(prefix)
            .map(|r| {
                r.map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .map_err(StoreError::from)
            })
            .collect()
    }

    fn scan_from(
        &self,
        table: Table,
        from: &[u8],
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        self.tree(table)
            .range(from..)
            .take(limit)
            .map(|r| {
                r.map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .map_err(StoreError::from)
            })
            .collect()
    }

    fn scan_back(
        &self,
        table: Table,
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        let tree = self.tree(table);
        let iter: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> = match before {
            Some(b) => Box::new(tree.range(..b).rev()),
            None => Box::new(tree.iter().rev()),
        };
        iter.take(limit)
            .map(|r| {
                r.map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .map_err(StoreError::from)
            })
            .collect()
    }

    fn commit(&self, txn: &Txn) -> Result<(), StoreError> {
        // The guard protects no data, so a poisoned lock is still usable.
        let _commit = self.commits.read().unwrap_or_else(|p| p.into_inner());
        let result = self.trees.as_slice().transaction(|trees| {
            for check in &txn.checks {
                let ok = match check {
                    Check::Absent(t, k) => trees[t.index()].get(k)?.is_none(),
                    Check::Equals(t, k, v) => {
                        trees[t.index()].get(k)?.as_deref() == Some(v.as_slice())
                    }
                };
                if !ok {
                    return Err(ConflictableTransactionError::Abort(()));
                }
            }
            for op in &txn.ops {
                match op {
                    Op::Put(t, k, v) => {
                        trees[t.index()].insert(k.as_slice(), v.as_slice())?;
                    }
                    Op::Delete(t, k) => {
                        trees[t.index()].remove(k.as_slice())?;
                    }
                }
            }
            Ok(())
        });
        match result {
            Ok(()) => Ok(()),
            Err(TransactionError::Abort(())) => Err(StoreError::Conflict),
            Err(TransactionError::Storage(e)) => Err(StoreError::Backend(e)),
        }
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()?)
    }

    fn export(&self, sink: &mut super::ExportSink<'_>) -> Result<(), StoreError> {
        let _paused = self.commits.write().unwrap_or_else(|p| p.into_inner());
        for table in Table::ALL {
            for kv in self.tree(table).iter() {
                let (k, v) = kv?;
                sink(table, &k, &v).map_err(StoreError::Export)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> (tempfile::TempDir, SledStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        (dir, store)
    }

    #[test]
    fn commit_applies_all_ops_atomically_across_tables() {
        let (_d, s) = open();
        let txn = Txn::new()
            .put(Table::Clusters, "a", "1")
            .put(Table::Families, "f", "2");
        s.commit(&txn).unwrap();
        assert_eq!(s.get(Table::Clusters, b"a").unwrap().unwrap(), b"1");
        assert_eq!(s.get(Table::Families, b"f").unwrap().unwrap(), b"2");
        // Same key in another table is independent.
        assert_eq!(s.get(Table::Families, b"a").unwrap(), None);
    }

    #[test]
    fn failed_check_writes_nothing() {
        let (_d, s) = open();
        s.commit(&Txn::new().put(Table::Clusters, "a", "1"))
            .unwrap();
        let txn = Txn::new()
            .check_absent(Table::Clusters, "a")
            .put(Table::Families, "f", "x");
        assert!(matches!(s.commit(&txn), Err(StoreError::Conflict)));
        assert_eq!(s.get(Table::Families, b"f").unwrap(), None);

        let txn = Txn::new()
            .check_equals(Table::Clusters, "a", "2")
            .delete(Table::Clusters, "a");
        assert!(matches!(s.commit(&txn), Err(StoreError::Conflict)));
        let txn = Txn::new()
            .check_equals(Table::Clusters, "a", "1")
            .delete(Table::Clusters, "a");
        s.commit(&txn).unwrap();
        assert_eq!(s.get(Table::Clusters, b"a").unwrap(), None);
    }

    #[test]
    fn scan_prefix_is_ordered_and_bounded() {
        let (_d, s) = open();
        for k in ["b\x002", "b\x001", "a\x001", "bb\x001"] {
            s.commit(&Txn::new().put(Table::TaskDefinitions, k, "v"))
                .unwrap();
        }
        let keys: Vec<_> = s
            .scan_prefix(Table::TaskDefinitions, b"b\x00")
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, vec![b"b\x001".to_vec(), b"b\x002".to_vec()]);
    }

    #[test]
    fn bounded_scans_walk_either_way() {
        let (_d, s) = open();
        for k in ["a", "b", "c", "d"] {
            s.commit(&Txn::new().put(Table::Audit, k, "v")).unwrap();
        }
        let keys = |kv: Vec<KeyValue>| -> Vec<Vec<u8>> { kv.into_iter().map(|(k, _)| k).collect() };
        assert_eq!(
            keys(s.scan_from(Table::Audit, b"b", 2).unwrap()),
            [b"b", b"c"]
        );
        assert_eq!(
            keys(s.scan_from(Table::Audit, b"bb", 10).unwrap()),
            [b"c", b"d"]
        );
        assert_eq!(
            keys(s.scan_back(Table::Audit, None, 2).unwrap()),
            [b"d", b"c"]
        );
        assert_eq!(
            keys(s.scan_back(Table::Audit, Some(b"c"), 10).unwrap()),
            [b"b", b"a"]
        );
        assert!(s.scan_from(Table::Audit, b"e", 10).unwrap().is_empty());
    }

    /// Writers commit the same counter to two tables in one `Txn` while
    /// exports run: every export sees both halves of each commit or neither.
    #[test]
    fn export_sees_each_commit_wholly_or_not_at_all() {
        let (_d, s) = open();
        let s = std::sync::Arc::new(s);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writers: Vec<_> = (0..2u32)
            .map(|w| {
                let (s, stop) = (s.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut i = 0u32;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let key = format!("w{w}");
                        let txn = Txn::new()
                            .put(Table::Clusters, key.clone(), i.to_string())
                            .put(Table::Services, key, i.to_string());
                        s.commit(&txn).unwrap();
                        i += 1;
                    }
                    i
                })
            })
            .collect();
        for _ in 0..200 {
            let mut seen: std::collections::HashMap<(Table, Vec<u8>), Vec<u8>> = Default::default();
            s.export(&mut |t, k, v| {
                seen.insert((t, k.to_vec()), v.to_vec());
                Ok(())
            })
            .unwrap();
            for w in 0..2 {
                let k = format!("w{w}").into_bytes();
                assert_eq!(
                    seen.get(&(Table::Clusters, k.clone())),
                    seen.get(&(Table::Services, k)),
                    "an export saw half of a commit"
                );
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for w in writers {
            assert!(w.join().unwrap() > 0);
        }
    }

    #[test]
    fn data_survives_reopen_after_flush() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = SledStore::open(dir.path()).unwrap();
            s.commit(&Txn::new().put(Table::Instances, "i", "v"))
                .unwrap();
            s.flush().unwrap();
        }
        let s = SledStore::open_when_free(dir.path()).unwrap();
        assert_eq!(s.get(Table::Instances, b"i").unwrap().unwrap(), b"v");
    }

    #[test]
    fn a_reopen_waits_for_the_lock_of_a_store_being_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = SledStore::open(dir.path()).unwrap();
        // Held: a plain open is refused with the lock error the helper waits on.
        let Err(err) = SledStore::open(dir.path()) else {
            panic!("a second open while the lock is held succeeded");
        };
        assert!(err.to_string().contains("could not acquire lock"), "{err}");
        let dropper = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(200));
            drop(first);
        });
        assert!(SledStore::open_when_free(dir.path()).is_ok());
        dropper.join().unwrap();
    }
}
