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

use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use crate::config::RetentionSettings;
use crate::db::{Db, DbError, Pruned};
use crate::records::now_millis;

/// Records removed per transaction.
pub const BATCH: usize = 512;

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
    use std::collections::HashMap;

    use super::*;
    use crate::config::{
        Config, ConfigError, Overrides, ENV_RETENTION_AUDIT_MAX_RECORDS,
        ENV_RETENTION_CLIENT_TOKENS, ENV_RETENTION_STOPPED_TASKS,
    };

    fn resolve(text: &str, env: &[(&str, &str)]) -> Result<RetentionSettings, ConfigError> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_toml(text, &Overrides::default(), &env).map(|c| c.retention)
    }

    #[test]
    fn defaults_file_and_environment() {
        assert_eq!(resolve("", &[]).unwrap(), RetentionSettings::default());
        let s = resolve(
            "[retention]\nstopped_tasks = \"2h\"\naudit_max_records = 10\ninterval = \"5s\"\n",
            &[(ENV_RETENTION_CLIENT_TOKENS, "1d")],
        )
        .unwrap();
        assert_eq!(s.stopped_tasks, Duration::from_secs(7200));
        assert_eq!(s.client_tokens, Duration::from_secs(86_400));
        assert_eq!(s.audit_max_records, 10);
        assert_eq!(s.interval, Duration::from_secs(5));
        let s = resolve(
            "[retention]\nstopped_tasks = \"2h\"\n",
            &[(ENV_RETENTION_STOPPED_TASKS, "30s")],
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
        let e = resolve("", &[(ENV_RETENTION_AUDIT_MAX_RECORDS, "many")]).unwrap_err();
        assert!(e.to_string().contains("retention.audit_max_records"), "{e}");
        assert!(matches!(
            resolve("[retention]\nkeep = \"1h\"\n", &[]),
            Err(ConfigError::Parse { .. })
        ));
    }
}
