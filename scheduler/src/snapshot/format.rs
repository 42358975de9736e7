//! The snapshot file, format version 1. Everything is big-endian:
//!
//! ```text
//! "BERTHSNP"                      magic, 8 bytes
//! u32 format version              FORMAT_VERSION
//! u32 n, n bytes of JSON          the Header: store schema version, creation
//!                                 time, berth version, table names
//! records, each a kind byte:
//!   1 table record                u16 n + table name, u32 n + key, u32 n + value
//!   2 file                        u16 n + path (one of FILES), u32 n + contents
//!   0 end                         u64 number of records before it
//! 32 bytes                        SHA-256 of every byte before them
//! ```
//!
//! Nothing may follow the checksum. [`Reader`] checks the structure as it
//! goes and the checksum at the end, so a caller that must write nothing
//! from a bad file reads it through once before acting on it.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::SnapshotError;
use crate::store::Table;

/// The first bytes of every snapshot.
pub const MAGIC: &[u8; 8] = b"BERTHSNP";
/// The layout this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// The files of the data dir a snapshot may carry, relative to it: the
/// cluster CA (agents' certificates chain to it). Never `secrets.key`.
pub const FILES: [&str; 2] = ["tls/ca.pem", "tls/ca.key"];

const KIND_END: u8 = 0;
const KIND_RECORD: u8 = 1;
const KIND_FILE: u8 = 2;
/// Bounds that keep a corrupt length from allocating gigabytes.
const MAX_HEADER: u32 = 64 * 1024;
const MAX_VALUE: u32 = 64 * 1024 * 1024;

/// What a snapshot says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// The store's schema version (`db::SCHEMA_VERSION` of the writer);
    /// a scheduler started on the restored store migrates from it.
    pub schema_version: u32,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// `berth_proto::VERSION` of the scheduler that wrote it.
    pub berth_version: String,
    /// The tables the store had, in order.
    pub tables: Vec<String>,
}

/// One item of a snapshot.
#[derive(Debug, PartialEq, Eq)]
pub enum Entry {
    Record {
        table: Table,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    /// A file of the data dir; `path` is one of [`FILES`].
    File {
        path: &'static str,
        contents: Vec<u8>,
    },
}

/// Counts of what a snapshot holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub records: u64,
    pub files: u64,
    /// Bytes of the whole file.
    pub bytes: u64,
}

/// Writes a snapshot: [`Writer::new`] puts the header, [`Writer::finish`]
/// the end and the checksum.
pub struct Writer<W: Write> {
    out: W,
    hash: Sha256,
    counts: Counts,
}

impl<W: Write> Writer<W> {
    pub fn new(out: W, header: &Header) -> io::Result<Self> {
        let json = serde_json::to_vec(header)?;
        let mut w = Self {
            out,
            hash: Sha256::new(),
            counts: Counts::default(),
        };
        w.put(MAGIC)?;
        w.put(&FORMAT_VERSION.to_be_bytes())?;
        w.put_u32_len(&json)?;
        Ok(w)
    }

    pub fn record(&mut self, table: Table, key: &[u8], value: &[u8]) -> io::Result<()> {
        self.put(&[KIND_RECORD])?;
        self.put_u16_len(table.name().as_bytes())?;
        self.put_u32_len(key)?;
        self.put_u32_len(value)?;
        self.counts.records += 1;
        Ok(())
    }

    /// `path` must be one of [`FILES`].
    pub fn file(&mut self, path: &'static str, contents: &[u8]) -> io::Result<()> {
        if !FILES.contains(&path) {
            return Err(io::Error::other(format!("{path} is not a snapshot file")));
        }
        self.put(&[KIND_FILE])?;
        self.put_u16_len(path.as_bytes())?;
        self.put_u32_len(contents)?;
        self.counts.files += 1;
        Ok(())
    }

    /// Writes the end and the checksum; the output and what was written.
    pub fn finish(mut self) -> io::Result<(W, Counts)> {
        self.put(&[KIND_END])?;
        self.put(&(self.counts.records + self.counts.files).to_be_bytes())?;
        let digest = self.hash.finalize_reset();
        self.out.write_all(&digest)?;
        self.counts.bytes += digest.len() as u64;
        self.out.flush()?;
        Ok((self.out, self.counts))
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.hash.update(bytes);
        self.counts.bytes += bytes.len() as u64;
        self.out.write_all(bytes)
    }

    fn put_u16_len(&mut self, bytes: &[u8]) -> io::Result<()> {
        let n = u16::try_from(bytes.len()).map_err(|_| too_long(bytes.len()))?;
        self.put(&n.to_be_bytes())?;
        self.put(bytes)
    }

    fn put_u32_len(&mut self, bytes: &[u8]) -> io::Result<()> {
        let n = u32::try_from(bytes.len())
            .ok()
            .filter(|n| *n <= MAX_VALUE)
            .ok_or_else(|| too_long(bytes.len()))?;
        self.put(&n.to_be_bytes())?;
        self.put(bytes)
    }
}

fn too_long(n: usize) -> io::Error {
    io::Error::other(format!("a {n}-byte item is too long for a snapshot"))
}

/// Reads a snapshot: the header at [`Reader::open`], then each
/// [`Entry`] from [`Reader::next_entry`], whose `None` means the end, the
/// count and the checksum all held.
pub struct Reader<R: Read> {
    input: R,
    hash: Sha256,
    at: u64,
    header: Header,
    seen: u64,
    done: bool,
}

impl<R: Read> Reader<R> {
    pub fn open(input: R) -> Result<Self, SnapshotError> {
        let mut r = Self {
            input,
            hash: Sha256::new(),
            at: 0,
            header: Header {
                schema_version: 0,
                created_at: String::new(),
                berth_version: String::new(),
                tables: Vec::new(),
            },
            seen: 0,
            done: false,
        };
        let mut magic = [0u8; 8];
        match r.take(&mut magic) {
            Ok(()) if &magic == MAGIC => {}
            Ok(()) | Err(SnapshotError::Truncated { .. }) => {
                return Err(SnapshotError::NotASnapshot)
            }
            Err(e) => return Err(e),
        }
        let found = r.u32()?;
        if found != FORMAT_VERSION {
            return Err(SnapshotError::UnsupportedFormat {
                found,
                supported: FORMAT_VERSION,
            });
        }
        let at = r.at;
        let json = r.bytes_u32(MAX_HEADER)?;
        r.header = serde_json::from_slice(&json).map_err(|e| SnapshotError::Malformed {
            at,
            what: format!("the header is not valid JSON: {e}"),
        })?;
        Ok(r)
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The next entry, or `None` once the end has been read and the
    /// checksum verified.
    pub fn next_entry(&mut self) -> Result<Option<Entry>, SnapshotError> {
        if self.done {
            return Ok(None);
        }
        let at = self.at;
        let mut kind = [0u8; 1];
        self.take(&mut kind)?;
        match kind[0] {
            KIND_RECORD => {
                let name = self.name()?;
                let table = Table::from_name(&name).ok_or_else(|| SnapshotError::Malformed {
                    at,
                    what: format!("unknown table {name:?} (a newer berth-scheduler's snapshot?)"),
                })?;
                let key = self.bytes_u32(MAX_VALUE)?;
                let value = self.bytes_u32(MAX_VALUE)?;
                self.seen += 1;
                Ok(Some(Entry::Record { table, key, value }))
            }
            KIND_FILE => {
                let name = self.name()?;
                let path = FILES.into_iter().find(|f| *f == name).ok_or_else(|| {
                    SnapshotError::Malformed {
                        at,
                        what: format!("a file {name:?} that a snapshot never carries"),
                    }
                })?;
                let contents = self.bytes_u32(MAX_VALUE)?;
                self.seen += 1;
                Ok(Some(Entry::File { path, contents }))
            }
            KIND_END => {
                let mut n = [0u8; 8];
                self.take(&mut n)?;
                let count = u64::from_be_bytes(n);
                if count != self.seen {
                    return Err(SnapshotError::Malformed {
                        at,
                        what: format!(
                            "the end counts {count} records, but {} came before it",
                            self.seen
                        ),
                    });
                }
                let computed = self.hash.finalize_reset();
                let mut recorded = [0u8; 32];
                self.take(&mut recorded)?;
                if recorded[..] != computed[..] {
                    return Err(SnapshotError::Checksum {
                        recorded: hex::encode(recorded),
                        computed: hex::encode(computed),
                    });
                }
                let mut extra = [0u8; 1];
                if self.input.read(&mut extra).map_err(SnapshotError::Read)? != 0 {
                    return Err(SnapshotError::Malformed {
                        at: self.at,
                        what: "bytes after the checksum".to_owned(),
                    });
                }
                self.done = true;
                Ok(None)
            }
            other => Err(SnapshotError::Malformed {
                at,
                what: format!("unknown record kind {other}"),
            }),
        }
    }

    /// Fills `buf`, counting and hashing what it reads.
    fn take(&mut self, buf: &mut [u8]) -> Result<(), SnapshotError> {
        match self.input.read_exact(buf) {
            Ok(()) => {
                self.hash.update(&*buf);
                self.at += buf.len() as u64;
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                Err(SnapshotError::Truncated { at: self.at })
            }
            Err(e) => Err(SnapshotError::Read(e)),
        }
    }

    fn u32(&mut self) -> Result<u32, SnapshotError> {
        let mut b = [0u8; 4];
        self.take(&mut b)?;
        Ok(u32::from_be_bytes(b))
    }

    fn name(&mut self) -> Result<String, SnapshotError> {
        let at = self.at;
        let mut n = [0u8; 2];
        self.take(&mut n)?;
        let mut name = vec![0u8; usize::from(u16::from_be_bytes(n))];
        self.take(&mut name)?;
        String::from_utf8(name).map_err(|_| SnapshotError::Malformed {
            at,
            what: "a name that is not UTF-8".to_owned(),
        })
    }

    fn bytes_u32(&mut self, max: u32) -> Result<Vec<u8>, SnapshotError> {
        let at = self.at;
        let n = self.u32()?;
        if n > max {
            return Err(SnapshotError::Malformed {
                at,
                what: format!("a length of {n} bytes (at most {max} are allowed)"),
            });
        }
        // `n` is bounded, and a short file fails read_exact before use.
        let mut buf = vec![0u8; n as usize];
        self.take(&mut buf)?;
        Ok(buf)
    }
}
