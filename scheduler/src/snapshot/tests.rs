//! Unit tests of snapshots over a real sled store in a temp dir: the
//! round trip, and every way a file or a target is refused without a
//! byte written.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::sync::Arc;

use super::*;
use crate::store::{Store, Table, Txn};

const CA: &str = "-----BEGIN CERTIFICATE-----\nnot really\n-----END CERTIFICATE-----\n";
const KEY: &str = "-----BEGIN PRIVATE KEY-----\nnot really\n-----END PRIVATE KEY-----\n";
const MARKER: &[u8] = b"a-value-to-find-and-corrupt";

fn ca() -> CaFiles {
    CaFiles {
        cert_pem: CA.to_owned(),
        key_pem: KEY.to_owned(),
    }
}

type Dump = BTreeMap<(&'static str, Vec<u8>), Vec<u8>>;

fn dump(store: &dyn Store) -> Dump {
    let mut d = Dump::new();
    store
        .export(&mut |t, k, v| {
            d.insert((t.name(), k.to_vec()), v.to_vec());
            Ok(())
        })
        .unwrap();
    d
}

/// A store with a record in several tables, at `schema`.
fn store_at(dir: &Path, schema: u32) -> SledStore {
    let s = SledStore::open(dir).unwrap();
    let mut txn = Txn::new().put(
        Table::Meta,
        db::SCHEMA_KEY,
        serde_json::to_vec(&schema).unwrap(),
    );
    for (i, t) in Table::ALL.into_iter().skip(1).enumerate() {
        txn = txn.put(t, format!("k{i}"), format!("{{\"n\":{i}}}")).put(
            t,
            vec![0xff, 0, i as u8],
            vec![1, 2, 3],
        );
    }
    txn = txn.put(Table::Families, "marker", MARKER);
    s.commit(&txn).unwrap();
    s
}

/// A snapshot file of a schema-`schema` store, and its source's dump.
fn snapshot_file(dir: &Path, schema: u32) -> (PathBuf, Dump) {
    let s = store_at(&dir.join("source"), schema);
    let file = dir.join("berth.snap");
    let (out, taken) = write(&s, Some(&ca()), fs::File::create(&file).unwrap()).unwrap();
    drop(out);
    assert_eq!(taken.header.schema_version, schema);
    assert_eq!(taken.counts.files, 2);
    assert_eq!(taken.counts.bytes, fs::metadata(&file).unwrap().len());
    (file, dump(&s))
}

fn assert_nothing_written(target: &Path) {
    assert!(
        !target.exists() || fs::read_dir(target).unwrap().next().is_none(),
        "the restore wrote into {}",
        target.display()
    );
}

fn restore_fails(file: &Path, target: &Path) -> SnapshotError {
    let e = restore(file, target).unwrap_err();
    assert_nothing_written(target);
    e
}

#[test]
fn a_restore_holds_every_record_and_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (file, before) = snapshot_file(dir.path(), SCHEMA_VERSION);
    let target = dir.path().join("restored");
    let restored = restore(&file, &target).unwrap();
    assert_eq!(restored.counts.records, before.len() as u64);
    assert_eq!(restored.files, vec!["tls/ca.pem", "tls/ca.key"]);
    assert_eq!(restored.tables.len(), Table::ALL.len());
    let after = dump(&SledStore::open_when_free(&target).unwrap());
    assert_eq!(after, before);
    assert_eq!(fs::read_to_string(target.join("tls/ca.pem")).unwrap(), CA);
    assert_eq!(fs::read_to_string(target.join("tls/ca.key")).unwrap(), KEY);
    let mode = |f: &str| fs::metadata(target.join(f)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("tls/ca.key"), 0o600);
    assert_eq!(mode("tls/ca.pem"), 0o644);
    // Never the secrets key.
    assert!(!target.join("secrets.key").exists());
    // An existing empty directory is fine too.
    let empty = dir.path().join("empty");
    fs::create_dir(&empty).unwrap();
    restore(&file, &empty).unwrap();
    assert_eq!(dump(&SledStore::open_when_free(&empty).unwrap()), before);
}

#[test]
fn a_non_empty_target_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = snapshot_file(dir.path(), SCHEMA_VERSION);
    let target = dir.path().join("used");
    fs::create_dir(&target).unwrap();
    fs::write(target.join("secrets.key"), [0u8; 32]).unwrap();
    let e = restore(&file, &target).unwrap_err();
    assert!(matches!(e, SnapshotError::NotEmpty { .. }), "{e}");
    assert!(e.to_string().contains("not empty"), "{e}");
    assert_eq!(fs::read_dir(&target).unwrap().count(), 1);
    let e = restore(&file, &file).unwrap_err();
    assert!(matches!(e, SnapshotError::NotADirectory { .. }), "{e}");
}

#[test]
fn a_changed_byte_fails_the_checksum() {
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = snapshot_file(dir.path(), SCHEMA_VERSION);
    let mut bytes = fs::read(&file).unwrap();
    let at = bytes
        .windows(MARKER.len())
        .position(|w| w == MARKER)
        .unwrap();
    bytes[at] ^= 0x20;
    fs::write(&file, &bytes).unwrap();
    let e = restore_fails(&file, &dir.path().join("t"));
    assert!(matches!(e, SnapshotError::Checksum { .. }), "{e}");
    assert!(e.to_string().contains("corrupt"), "{e}");
    // The checksum itself changed.
    let (file, _) = snapshot_file(&dir.path().join("2"), SCHEMA_VERSION);
    let mut bytes = fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(&file, &bytes).unwrap();
    let e = restore_fails(&file, &dir.path().join("t"));
    assert!(matches!(e, SnapshotError::Checksum { .. }), "{e}");
}

#[test]
fn a_truncated_file_is_refused_wherever_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = snapshot_file(dir.path(), SCHEMA_VERSION);
    let bytes = fs::read(&file).unwrap();
    let cut = dir.path().join("cut.snap");
    for len in [
        0,
        5,
        12,
        20,
        bytes.len() / 2,
        bytes.len() - 33,
        bytes.len() - 1,
    ] {
        fs::write(&cut, &bytes[..len]).unwrap();
        let e = restore_fails(&cut, &dir.path().join("t"));
        match len {
            // Too short to hold the magic.
            0 | 5 => assert!(matches!(e, SnapshotError::NotASnapshot), "{len}: {e}"),
            _ => {
                assert!(matches!(e, SnapshotError::Truncated { .. }), "{len}: {e}");
                assert!(e.to_string().contains("truncated"), "{e}");
            }
        }
    }
    // Bytes after the checksum.
    let mut longer = bytes.clone();
    longer.push(0);
    fs::write(&cut, &longer).unwrap();
    let e = restore_fails(&cut, &dir.path().join("t"));
    assert!(matches!(e, SnapshotError::Malformed { .. }), "{e}");
}

#[test]
fn wrong_magic_format_or_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = snapshot_file(dir.path(), SCHEMA_VERSION);
    let bytes = fs::read(&file).unwrap();
    let other = dir.path().join("other.snap");

    let mut b = bytes.clone();
    b[..8].copy_from_slice(b"SQLite f");
    fs::write(&other, &b).unwrap();
    let e = restore_fails(&other, &dir.path().join("t"));
    assert!(matches!(e, SnapshotError::NotASnapshot), "{e}");

    let mut b = bytes.clone();
    b[8..12].copy_from_slice(&2u32.to_be_bytes());
    fs::write(&other, &b).unwrap();
    let e = restore_fails(&other, &dir.path().join("t"));
    assert!(
        matches!(
            e,
            SnapshotError::UnsupportedFormat {
                found: 2,
                supported: 1
            }
        ),
        "{e}"
    );

    // A snapshot of a store newer than this scheduler.
    let (newer, _) = snapshot_file(&dir.path().join("newer"), SCHEMA_VERSION + 1);
    let e = restore_fails(&newer, &dir.path().join("t"));
    assert!(matches!(e, SnapshotError::SchemaTooNew { .. }), "{e}");
}

#[test]
fn unknown_tables_and_files_are_refused() {
    // Written by hand: the writer cannot produce them.
    let dir = tempfile::tempdir().unwrap();
    let header = format::Header {
        schema_version: SCHEMA_VERSION,
        created_at: "2025-01-01T00:00:00Z".into(),
        berth_version: "test".into(),
        tables: vec![],
    };
    let w = format::Writer::new(Vec::new(), &header).unwrap();
    let (mut bytes, _) = w.finish().unwrap();
    // Drop the end and checksum (41 bytes); add a file record by hand.
    bytes.truncate(bytes.len() - 41);
    bytes.push(2);
    let path = b"../secrets.key";
    bytes.extend_from_slice(&(path.len() as u16).to_be_bytes());
    bytes.extend_from_slice(path);
    bytes.extend_from_slice(&0u32.to_be_bytes());
    let file = dir.path().join("evil.snap");
    fs::write(&file, &bytes).unwrap();
    let e = restore_fails(&file, &dir.path().join("t"));
    assert!(matches!(e, SnapshotError::Malformed { .. }), "{e}");
    assert!(e.to_string().contains("never carries"), "{e}");
}

/// A snapshot of an older store restores as it is, and the scheduler's
/// start migrates it.
#[tokio::test]
async fn an_older_schema_is_migrated_when_the_scheduler_opens_it() {
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = snapshot_file(dir.path(), 6);
    let target = dir.path().join("restored");
    let restored = restore(&file, &target).unwrap();
    assert_eq!(restored.header.schema_version, 6);
    let store: Arc<dyn Store> = Arc::new(SledStore::open_when_free(&target).unwrap());
    assert_eq!(db::stored_schema_version(store.as_ref()).unwrap(), Some(6));
    let db = crate::db::Db::open(store.clone()).await.unwrap();
    assert_eq!(
        db::stored_schema_version(store.as_ref()).unwrap(),
        Some(SCHEMA_VERSION)
    );
    db.close().await;
}
