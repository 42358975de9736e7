//! Storage: one narrow trait ([`Store`]) between the scheduler and its
//! database, and the sled implementation behind it.
//!
//! The trait is deliberately small — point reads, prefix scans, one atomic
//! compare-and-commit, and a durability barrier — so that a distributed
//! backend (etcd's `Txn` with compares maps onto [`Txn`] directly) can replace
//! sled when several scheduler replicas are wanted.
//!
//! Invariant: only this module touches sled. Records above it are typed
//! (see [`crate::db`]); bytes live only here.

mod group_commit;
mod sled_store;

pub use group_commit::GroupCommit;
pub use sled_store::SledStore;

/// The typed trees of the store. Each is a separate sled tree (an etcd
/// backend would use a key prefix per table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    /// Schema version and other store-wide facts.
    Meta,
    /// Cluster name → cluster record.
    Clusters,
    /// Family name → family record (last revision issued).
    Families,
    /// `family` 0x00 `revision (big-endian u32)` → task-definition record.
    TaskDefinitions,
    /// Container-instance id → instance record.
    Instances,
    /// Task id → task record.
    Tasks,
    /// `instance id` 0x00 `task id` → empty: the tasks of an instance.
    /// Written in the same `Txn` as the task.
    InstanceTasks,
    /// Container-instance id → what its tasks hold (resources, host ports)
    /// and the generation of its desired set.
    Allocations,
    /// Operator-token id → token record (name, role, SHA-256 of the secret).
    Tokens,
    /// Time-ordered event id → audit record of a mutating call.
    Audit,
    /// Activation id → activation record (hashed code).
    Activations,
    /// Client-certificate serial (hex) → revocation record.
    RevokedCerts,
    /// Secret name → its current version, sealed (see `crate::secrets`).
    Secrets,
    /// `cluster` 0x00 `clientToken` → what the RunTask with that token
    /// placed (idempotent retries).
    RunTokens,
    /// `cluster` 0x00 `service name` → service record (its deployments and
    /// events included).
    Services,
    /// Target-group name → target-group record.
    TargetGroups,
    /// `kind` (one byte) `time (big-endian u64 ms)` `key` → empty: what
    /// retention removes, oldest first per kind (`crate::retention`).
    /// Written in the same `Txn` as what it names.
    Retention,
    /// Event sequence (big-endian u64) → event of a state change, written in
    /// the `Txn` of the change (`crate::events`).
    Events,
    /// Webhook subscriptions, their delivery cursors, redrives and dead
    /// letters (`crate::db::webhooks` names the keys).
    Webhooks,
    /// Schedule name → scheduled task (EventBridge Scheduler's schedule),
    /// its last fires included.
    Schedules,
    /// `cluster` 0x00 `service name` → the service's scalable target: its
    /// min/max, scaling policies, scheduled actions and activities.
    ScalableTargets,
}

impl Table {
    pub const ALL: [Table; 21] = [
        Table::Meta,
        Table::Clusters,
        Table::Families,
        Table::TaskDefinitions,
        Table::Instances,
        Table::Tasks,
        Table::InstanceTasks,
        Table::Allocations,
        Table::Tokens,
        Table::Audit,
        Table::Activations,
        Table::RevokedCerts,
        Table::Secrets,
        Table::RunTokens,
        Table::Services,
        Table::TargetGroups,
        Table::Retention,
        Table::Events,
        Table::Webhooks,
        Table::Schedules,
        Table::ScalableTargets,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Table::Meta => "meta",
            Table::Clusters => "clusters",
            Table::Families => "families",
            Table::TaskDefinitions => "task_definitions",
            Table::Instances => "instances",
            Table::Tasks => "tasks",
            Table::InstanceTasks => "instance_tasks",
            Table::Allocations => "allocations",
            Table::Tokens => "tokens",
            Table::Audit => "audit",
            Table::Activations => "activations",
            Table::RevokedCerts => "revoked_certs",
            Table::Secrets => "secrets",
            Table::RunTokens => "run_tokens",
            Table::Services => "services",
            Table::TargetGroups => "target_groups",
            Table::Retention => "retention",
            Table::Events => "events",
            Table::Webhooks => "webhooks",
            Table::Schedules => "schedules",
            Table::ScalableTargets => "scalable_targets",
        }
    }

    /// The table [`Table::name`] names.
    pub fn from_name(name: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.name() == name)
    }

    fn index(self) -> usize {
        match self {
            Table::Meta => 0,
            Table::Clusters => 1,
            Table::Families => 2,
            Table::TaskDefinitions => 3,
            Table::Instances => 4,
            Table::Tasks => 5,
            Table::InstanceTasks => 6,
            Table::Allocations => 7,
            Table::Tokens => 8,
            Table::Audit => 9,
            Table::Activations => 10,
            Table::RevokedCerts => 11,
            Table::Secrets => 12,
            Table::RunTokens => 13,
            Table::Services => 14,
            Table::TargetGroups => 15,
            Table::Retention => 16,
            Table::Events => 17,
            Table::Webhooks => 18,
            Table::Schedules => 19,
            Table::ScalableTargets => 20,
        }
    }
}

/// A precondition of a [`Txn`]: the commit happens only if every check holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// The key has no value.
    Absent(Table, Vec<u8>),
    /// The key holds exactly these bytes.
    Equals(Table, Vec<u8>, Vec<u8>),
}

/// A write of a [`Txn`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put(Table, Vec<u8>, Vec<u8>),
    Delete(Table, Vec<u8>),
}

/// An atomic compare-and-commit: all checks hold and all ops apply, or
/// nothing happens and [`StoreError::Conflict`] is returned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Txn {
    pub checks: Vec<Check>,
    pub ops: Vec<Op>,
}

/// A key of several parts: each part, then a 0 byte, then the next (parts
/// hold no 0 byte: names and ids never do). A prefix of whole parts ends
/// with its 0 byte, so a scan of `composite_key(&[b"a"], true)` never sees
/// the keys of `ab`.
pub fn composite_key(parts: &[&[u8]], trailing_separator: bool) -> Vec<u8> {
    let mut k = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            k.push(0);
        }
        k.extend_from_slice(p);
    }
    if trailing_separator {
        k.push(0);
    }
    k
}

impl Txn {
    pub fn new() -> Self {
        Self::default()
    }

    /// In-place forms of the builders, for transactions assembled in a
    /// loop: `txn.add_put(..)` rather than `txn = take(&mut txn).put(..)`.
    pub fn add_check_absent(&mut self, table: Table, key: impl Into<Vec<u8>>) -> &mut Self {
        self.checks.push(Check::Absent(table, key.into()));
        self
    }

    pub fn add_check_equals(
        &mut self,
        table: Table,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
    ) -> &mut Self {
        self.checks
            .push(Check::Equals(table, key.into(), value.into()));
        self
    }

    pub fn add_put(
        &mut self,
        table: Table,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
    ) -> &mut Self {
        self.ops.push(Op::Put(table, key.into(), value.into()));
        self
    }

    pub fn add_delete(&mut self, table: Table, key: impl Into<Vec<u8>>) -> &mut Self {
        self.ops.push(Op::Delete(table, key.into()));
        self
    }

    pub fn check_absent(mut self, table: Table, key: impl Into<Vec<u8>>) -> Self {
        self.add_check_absent(table, key);
        self
    }

    pub fn check_equals(
        mut self,
        table: Table,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
    ) -> Self {
        self.add_check_equals(table, key, value);
        self
    }

    pub fn put(mut self, table: Table, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        self.add_put(table, key, value);
        self
    }

    pub fn delete(mut self, table: Table, key: impl Into<Vec<u8>>) -> Self {
        self.add_delete(table, key);
        self
    }
}

/// Storage failures. `Conflict` is expected under concurrency and retried by
/// callers; the rest are failures of the backend.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a concurrent write changed the data this write was based on")]
    Conflict,
    #[error("store backend failed: {0}")]
    Backend(#[from] sled::Error),
    #[error("data directory {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("record {table}/{key} is corrupt: {source}")]
    Corrupt {
        table: &'static str,
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot encode a {table} record: {source}")]
    Encode {
        table: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("the data directory has schema version {found}, but this scheduler understands at most {supported}; use a newer berth-scheduler")]
    SchemaTooNew { found: u32, supported: u32 },
    #[error("the durability flusher has stopped")]
    FlusherGone,
    /// The sink of [`Store::export`] failed (writing the snapshot).
    #[error("exporting the store: {0}")]
    Export(#[source] std::io::Error),
}

/// A stored key and its value.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// The narrow storage seam. Implementations are synchronous and cheap to
/// call from async code for point operations; [`Store::flush`] is the one
/// blocking call and is reached only through [`GroupCommit`].
pub trait Store: Send + Sync + 'static {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Every (key, value) whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, table: Table, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError>;
    /// At most `limit` (key, value) pairs whose key is `from` or after it,
    /// in key order: a bounded read of an ordered index.
    fn scan_from(
        &self,
        table: Table,
        from: &[u8],
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError>;
    /// At most `limit` (key, value) pairs whose key is before `before`
    /// (`None`: from the last key), in descending key order.
    fn scan_back(
        &self,
        table: Table,
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError>;
    /// Applies `txn` atomically, or returns [`StoreError::Conflict`].
    fn commit(&self, txn: &Txn) -> Result<(), StoreError>;
    /// Blocks until everything committed so far is on stable storage.
    fn flush(&self) -> Result<(), StoreError>;
    /// Approximate bytes on disk, for metrics and benchmarks.
    fn size_on_disk(&self) -> Result<u64, StoreError>;
    /// Hands `sink` every record of every table (in [`Table::ALL`] order,
    /// keys in order) as of one point in time: no commit is in progress
    /// while it runs, and commits that start meanwhile wait until it
    /// returns, so each committed [`Txn`] is in the export wholly or not at
    /// all (snapshots, `crate::snapshot`).
    fn export(&self, sink: &mut ExportSink<'_>) -> Result<(), StoreError>;
}

/// Where [`Store::export`] puts each record: `(table, key, value)`.
pub type ExportSink<'a> = dyn FnMut(Table, &[u8], &[u8]) -> std::io::Result<()> + 'a;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composite_keys_separate_their_parts() {
        assert_eq!(composite_key(&[b"a", b"b"], false), b"a\0b");
        assert_eq!(composite_key(&[b"a"], true), b"a\0");
        // A prefix of whole parts never matches a longer first part.
        let prefix = composite_key(&[b"a"], true);
        assert!(composite_key(&[b"a", b"x"], false).starts_with(&prefix));
        assert!(!composite_key(&[b"ab", b"x"], false).starts_with(&prefix));
    }

    #[test]
    fn in_place_builders_match_the_chained_ones() {
        let chained = Txn::new()
            .check_absent(Table::Tokens, "a")
            .check_equals(Table::Tokens, "b", "x")
            .put(Table::Tokens, "c", "y")
            .delete(Table::Tokens, "d");
        let mut in_place = Txn::new();
        in_place
            .add_check_absent(Table::Tokens, "a")
            .add_check_equals(Table::Tokens, "b", "x")
            .add_put(Table::Tokens, "c", "y")
            .add_delete(Table::Tokens, "d");
        assert_eq!(format!("{chained:?}"), format!("{in_place:?}"));
    }
}
