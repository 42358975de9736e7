//! Bounded state: the pruner that removes what the scheduler no longer has
//! to keep, and its settings (`[retention]`, `docs/retention.md`).
//!
//! - STOPPED tasks are kept `stopped_tasks` (default 1 h: ECS shows a
//!   stopped task for at least an hour) after the scheduler recorded them
//!   STOPPED, then removed with everything keyed by them.
//! - RunTask client tokens are honoured for `client_tokens` (default 8 h)
//!   after the RunTask that used them; a retry after that runs new tasks.
//! - Audit records are kept `audit_max_age` (default 90 days) and at most
//!   `audit_max_records` (default 100,000), the oldest going first.
//!
//! One background task ([`Pruner::start`], awaited at shutdown) runs a pass
//! every `interval`. A pass deletes in transactions of at most [`BATCH`]
//! records, each made durable, and reads only what it deletes (the
//! `Retention` index and the audit ids are ordered by time,
//! `crate::db::retention`), so an idle pass costs a few reads whatever the
//! store holds. The audit count is read once, then kept here.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::config::ConfigError;
use crate::db::{Db, DbError, Pruned};
use crate::records::now_millis;

/// Records removed per transaction.
pub const BATCH: usize = 512;

pub const ENV_STOPPED_TASKS: &str = "BERTH_RETENTION_STOPPED_TASKS";
pub const ENV_CLIENT_TOKENS: &str = "BERTH_RETENTION_CLIENT_TOKENS";
pub const ENV_AUDIT_MAX_AGE: &str = "BERTH_RETENTION_AUDIT_MAX_AGE";
pub const ENV_AUDIT_MAX_RECORDS: &str = "BERTH_RETENTION_AUDIT_MAX_RECORDS";
pub const ENV_INTERVAL: &str = "BERTH_RETENTION_INTERVAL";

/// `[retention]` in `scheduler.toml`; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRetention {
    /// e.g. "1h": how long a STOPPED task stays describable.
    stopped_tasks: Option<String>,
    /// e.g. "8h": how long a RunTask clientToken is honoured.
    client_tokens: Option<String>,
    /// e.g. "90d": audit records older than this are removed.
    audit_max_age: Option<String>,
    /// Audit records beyond this many are removed, oldest first.
    audit_max_records: Option<u64>,
    /// e.g. "30s": how often the pruner looks.
    interval: Option<String>,
}

/// The validated `[retention]` settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionSettings {
    pub stopped_tasks: Duration,
    pub client_tokens: Duration,
    pub audit_max_age: Duration,
    pub audit_max_records: u64,
    pub interval: Duration,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            stopped_tasks: Duration::from_secs(3600),
            client_tokens: Duration::from_secs(8 * 3600),
            audit_max_age: Duration::from_secs(90 * 24 * 3600),
            audit_max_records: 100_000,
            interval: Duration::from_secs(30),
        }
    }
}

/// The shortest window accepted for tasks and tokens.
const MIN_WINDOW: Duration = Duration::from_secs(1);
/// The longest window accepted (ten years; the store counts milliseconds).
const MAX_WINDOW: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

impl RetentionSettings {
    /// Reads `[retention]`, overridden by the `BERTH_RETENTION_*` variables.
    pub fn resolve(
        file: Option<FileRetention>,
        env: &HashMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let f = file.unwrap_or_default();
        let d = Self::default();
        let invalid = |setting: &str, message: String| ConfigError::Invalid {
            setting: setting.to_owned(),
            message,
        };
        let duration = |setting: &str, env_key: &str, v: Option<String>, default: Duration| {
            let Some(s) = env.get(env_key).cloned().or(v) else {
                return Ok(default);
            };
            let d = humantime::parse_duration(s.trim()).map_err(|e| {
                invalid(
                    setting,
                    format!("{s:?} is not a duration like \"1h\" ({e})"),
                )
            })?;
            if d < MIN_WINDOW || d > MAX_WINDOW {
                return Err(invalid(
                    setting,
                    format!("{s:?} must be between 1s and 10 years"),
                ));
            }
            Ok(d)
        };
        let audit_max_records = match env.get(ENV_AUDIT_MAX_RECORDS) {
            Some(v) => v.trim().parse::<u64>().map_err(|_| {
                invalid(
                    "retention.audit_max_records",
                    format!("{v:?} is not a whole number"),
                )
            })?,
            None => f.audit_max_records.unwrap_or(d.audit_max_records),
        };
        if audit_max_records == 0 {
            return Err(invalid(
                "retention.audit_max_records",
                "must be at least 1".to_owned(),
            ));
        }
        let s = Self {
            stopped_tasks: duration(
                "retention.stopped_tasks",
                ENV_STOPPED_TASKS,
                f.stopped_tasks,
                d.stopped_tasks,
            )?,
            client_tokens: duration(
                "retention.client_tokens",
                ENV_CLIENT_TOKENS,
                f.client_tokens,
                d.client_tokens,
            )?,
            audit_max_age: duration(
                "retention.audit_max_age",
                ENV_AUDIT_MAX_AGE,
                f.audit_max_age,
                d.audit_max_age,
            )?,
            audit_max_records,
            interval: duration("retention.interval", ENV_INTERVAL, f.interval, d.interval)?,
        };
        if s.interval > s.stopped_tasks {
            return Err(invalid(
                "retention.interval",
                format!(
                    "{} must not be longer than retention.stopped_tasks ({})",
                    humantime::format_duration(s.interval),
                    humantime::format_duration(s.stopped_tasks)
                ),
            ));
        }
        Ok(s)
    }
}

/// What one pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassReport {
    pub tasks: usize,
    pub client_tokens: usize,
    pub audit: usize,
}

/// The pruner: one per scheduler.
#[derive(Debug)]
pub struct Pruner {
    db: Db,
    settings: RetentionSettings,
    /// Audit records in the store as of `audit_seen` writes through `db`;
    /// `None` until the first pass counts them.
    audit: Option<(u64, u64)>,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Pruner {
    pub fn new(db: Db, settings: RetentionSettings) -> Self {
        Self {
            db,
            settings,
            audit: None,
        }
    }

    /// Runs passes every `interval` until `shutdown`; the handle is
    /// awaited at shutdown (it holds the `Db`).
    pub fn start(mut self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut last_error_log: Option<tokio::time::Instant> = None;
            loop {
                match self.pass(&shutdown).await {
                    Ok(r) if r != PassReport::default() => {
                        tracing::info!(
                            tasks = r.tasks,
                            client_tokens = r.client_tokens,
                            audit = r.audit,
                            "retention removed expired records"
                        );
                    }
                    Ok(_) => {}
                    Err(e) => {
                        // Rate-limited: a failing store logs once a minute.
                        if last_error_log.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                            tracing::warn!(cause = %e, "retention pass failed; retrying");
                            last_error_log = Some(tokio::time::Instant::now());
                        }
                    }
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(self.settings.interval) => {}
                }
            }
        })
    }

    /// One pass: everything expired now, in bounded batches; stops early
    /// when `shutdown` is cancelled.
    pub async fn pass(&mut self, shutdown: &CancellationToken) -> Result<PassReport, DbError> {
        let now = now_millis();
        let mut report = PassReport::default();
        let cutoff = now.saturating_sub(millis(self.settings.stopped_tasks));
        report.tasks = drain(shutdown, || self.db.prune_stopped_tasks(cutoff, BATCH)).await?;
        let cutoff = now.saturating_sub(millis(self.settings.client_tokens));
        report.client_tokens = drain(shutdown, || self.db.prune_run_tokens(cutoff, BATCH)).await?;
        report.audit = self.prune_audit(now, shutdown).await?;
        Ok(report)
    }

    async fn prune_audit(
        &mut self,
        now: crate::records::UnixMillis,
        shutdown: &CancellationToken,
    ) -> Result<usize, DbError> {
        // Writes through `db` are counted as they happen; the store is
        // counted once (a record written during that scan may count twice,
        // which removes at most that many records early).
        let written = self.db.audit_written();
        let mut count = match self.audit {
            Some((count, seen)) => count + written.saturating_sub(seen),
            None => self.db.count_audit_records()?,
        };
        let cutoff = now.saturating_sub(millis(self.settings.audit_max_age));
        let mut removed = 0;
        loop {
            let p = self
                .db
                .prune_audit(cutoff, count, self.settings.audit_max_records, BATCH)
                .await?;
            removed += p.removed;
            count = count.saturating_sub(p.removed as u64);
            if !p.more || shutdown.is_cancelled() {
                break;
            }
            tokio::task::yield_now().await;
        }
        self.audit = Some((count, written));
        Ok(removed)
    }
}

/// Calls `batch` until it finds no more, yielding between batches.
async fn drain<F, Fut>(shutdown: &CancellationToken, mut batch: F) -> Result<usize, DbError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Pruned, DbError>>,
{
    let mut removed = 0;
    loop {
        let p = batch().await?;
        removed += p.removed;
        if !p.more || shutdown.is_cancelled() {
            return Ok(removed);
        }
        tokio::task::yield_now().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(text: &str, env: &[(&str, &str)]) -> Result<RetentionSettings, ConfigError> {
        #[derive(Deserialize)]
        struct F {
            retention: Option<FileRetention>,
        }
        let f: F = toml::from_str(text).unwrap();
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        RetentionSettings::resolve(f.retention, &env)
    }

    #[test]
    fn defaults_file_and_environment() {
        assert_eq!(resolve("", &[]).unwrap(), RetentionSettings::default());
        let s = resolve(
            "[retention]\nstopped_tasks = \"2h\"\naudit_max_records = 10\ninterval = \"5s\"\n",
            &[(ENV_CLIENT_TOKENS, "1d")],
        )
        .unwrap();
        assert_eq!(s.stopped_tasks, Duration::from_secs(7200));
        assert_eq!(s.client_tokens, Duration::from_secs(86_400));
        assert_eq!(s.audit_max_records, 10);
        assert_eq!(s.interval, Duration::from_secs(5));
        let s = resolve(
            "[retention]\nstopped_tasks = \"2h\"\n",
            &[(ENV_STOPPED_TASKS, "30s")],
        )
        .unwrap();
        assert_eq!(s.stopped_tasks, Duration::from_secs(30), "env wins");
    }

    #[test]
    fn bad_values_name_their_setting() {
        let cases = [
            (
                "[retention]\nstopped_tasks = \"soon\"\n",
                "retention.stopped_tasks",
            ),
            (
                "[retention]\nclient_tokens = \"0s\"\n",
                "retention.client_tokens",
            ),
            (
                "[retention]\naudit_max_records = 0\n",
                "retention.audit_max_records",
            ),
            (
                "[retention]\nstopped_tasks = \"10s\"\ninterval = \"1m\"\n",
                "retention.interval",
            ),
        ];
        for (text, setting) in cases {
            match resolve(text, &[]) {
                Err(ConfigError::Invalid { setting: s, .. }) => assert_eq!(s, setting, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        let e = resolve("", &[(ENV_AUDIT_MAX_RECORDS, "many")]).unwrap_err();
        assert!(e.to_string().contains("retention.audit_max_records"), "{e}");
    }
}
