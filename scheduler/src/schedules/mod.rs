//! Scheduled tasks (EventBridge Scheduler with an ECS RunTask target,
//! `docs/schedules.md`): the loop that fires them. [`expr`] parses and
//! evaluates the expressions (pure).
//!
//! Every tick the loop reads the enabled schedules and, for each, the fire
//! times due since the last one handled ([`due`], pure). It runs the
//! latest due fire through the [`Launcher`] (RunTask, `startedBy` = the
//! schedule's name) with a `clientToken` derived from the fire time, then
//! records the fire in the schedule. At most one run per fire time: a crash
//! after the RunTask and before the record makes the next scheduler retry
//! the same fire with the same token, and RunTask answers with the tasks it
//! placed the first time.
//!
//! Fires missed while the scheduler was down: the latest one runs once if
//! its time (plus its flexible-window offset) is within the catch-up
//! window (`[schedules] catch_up_window`, default 1 h), and every other
//! missed fire is recorded as MISSED, not run.

pub mod expr;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::db::schedules::{FireOutcome, FireRecord, ScheduleRecord, ScheduleState};
use crate::db::{Db, DbError};
use crate::records::{now_millis, UnixMillis};

pub use crate::config::ScheduleSettings;

/// Fires listed at most per pass (older missed ones are counted as one).
const MAX_MISSED_LISTED: usize = 100;

/// What a RunTask of a fire answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Launched {
    pub task_ids: Vec<String>,
    /// Tasks not placed, with their reasons.
    pub failures: Vec<String>,
}

/// Why a fire's RunTask did not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LaunchError {
    /// The request is wrong (recorded as FAILED, not retried).
    Refused(String),
    /// The scheduler could not answer now (retried on the next tick).
    Unavailable(String),
}

/// Runs a schedule's task (the gRPC edge's RunTask; a fake in tests).
pub trait Launcher: Send + Sync + 'static {
    fn launch<'a>(
        &'a self,
        schedule: &'a ScheduleRecord,
        client_token: String,
    ) -> BoxFuture<'a, Result<Launched, LaunchError>>;
}

/// The schedule's expression in its zone and window.
pub fn schedule_of(rec: &ScheduleRecord) -> Result<expr::Schedule, expr::ExprError> {
    Ok(expr::Schedule {
        expression: expr::Expression::parse(&rec.expression)?,
        zone: expr::zone(&rec.timezone)?,
        anchor: rec.start_date.unwrap_or(rec.created_at),
        start: rec.start_date,
        end: rec.end_date,
    })
}

/// The fixed delay of a fire within the flexible window: pseudo-random,
/// the same on every scheduler (derived from the name and fire time).
pub fn flex_offset(rec: &ScheduleRecord, fire: UnixMillis) -> UnixMillis {
    if rec.flexible_window_minutes == 0 {
        return 0;
    }
    use sha2::{Digest, Sha256};
    let d = Sha256::new()
        .chain_update(rec.name.as_bytes())
        .chain_update(fire.to_be_bytes())
        .finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    let window = i64::from(rec.flexible_window_minutes) * 60_000;
    (u64::from_be_bytes(b) % window as u64) as i64
}

/// What is due for a schedule at `now`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Due {
    /// The fire to run now.
    pub run: Option<UnixMillis>,
    /// Fires passed over (listed up to a bound, oldest first).
    pub missed: Vec<UnixMillis>,
    /// The latest fire handled by this pass (run or missed).
    pub last: Option<UnixMillis>,
}

/// The fires of `rec` due at `now`: fires after the last one handled whose
/// time plus flexible offset has come. The latest runs if within
/// `catch_up` of `now`; the rest are missed. Pure.
pub fn due(
    rec: &ScheduleRecord,
    sched: &expr::Schedule,
    now: UnixMillis,
    catch_up: UnixMillis,
) -> Due {
    // A schedule fires strictly after its creation (rate: at it, the anchor).
    let after = rec.last_fire.unwrap_or(rec.created_at - 1);
    let window = i64::from(rec.flexible_window_minutes) * 60_000;
    let mut fires = sched.fires_between(after, now, MAX_MISSED_LISTED + 1);
    if fires.len() > MAX_MISSED_LISTED {
        // Down for long: jump to the fires near now (older ones are missed).
        let recent = sched.fires_between(now - catch_up - window, now, MAX_MISSED_LISTED);
        let first = fires[0];
        fires.truncate(1);
        fires.extend(recent.into_iter().filter(|f| *f > first));
    }
    // Only fires whose flexible offset has passed are due.
    fires.retain(|f| f + flex_offset(rec, *f) <= now);
    let Some(&latest) = fires.last() else {
        return Due::default();
    };
    let mut missed = fires;
    missed.pop();
    let run = (now - latest - flex_offset(rec, latest) <= catch_up).then_some(latest);
    if run.is_none() {
        missed.push(latest);
    }
    Due {
        run,
        missed,
        last: Some(latest),
    }
}

/// The next fire time after the last handled one, with its offset.
pub fn next_fire(rec: &ScheduleRecord) -> Option<UnixMillis> {
    if rec.state != ScheduleState::Enabled {
        return None;
    }
    let sched = schedule_of(rec).ok()?;
    let after = rec.last_fire.unwrap_or(rec.created_at - 1);
    let f = sched.next_after(after)?;
    Some(f + flex_offset(rec, f))
}

/// The schedule loop: start it once per scheduler.
pub struct Runner {
    db: Db,
    launcher: Arc<dyn Launcher>,
    settings: ScheduleSettings,
}

impl Runner {
    pub fn new(db: Db, launcher: Arc<dyn Launcher>, settings: ScheduleSettings) -> Self {
        Self {
            db,
            launcher,
            settings,
        }
    }

    /// Runs until `shutdown` is cancelled; a fire in progress finishes.
    pub fn start(self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(self.settings.tick);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_error_log: Option<tokio::time::Instant> = None;
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                if let Err(e) = self.pass(now_millis()).await {
                    if last_error_log.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                        tracing::warn!(cause = %e, "schedule pass failed; retrying");
                        last_error_log = Some(tokio::time::Instant::now());
                    }
                }
            }
        })
    }

    /// Fires what is due at `now` on every enabled schedule.
    pub async fn pass(&self, now: UnixMillis) -> Result<(), DbError> {
        let db = self.db.clone();
        let all = tokio::task::spawn_blocking(move || db.schedules())
            .await
            .map_err(|e| DbError::Unavailable(e.to_string()))??;
        let catch_up = self.settings.catch_up_window.as_millis() as i64;
        for rec in all {
            if rec.state != ScheduleState::Enabled {
                continue;
            }
            let sched = match schedule_of(&rec) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(schedule = %rec.name, cause = %e, "stored schedule does not parse");
                    continue;
                }
            };
            let due = due(&rec, &sched, now, catch_up);
            let Some(last) = due.last else { continue };
            let mut fires: Vec<FireRecord> = due
                .missed
                .iter()
                .map(|&f| FireRecord {
                    fire_time: f,
                    handled_at: now,
                    outcome: FireOutcome::Missed,
                    task_ids: Vec::new(),
                    messages: vec![format!(
                        "not run: the scheduler was not running at this time and a later \
                         fire or the catch-up window ({}s) passed it over",
                        catch_up / 1000
                    )],
                })
                .collect();
            if let Some(f) = due.run {
                match self.launcher.launch(&rec, rec.client_token(f)).await {
                    Ok(l) => {
                        tracing::info!(schedule = %rec.name, fire_time = f, tasks = l.task_ids.len(), failures = l.failures.len(), "schedule fired");
                        fires.push(FireRecord {
                            fire_time: f,
                            handled_at: now,
                            outcome: FireOutcome::Started,
                            task_ids: l.task_ids,
                            messages: l.failures,
                        });
                    }
                    Err(LaunchError::Refused(m)) => {
                        tracing::warn!(schedule = %rec.name, fire_time = f, cause = %m, "schedule's RunTask refused");
                        fires.push(FireRecord {
                            fire_time: f,
                            handled_at: now,
                            outcome: FireOutcome::Failed,
                            task_ids: Vec::new(),
                            messages: vec![m],
                        });
                    }
                    Err(LaunchError::Unavailable(m)) => {
                        // Not recorded: the next tick retries the same fire.
                        tracing::debug!(schedule = %rec.name, cause = %m, "schedule's RunTask unavailable; retrying");
                        continue;
                    }
                }
            }
            self.db
                .record_fires(&rec.name, rec.created_at, last, &fires)
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
