//! Scheduled tasks: one record per schedule (EventBridge Scheduler's
//! schedule with an ECS RunTask target), keyed by name, holding its last
//! [`MAX_FIRES`] fires. The schedule loop (`crate::schedules`) records each
//! fire with [`Db::record_fire`] after the fire's RunTask is durable; the
//! RunTask's `clientToken` is derived from the fire time, so a fire retried
//! after a crash between the two writes gets the same tasks back.

use serde::{Deserialize, Serialize};

use super::{encode, Db, DbError};
use crate::records::{TaskOverrides, UnixMillis};
use crate::store::{Table, Txn};

/// Fires kept per schedule (newest first).
pub const MAX_FIRES: usize = 20;

/// ENABLED or DISABLED, as EventBridge Scheduler's `State`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ScheduleState {
    Enabled,
    Disabled,
}

impl ScheduleState {
    pub fn as_str(self) -> &'static str {
        match self {
            ScheduleState::Enabled => "ENABLED",
            ScheduleState::Disabled => "DISABLED",
        }
    }
}

/// What a fire did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FireOutcome {
    /// RunTask answered (some tasks may not have been placed: `failures`).
    Started,
    /// RunTask refused the request (definition gone, bad overrides, …).
    Failed,
    /// Not run: the scheduler was down past the catch-up window, or a
    /// later fire was run in its place.
    Missed,
}

impl FireOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            FireOutcome::Started => "STARTED",
            FireOutcome::Failed => "FAILED",
            FireOutcome::Missed => "MISSED",
        }
    }
}

/// One fire of a schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FireRecord {
    /// The time the expression named.
    pub fire_time: UnixMillis,
    /// When the scheduler handled it (after the flexible window's offset).
    pub handled_at: UnixMillis,
    pub outcome: FireOutcome,
    /// Ids of the tasks it started.
    pub task_ids: Vec<String>,
    /// RunTask's failures ("RESOURCE:MEMORY …") or the refusal.
    pub messages: Vec<String>,
}

/// The RunTask a schedule makes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleTarget {
    pub cluster: String,
    /// `family` (the latest ACTIVE revision at each fire) or `family:rev`.
    pub task_definition: String,
    pub count: u32,
    pub group: Option<String>,
    pub overrides: Option<TaskOverrides>,
    pub tags: Vec<(String, String)>,
    pub enable_execute_command: bool,
}

/// A schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleRecord {
    pub name: String,
    /// `at(…)`, `rate(…)` or `cron(…)` (checked when stored).
    pub expression: String,
    /// IANA name; "UTC" by default.
    pub timezone: String,
    pub start_date: Option<UnixMillis>,
    pub end_date: Option<UnixMillis>,
    /// 0: OFF; else each fire is delayed by a fixed pseudo-random offset
    /// within this many minutes.
    pub flexible_window_minutes: u32,
    pub state: ScheduleState,
    pub target: ScheduleTarget,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
    /// The latest fire time handled (run, failed or missed).
    pub last_fire: Option<UnixMillis>,
    /// Newest first, the last [`MAX_FIRES`].
    pub fires: Vec<FireRecord>,
}

impl ScheduleRecord {
    /// The RunTask `clientToken` of the fire at `fire_time` (ECS allows 64
    /// characters): the same for every retry of that fire, different for
    /// a schedule deleted and created again under the same name.
    pub fn client_token(&self, fire_time: UnixMillis) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(self.name.as_bytes());
        h.update([0]);
        h.update(self.created_at.to_be_bytes());
        h.update(fire_time.to_be_bytes());
        format!("schedule-{}", &hex::encode(h.finalize())[..48])
    }
}

impl Db {
    /// CreateSchedule: the name must be free.
    pub async fn create_schedule(&self, rec: ScheduleRecord) -> Result<ScheduleRecord, DbError> {
        self.write("schedule", || {
            if self
                .store
                .get(Table::Schedules, rec.name.as_bytes())?
                .is_some()
            {
                return Err(DbError::AlreadyExists {
                    kind: "schedule",
                    name: rec.name.clone(),
                });
            }
            Ok((
                Txn::new()
                    .check_absent(Table::Schedules, rec.name.as_bytes())
                    .put(
                        Table::Schedules,
                        rec.name.as_bytes(),
                        encode(Table::Schedules, &rec)?,
                    ),
                rec.clone(),
            ))
        })
        .await
    }

    pub fn schedule(&self, name: &str) -> Result<Option<ScheduleRecord>, DbError> {
        Ok(self
            .get::<ScheduleRecord>(Table::Schedules, name.as_bytes())?
            .map(|(r, _)| r))
    }

    /// Every schedule, by name.
    pub fn schedules(&self) -> Result<Vec<ScheduleRecord>, DbError> {
        Ok(self.scan(Table::Schedules, b"")?)
    }

    /// Applies `change` to the stored schedule (retried on conflict).
    pub async fn update_schedule(
        &self,
        name: &str,
        mut change: impl FnMut(&mut ScheduleRecord) -> Result<(), DbError>,
    ) -> Result<ScheduleRecord, DbError> {
        self.write("schedule", || {
            let (mut rec, bytes) = self
                .get::<ScheduleRecord>(Table::Schedules, name.as_bytes())?
                .ok_or_else(|| DbError::NotFound {
                    kind: "schedule",
                    name: name.to_owned(),
                })?;
            let before = rec.clone();
            change(&mut rec)?;
            if rec == before {
                return Ok((Txn::new(), rec));
            }
            Ok((
                Txn::new()
                    .check_equals(Table::Schedules, name.as_bytes(), bytes)
                    .put(
                        Table::Schedules,
                        name.as_bytes(),
                        encode(Table::Schedules, &rec)?,
                    ),
                rec,
            ))
        })
        .await
    }

    pub async fn delete_schedule(&self, name: &str) -> Result<ScheduleRecord, DbError> {
        self.write("schedule", || {
            let (rec, bytes) = self
                .get::<ScheduleRecord>(Table::Schedules, name.as_bytes())?
                .ok_or_else(|| DbError::NotFound {
                    kind: "schedule",
                    name: name.to_owned(),
                })?;
            Ok((
                Txn::new()
                    .check_equals(Table::Schedules, name.as_bytes(), bytes)
                    .delete(Table::Schedules, name.as_bytes()),
                rec,
            ))
        })
        .await
    }

    /// Records fires handled up to `last_fire` on the schedule created at
    /// `created_at` (a schedule deleted and created again meanwhile is
    /// left alone). `Ok(None)`: the schedule is gone or replaced.
    pub async fn record_fires(
        &self,
        name: &str,
        created_at: UnixMillis,
        last_fire: UnixMillis,
        fires: &[FireRecord],
    ) -> Result<Option<ScheduleRecord>, DbError> {
        let out = self
            .update_schedule(name, |rec| {
                if rec.created_at != created_at || rec.last_fire.is_some_and(|l| l >= last_fire) {
                    return Ok(());
                }
                rec.last_fire = Some(last_fire);
                for f in fires {
                    rec.fires.insert(0, f.clone());
                }
                rec.fires.truncate(MAX_FIRES);
                Ok(())
            })
            .await;
        match out {
            Ok(rec) if rec.created_at == created_at => Ok(Some(rec)),
            Ok(_) | Err(DbError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
