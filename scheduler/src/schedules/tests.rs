//! The schedule loop's rules: what is due, the catch-up policy, the
//! flexible window, and one run per fire time with a recording launcher on
//! a real store (reopened, as after a restart).

#![allow(clippy::unwrap_used)]

use std::sync::Mutex;

use super::*;
use crate::db::schedules::ScheduleTarget;
use crate::store::SledStore;

const MIN: i64 = 60_000;
/// 2026-03-01T00:00:00Z
const T0: i64 = 1_772_323_200_000;

fn record(expr: &str) -> ScheduleRecord {
    ScheduleRecord {
        name: "nightly".into(),
        expression: expr.into(),
        timezone: "UTC".into(),
        start_date: None,
        end_date: None,
        flexible_window_minutes: 0,
        state: ScheduleState::Enabled,
        target: ScheduleTarget {
            cluster: "default".into(),
            task_definition: "batch".into(),
            count: 1,
            group: None,
            overrides: None,
            tags: Vec::new(),
            enable_execute_command: false,
        },
        created_at: T0 + 30_000,
        updated_at: T0 + 30_000,
        last_fire: None,
        fires: Vec::new(),
    }
}

fn due_at(rec: &ScheduleRecord, now: i64, catch_up: i64) -> Due {
    due(rec, &schedule_of(rec).unwrap(), now, catch_up)
}

#[test]
fn a_rate_fires_at_creation_then_every_period() {
    let mut rec = record("rate(1 minute)");
    let created = rec.created_at;
    assert_eq!(
        due_at(&rec, created, 3_600_000),
        Due {
            run: Some(created),
            missed: vec![],
            last: Some(created)
        }
    );
    rec.last_fire = Some(created);
    assert_eq!(due_at(&rec, created + MIN - 1, 3_600_000), Due::default());
    assert_eq!(
        due_at(&rec, created + MIN, 3_600_000).run,
        Some(created + MIN)
    );
}

#[test]
fn a_cron_fires_only_after_creation() {
    let rec = record("cron(* * * * ? *)");
    // Created at 00:00:30: 00:00 is before it, 00:01 is the first fire.
    assert_eq!(due_at(&rec, T0 + 59_000, 3_600_000), Due::default());
    assert_eq!(due_at(&rec, T0 + MIN, 3_600_000).run, Some(T0 + MIN));
}

#[test]
fn missed_fires_run_the_latest_once_within_the_catch_up_window() {
    let mut rec = record("cron(0/10 * * * ? *)");
    rec.last_fire = Some(T0);
    // Down from 00:00 to 00:35: 00:10 and 00:20 are missed, 00:30 runs.
    let d = due_at(&rec, T0 + 35 * MIN, 3_600_000);
    assert_eq!(d.run, Some(T0 + 30 * MIN));
    assert_eq!(d.missed, vec![T0 + 10 * MIN, T0 + 20 * MIN]);
    assert_eq!(d.last, Some(T0 + 30 * MIN));
    // With a 2-minute window, 00:30 is too old at 00:35: all missed.
    let d = due_at(&rec, T0 + 35 * MIN, 2 * MIN);
    assert_eq!(d.run, None);
    assert_eq!(d.missed.len(), 3);
    assert_eq!(d.last, Some(T0 + 30 * MIN));
}

#[test]
fn a_long_outage_lists_a_bounded_number_of_missed_fires() {
    let mut rec = record("rate(1 minute)");
    rec.last_fire = Some(rec.created_at);
    let now = rec.created_at + 10 * 24 * 60 * MIN;
    let d = due_at(&rec, now, 5 * MIN);
    assert_eq!(d.run, Some(now));
    assert!(
        d.missed.len() <= MAX_MISSED_LISTED + 1,
        "{}",
        d.missed.len()
    );
    assert_eq!(d.missed[0], rec.created_at + MIN);
}

#[test]
fn the_flexible_window_delays_each_fire_by_a_stable_offset() {
    let mut rec = record("cron(0 * * * ? *)");
    rec.flexible_window_minutes = 15;
    let fire = T0 + 60 * MIN;
    let off = flex_offset(&rec, fire);
    assert!((0..15 * MIN).contains(&off), "{off}");
    assert_eq!(off, flex_offset(&rec, fire), "stable");
    assert_eq!(due_at(&rec, fire + off - 1, 3_600_000).run, None);
    assert_eq!(due_at(&rec, fire + off, 3_600_000).run, Some(fire));
    assert_eq!(next_fire(&rec), Some(fire + off));
    // Offsets differ between fires (15 fires, not all the same).
    let offsets: std::collections::HashSet<i64> = (1..16)
        .map(|h| flex_offset(&rec, T0 + h * 60 * MIN))
        .collect();
    assert!(offsets.len() > 1);
}

#[test]
fn client_tokens_are_per_fire_and_per_incarnation() {
    let rec = record("rate(1 minute)");
    let a = rec.client_token(T0);
    assert_eq!(a, rec.client_token(T0));
    assert!(a.len() <= 64, "{a}");
    assert_ne!(a, rec.client_token(T0 + MIN));
    let mut again = rec.clone();
    again.created_at += 1;
    assert_ne!(a, again.client_token(T0));
}

#[test]
fn a_disabled_schedule_has_no_next_fire() {
    let mut rec = record("rate(5 minutes)");
    assert_eq!(next_fire(&rec), Some(rec.created_at));
    rec.state = ScheduleState::Disabled;
    assert_eq!(next_fire(&rec), None);
}

/// Records each launch; answers with one task per launch, named by token.
#[derive(Default)]
struct Recording {
    tokens: Mutex<Vec<String>>,
    refuse: bool,
}

impl Launcher for Recording {
    fn launch<'a>(
        &'a self,
        _schedule: &'a ScheduleRecord,
        client_token: String,
    ) -> BoxFuture<'a, Result<Launched, LaunchError>> {
        Box::pin(async move {
            self.tokens.lock().unwrap().push(client_token.clone());
            if self.refuse {
                return Err(LaunchError::Refused("taskDefinition: not found".into()));
            }
            Ok(Launched {
                task_ids: vec![format!("task-{client_token}")],
                failures: vec![],
            })
        })
    }
}

async fn open(dir: &std::path::Path) -> Db {
    Db::open(Arc::new(SledStore::open_when_free(dir).unwrap()))
        .await
        .unwrap()
}

#[tokio::test]
async fn each_fire_runs_once_across_passes_and_a_reopened_store() {
    let dir = tempfile::tempdir().unwrap();
    let launcher = Arc::new(Recording::default());
    let mut rec = record("rate(1 minute)");
    let created = rec.created_at;
    {
        let db = open(dir.path()).await;
        db.create_schedule(rec.clone()).await.unwrap();
        let runner = Runner::new(db.clone(), launcher.clone(), ScheduleSettings::default());
        runner.pass(created).await.unwrap();
        runner.pass(created + 1000).await.unwrap();
        runner.pass(created + MIN - 1).await.unwrap();
        assert_eq!(launcher.tokens.lock().unwrap().len(), 1);
        db.close().await;
    }
    // The "restart": a new store handle and runner see the fire recorded.
    let db = open(dir.path()).await;
    let runner = Runner::new(db.clone(), launcher.clone(), ScheduleSettings::default());
    runner.pass(created + 2000).await.unwrap();
    assert_eq!(launcher.tokens.lock().unwrap().len(), 1);
    runner.pass(created + MIN).await.unwrap();
    let tokens = launcher.tokens.lock().unwrap().clone();
    rec.created_at = created;
    assert_eq!(
        tokens,
        vec![rec.client_token(created), rec.client_token(created + MIN)]
    );
    let stored = db.schedule("nightly").unwrap().unwrap();
    assert_eq!(stored.last_fire, Some(created + MIN));
    assert_eq!(stored.fires.len(), 2);
    assert_eq!(stored.fires[0].outcome, FireOutcome::Started);
    assert_eq!(
        stored.fires[0].task_ids,
        vec![format!("task-{}", rec.client_token(created + MIN))]
    );
    db.close().await;
}

#[tokio::test]
async fn a_refused_fire_is_recorded_failed_and_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path()).await;
    let launcher = Arc::new(Recording {
        refuse: true,
        ..Default::default()
    });
    let rec = record("rate(1 hour)");
    db.create_schedule(rec.clone()).await.unwrap();
    let runner = Runner::new(db.clone(), launcher.clone(), ScheduleSettings::default());
    runner.pass(rec.created_at + 10).await.unwrap();
    runner.pass(rec.created_at + 20).await.unwrap();
    assert_eq!(launcher.tokens.lock().unwrap().len(), 1);
    let stored = db.schedule("nightly").unwrap().unwrap();
    assert_eq!(stored.fires[0].outcome, FireOutcome::Failed);
    assert_eq!(stored.fires[0].messages, ["taskDefinition: not found"]);
    db.close().await;
}

/// Answers the first launch as a scheduler that placed the tasks and then
/// died before recording the fire (the RunTask is durable, the caller never
/// hears back); later launches answer with the tasks of the token, as
/// RunTask's `clientToken` does.
#[derive(Default)]
struct CrashOnce {
    placed: Mutex<std::collections::HashMap<String, String>>,
    calls: Mutex<Vec<String>>,
}

impl Launcher for CrashOnce {
    fn launch<'a>(
        &'a self,
        _schedule: &'a ScheduleRecord,
        client_token: String,
    ) -> BoxFuture<'a, Result<Launched, LaunchError>> {
        Box::pin(async move {
            self.calls.lock().unwrap().push(client_token.clone());
            let mut placed = self.placed.lock().unwrap();
            let first = !placed.contains_key(&client_token);
            let n = placed.len();
            let task = placed
                .entry(client_token)
                .or_insert_with(|| format!("task-{n}"))
                .clone();
            if first {
                return Err(LaunchError::Unavailable("connection lost".into()));
            }
            Ok(Launched {
                task_ids: vec![task],
                failures: vec![],
            })
        })
    }
}

#[tokio::test]
async fn a_fire_retried_after_a_crash_reuses_its_token_and_gets_its_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path()).await;
    let launcher = Arc::new(CrashOnce::default());
    let rec = record("rate(1 hour)");
    db.create_schedule(rec.clone()).await.unwrap();
    let runner = Runner::new(db.clone(), launcher.clone(), ScheduleSettings::default());
    runner.pass(rec.created_at + 10).await.unwrap();
    assert_eq!(db.schedule("nightly").unwrap().unwrap().last_fire, None);
    runner.pass(rec.created_at + 20).await.unwrap();
    let calls = launcher.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0], calls[1], "the retry carries the fire's token");
    let stored = db.schedule("nightly").unwrap().unwrap();
    assert_eq!(stored.fires.len(), 1);
    assert_eq!(
        stored.fires[0].task_ids,
        ["task-0"],
        "one placement, not two"
    );
    assert_eq!(launcher.placed.lock().unwrap().len(), 1);
    db.close().await;
}
