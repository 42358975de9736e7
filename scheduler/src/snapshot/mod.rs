//! Backups of the control plane (docs/backup.md): a consistent snapshot
//! of every table of the store plus the cluster CA's files, in one
//! versioned, checksummed file ([`format`]), and its restore into an empty
//! data dir.
//!
//! - [`write`]: the snapshot of a store, as of one point in time
//!   ([`Store::export`] pauses commits while it reads, so each committed
//!   `Txn` is in it wholly or not at all). The API's `SaveSnapshot`
//!   (`api::snapshot`) spools it with [`spool`] and streams it.
//! - [`restore`]: reads the file through once (structure, known tables and
//!   files, schema version, checksum) before it writes anything, then
//!   writes the records through [`SledStore`] and flushes. The restored
//!   store keeps the snapshot's schema version: the scheduler's start
//!   migrates it as it would the original.
//! - [`cli`]: `berth-scheduler snapshot save|restore|inspect`.
//!
//! `secrets.key` is never in a snapshot: the sealed secrets are, and they
//! open only with the key file of the data dir they came from.

pub mod cli;
pub mod format;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufReader, BufWriter, Seek, Write};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::db::{self, SCHEMA_VERSION};
use crate::store::{SledStore, Store, StoreError, Table, Txn};
use crate::tls::{self, TlsError};
use format::{Counts, Entry, Header, Reader, Writer};

/// Records per `Txn` when a restore writes the store.
const RESTORE_BATCH: usize = 1000;

/// Why a snapshot could not be taken, read or restored.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("reading the snapshot: {0}")]
    Read(#[source] io::Error),
    #[error("writing the snapshot: {0}")]
    Write(#[source] io::Error),
    #[error("not a Berth snapshot (it does not start with \"BERTHSNP\")")]
    NotASnapshot,
    #[error("snapshot format version {found} is not supported (this berth-scheduler reads version {supported})")]
    UnsupportedFormat { found: u32, supported: u32 },
    #[error("the snapshot ends early, at byte {at}: the file is truncated or corrupt")]
    Truncated { at: u64 },
    #[error("the snapshot is corrupt at byte {at}: {what}")]
    Malformed { at: u64, what: String },
    #[error("the snapshot is corrupt: its checksum is sha256:{computed}, but it records sha256:{recorded}")]
    Checksum { recorded: String, computed: String },
    #[error("the snapshot has store schema version {found}, but this berth-scheduler understands at most {supported}; use a newer berth-scheduler")]
    SchemaTooNew { found: u32, supported: u32 },
    #[error("the snapshot is corrupt: its header says store schema version {header}, its schema record says {stored}")]
    SchemaMismatch { header: u32, stored: String },
    #[error("{}: restore only into an empty or new data directory; this one is not empty", path.display())]
    NotEmpty { path: PathBuf },
    #[error("{}: not a directory", path.display())]
    NotADirectory { path: PathBuf },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("writing the cluster CA: {0}")]
    Tls(#[from] TlsError),
}

/// The cluster CA's files as a snapshot carries them. `Debug` shows no key.
#[derive(Clone)]
pub struct CaFiles {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for CaFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaFiles").finish_non_exhaustive()
    }
}

/// What [`write`] did.
#[derive(Debug, Clone)]
pub struct Taken {
    pub header: Header,
    pub counts: Counts,
    /// How long commits waited for the export.
    pub paused: Duration,
}

/// Writes a snapshot of `store` (and `ca`'s files) to `out`.
pub fn write<W: Write>(
    store: &dyn Store,
    ca: Option<&CaFiles>,
    out: W,
) -> Result<(W, Taken), SnapshotError> {
    // The schema changes only at start, before the API serves.
    let schema_version = db::stored_schema_version(store)?.unwrap_or(SCHEMA_VERSION);
    let header = Header {
        schema_version,
        created_at: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        berth_version: berth_proto::VERSION.to_owned(),
        tables: Table::ALL.iter().map(|t| t.name().to_owned()).collect(),
    };
    let mut w = Writer::new(out, &header).map_err(SnapshotError::Write)?;
    let start = tokio::time::Instant::now();
    store.export(&mut |table, key, value| w.record(table, key, value))?;
    let paused = start.elapsed();
    if let Some(ca) = ca {
        w.file(format::FILES[0], ca.cert_pem.as_bytes())
            .and_then(|()| w.file(format::FILES[1], ca.key_pem.as_bytes()))
            .map_err(SnapshotError::Write)?;
    }
    let (out, counts) = w.finish().map_err(SnapshotError::Write)?;
    Ok((
        out,
        Taken {
            header,
            counts,
            paused,
        },
    ))
}

/// Writes a snapshot into an unlinked temporary file in `dir` (mode 0600,
/// gone when the handle is dropped, also after a crash) and returns it
/// positioned at its start, for streaming without holding the store.
pub fn spool(
    store: &dyn Store,
    ca: Option<&CaFiles>,
    dir: &Path,
) -> Result<(fs::File, Taken), SnapshotError> {
    let path = dir.join(format!(".snapshot-{}.part", uuid::Uuid::new_v4()));
    let io_err = |source| SnapshotError::Io {
        path: path.clone(),
        source,
    };
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(io_err)?;
    fs::remove_file(&path).map_err(io_err)?;
    let (out, taken) = write(store, ca, BufWriter::new(file))?;
    let mut file = out
        .into_inner()
        .map_err(|e| SnapshotError::Write(e.into_error()))?;
    file.rewind().map_err(io_err)?;
    Ok((file, taken))
}

/// What a snapshot file holds, verified.
#[derive(Debug, Clone)]
pub struct Inspected {
    pub header: Header,
    pub counts: Counts,
    /// Records per table, by table name.
    pub tables: BTreeMap<&'static str, u64>,
    /// The data-dir files it carries.
    pub files: Vec<&'static str>,
}

/// Reads `file` through: structure, tables, files, schema and checksum.
pub fn inspect(file: &Path) -> Result<Inspected, SnapshotError> {
    let mut reader = open(file)?;
    let header = reader.header().clone();
    if header.schema_version > SCHEMA_VERSION {
        return Err(SnapshotError::SchemaTooNew {
            found: header.schema_version,
            supported: SCHEMA_VERSION,
        });
    }
    let mut tables = BTreeMap::new();
    let mut files = Vec::new();
    let mut counts = Counts::default();
    while let Some(entry) = reader.next_entry()? {
        match entry {
            Entry::Record { table, key, value } => {
                if table == Table::Meta && key == db::SCHEMA_KEY {
                    let stored: Option<u32> = serde_json::from_slice(&value).ok();
                    if stored != Some(header.schema_version) {
                        return Err(SnapshotError::SchemaMismatch {
                            header: header.schema_version,
                            stored: String::from_utf8_lossy(&value).into_owned(),
                        });
                    }
                }
                *tables.entry(table.name()).or_insert(0) += 1;
                counts.records += 1;
            }
            Entry::File { path, .. } => {
                files.push(path);
                counts.files += 1;
            }
        }
    }
    counts.bytes = fs::metadata(file)
        .map_err(|source| SnapshotError::Io {
            path: file.to_owned(),
            source,
        })?
        .len();
    Ok(Inspected {
        header,
        counts,
        tables,
        files,
    })
}

fn open(file: &Path) -> Result<Reader<BufReader<fs::File>>, SnapshotError> {
    let f = fs::File::open(file).map_err(|source| SnapshotError::Io {
        path: file.to_owned(),
        source,
    })?;
    Reader::open(BufReader::new(f))
}

/// Refuses a `data_dir` that exists and is not an empty directory.
/// Returns whether it exists.
fn check_empty(data_dir: &Path) -> Result<bool, SnapshotError> {
    let io_err = |source| SnapshotError::Io {
        path: data_dir.to_owned(),
        source,
    };
    match fs::metadata(data_dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err(e)),
        Ok(m) if !m.is_dir() => Err(SnapshotError::NotADirectory {
            path: data_dir.to_owned(),
        }),
        Ok(_) => match fs::read_dir(data_dir).map_err(io_err)?.next() {
            None => Ok(true),
            Some(_) => Err(SnapshotError::NotEmpty {
                path: data_dir.to_owned(),
            }),
        },
    }
}

/// Restores the snapshot `file` into `data_dir`, which must be empty or
/// absent. Nothing is written unless the whole file checks out; a failure
/// while writing removes what was written.
pub fn restore(file: &Path, data_dir: &Path) -> Result<Inspected, SnapshotError> {
    let existed = check_empty(data_dir)?;
    let inspected = inspect(file)?;
    let result = write_store(file, data_dir);
    if result.is_err() {
        clean_up(data_dir, existed);
    }
    result.map(|()| inspected)
}

fn write_store(file: &Path, data_dir: &Path) -> Result<(), SnapshotError> {
    let mut reader = open(file)?;
    let store = SledStore::open(data_dir)?;
    let mut txn = Txn::new();
    let mut ca = Vec::new();
    while let Some(entry) = reader.next_entry()? {
        match entry {
            Entry::Record { table, key, value } => {
                txn.add_put(table, key, value);
                if txn.ops.len() >= RESTORE_BATCH {
                    store.commit(&std::mem::take(&mut txn))?;
                }
            }
            Entry::File { path, contents } => ca.push((path, contents)),
        }
    }
    store.commit(&txn)?;
    store.flush()?;
    drop(store);
    for (path, contents) in ca {
        // The key private; the certificate as the scheduler writes it.
        let mode = if path.ends_with(tls::CA_KEY_FILE) {
            0o600
        } else {
            0o644
        };
        tls::write_atomic(&data_dir.join(path), &contents, mode)?;
    }
    Ok(())
}

/// Best effort after a failed restore: the target was empty or absent.
fn clean_up(data_dir: &Path, existed: bool) {
    let result = if existed {
        fs::read_dir(data_dir).and_then(|entries| {
            for e in entries {
                let p = e?.path();
                if p.is_dir() {
                    fs::remove_dir_all(&p)?;
                } else {
                    fs::remove_file(&p)?;
                }
            }
            Ok(())
        })
    } else {
        fs::remove_dir_all(data_dir)
    };
    if let Err(e) = result {
        tracing::warn!(data_dir = %data_dir.display(), cause = %e, "cannot remove what a failed restore wrote");
    }
}
