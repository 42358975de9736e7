//! Tests of the event log on a real sled store: an event commits iff its
//! change does, sequences are gap-free and ordered under concurrent
//! writers, readers see only durable events, retention prunes from the
//! front, and a reopened store keeps every flushed event.

use std::sync::Arc;
use std::time::Duration;

use berth_proto::ecs::{DesiredStatus, TaskStatus};

use super::*;
use crate::records::TaskRecord;
use crate::store::SledStore;

fn task(id: &str) -> TaskRecord {
    let json = r#"{"family":"web","containerDefinitions":[{"name":"web","image":"x","memory":8}]}"#;
    let def = berth_proto::taskdef::parse_registration(json)
        .unwrap()
        .definition;
    let td = crate::records::TaskDefinitionRecord {
        family: "web".into(),
        revision: 1,
        status: berth_proto::taskdef::TaskDefinitionStatus::Active,
        registered_at: 0,
        deregistered_at: None,
        definition: def.clone(),
    };
    crate::db::placed_task_for_tests(id, "i-1", &td, "family:web")
}

fn bytes(t: &TaskRecord) -> Vec<u8> {
    serde_json::to_vec(t).unwrap()
}

fn open(dir: &std::path::Path) -> EventLog {
    let store: Arc<dyn Store> = Arc::new(SledStore::open_when_free(dir).unwrap());
    EventLog::new(store).unwrap()
}

fn all(log: &EventLog) -> Vec<Sequenced> {
    log.flush().unwrap();
    log.read_after(0, &EventFilter::default(), 1_000_000)
        .unwrap()
        .0
}

/// Writes task `id` with `status`, checked against `old`.
fn write(log: &EventLog, t: &TaskRecord, old: Option<&TaskRecord>) -> Result<(), StoreError> {
    let txn = match old {
        Some(o) => Txn::new().check_equals(Table::Tasks, t.id.as_str(), bytes(o)),
        None => Txn::new().check_absent(Table::Tasks, t.id.as_str()),
    };
    log.commit(&txn.put(Table::Tasks, t.id.as_str(), bytes(t)))
}

#[test]
fn an_event_commits_iff_its_change_does() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let t = task("a");
    write(&log, &t, None).unwrap();
    // A conflicting Txn (the task exists): neither the change nor an event.
    let mut t2 = t.clone();
    t2.last_status = TaskStatus::Running;
    assert!(matches!(write(&log, &t2, None), Err(StoreError::Conflict)));
    // Stale bytes: a conflict too.
    let mut stale = t.clone();
    stale.version += 7;
    assert!(matches!(
        write(&log, &t2, Some(&stale)),
        Err(StoreError::Conflict)
    ));
    let events = all(&log);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        log.get(Table::Tasks, b"a").unwrap().unwrap(),
        bytes(&t),
        "the failed writes changed nothing"
    );
    // The good write: the change and its event.
    write(&log, &t2, Some(&t)).unwrap();
    let events = all(&log);
    assert_eq!(events.len(), 2);
    let EventBody::Task { task } = &events[1].event.body else {
        panic!("{events:?}")
    };
    assert_eq!(task.last_status, TaskStatus::Running);
    // A write that changes neither status is no event.
    let mut t3 = t2.clone();
    t3.version += 1;
    write(&log, &t3, Some(&t2)).unwrap();
    assert_eq!(all(&log).len(), 2);
    // A Txn writing nothing that has events does not touch the counter.
    log.commit(&Txn::new().put(Table::Clusters, "c", "x"))
        .unwrap();
    assert_eq!(log.get(Table::Meta, NEXT_KEY).unwrap().unwrap(), seq_key(3));
}

#[test]
fn sequences_are_gap_free_and_ordered_under_concurrent_writers() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut prev: Option<TaskRecord> = None;
                for i in 0..50u32 {
                    let mut t = task(&format!("w{w}"));
                    t.last_status = if i % 2 == 0 {
                        TaskStatus::Pending
                    } else {
                        TaskStatus::Running
                    };
                    t.version = i64::from(i);
                    write(&log, &t, prev.as_ref()).unwrap();
                    prev = Some(t);
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let events = all(&log);
    assert_eq!(events.len(), 200);
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.seq, i as u64 + 1, "gap-free");
    }
    // Each writer's events are in its own write order.
    for w in 0..4 {
        let versions: Vec<i64> = events
            .iter()
            .filter_map(|e| match &e.event.body {
                EventBody::Task { task } if task.id == format!("w{w}") => Some(task.version),
                _ => None,
            })
            .collect();
        assert_eq!(versions, (0..50).collect::<Vec<_>>());
    }
}

#[test]
fn readers_see_only_flushed_events_and_are_told_of_them() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let mut rx = log.durable();
    write(&log, &task("a"), None).unwrap();
    assert_eq!(log.last_durable(), 0);
    let (none, cursor) = log.read_after(0, &EventFilter::default(), 10).unwrap();
    assert!(none.is_empty());
    assert_eq!(cursor, 0);
    assert!(!rx.has_changed().unwrap());
    log.flush().unwrap();
    assert!(rx.has_changed().unwrap());
    assert_eq!(*rx.borrow_and_update(), 1);
    let (one, cursor) = log.read_after(0, &EventFilter::default(), 10).unwrap();
    assert_eq!((one.len(), cursor), (1, 1));
    assert!(matches!(
        log.read_after(5, &EventFilter::default(), 10),
        Err(EventsError::Ahead { cursor: 5, last: 1 })
    ));
}

#[test]
fn filters_skip_but_the_cursor_moves_on() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let mut a = task("a");
    write(&log, &a, None).unwrap();
    let mut b = task("b");
    b.cluster = "other".into();
    write(&log, &b, None).unwrap();
    let old = a.clone();
    a.desired_status = DesiredStatus::Stopped;
    write(&log, &a, Some(&old)).unwrap();
    log.flush().unwrap();
    let filter = EventFilter {
        cluster: Some("other".into()),
        ..Default::default()
    };
    let (got, cursor) = log.read_after(0, &filter, 10).unwrap();
    assert_eq!(got.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![2]);
    assert_eq!(cursor, 3);
    let filter = EventFilter {
        kind: Some(EventKind::Instance),
        ..Default::default()
    };
    assert!(log.read_after(0, &filter, 10).unwrap().0.is_empty());
}

#[test]
fn retention_prunes_by_count_and_age_and_expired_cursors_fail() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    for i in 0..10 {
        write(&log, &task(&format!("t{i}")), None).unwrap();
    }
    log.flush().unwrap();
    let keep_7 = Retention {
        max_age: Duration::from_secs(3600),
        max_count: 7,
    };
    let now = crate::records::now_millis();
    assert_eq!(log.prune(keep_7, now).unwrap(), 3);
    assert_eq!(log.first().unwrap(), 4);
    let events = all(&log);
    assert_eq!(events.first().map(|e| e.seq), Some(4));
    assert_eq!(events.len(), 7);
    assert!(matches!(
        log.read_after(2, &EventFilter::default(), 10),
        Err(EventsError::Expired {
            cursor: 2,
            first: 4
        })
    ));
    // Cursor 3 has lost nothing: its next event is 4.
    assert_eq!(
        log.read_after(3, &EventFilter::default(), 10)
            .unwrap()
            .0
            .len(),
        7
    );
    // By age: an hour later, everything goes; the counter keeps counting.
    assert_eq!(log.prune(keep_7, now + 3_600_001).unwrap(), 7);
    assert_eq!(log.first().unwrap(), 11);
    write(&log, &task("late"), None).unwrap();
    let events = all(&log);
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![11]);
    assert_eq!(log.prune(keep_7, now).unwrap(), 0);
}

#[test]
fn a_reopened_store_keeps_every_flushed_event() {
    let dir = tempfile::tempdir().unwrap();
    let before = {
        let log = open(dir.path());
        for i in 0..20 {
            write(&log, &task(&format!("t{i}")), None).unwrap();
        }
        // What a write's `durable()` waits for before its reply.
        log.flush().unwrap();
        all(&log)
        // Dropped without any shutdown step, as a killed process would be.
    };
    let log = open(dir.path());
    assert_eq!(log.last_durable(), 20, "the reopened log starts durable");
    let after = all(&log);
    assert_eq!(after, before);
    // And the sequence continues without reuse.
    write(&log, &task("next"), None).unwrap();
    assert_eq!(all(&log).last().map(|e| e.seq), Some(21));
}

#[test]
fn a_spliced_record_reads_back_as_the_encoded_event() {
    let t = task("s");
    let spliced = encode_derived("id-1", 42, Derived::Task(&bytes(&t))).unwrap();
    let encoded = encode_event(&EventRecord {
        id: "id-1".into(),
        time: 42,
        body: EventBody::Task {
            task: Box::new(t.clone()),
        },
    })
    .unwrap();
    let a: serde_json::Value = serde_json::from_slice(&spliced).unwrap();
    let b: serde_json::Value = serde_json::from_slice(&encoded).unwrap();
    assert_eq!(a, b);
    let back = decode_event(&(seq_key(7).to_vec(), spliced)).unwrap();
    assert_eq!(back.seq, 7);
    assert_eq!(back.event.body, EventBody::Task { task: Box::new(t) });
}

#[test]
fn a_blind_write_reads_the_old_record_and_a_second_writer_is_fenced() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let t = task("b");
    write(&log, &t, None).unwrap();
    // A put without a check of its key: the old record is read under the
    // mutex; an unchanged status is no event.
    log.commit(&Txn::new().put(Table::Tasks, "b", bytes(&t)))
        .unwrap();
    assert_eq!(all(&log).len(), 1);
    // Another writer moves the counter behind the log's back: the next
    // commit conflicts, and the one after it succeeds from the new value.
    log.inner
        .store
        .commit(&Txn::new().put(Table::Meta, NEXT_KEY, seq_key(10).to_vec()))
        .unwrap();
    let mut running = t.clone();
    running.last_status = TaskStatus::Running;
    assert!(matches!(
        write(&log, &running, Some(&t)),
        Err(StoreError::Conflict)
    ));
    write(&log, &running, Some(&t)).unwrap();
    log.flush().unwrap();
    let (rows, _) = log.read_after(9, &EventFilter::default(), 10).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].seq, 10);
}
