//! Service auto scaling (Application Auto Scaling for ECS services,
//! `docs/autoscaling.md`): the loop that applies scheduled actions, keeps
//! each service's desired count within its scalable target's bounds, and
//! evaluates the scaling policies once per metric period. Its decisions
//! are pure ([`decide`]); datapoints come through [`ServiceMetrics`].
//!
//! Each change goes through [`Db::scale_service`]: the service's desired
//! count (the same field UpdateService writes and the service controller
//! follows), a service event, the activity and the policies' cooldown
//! marks, in one transaction. Scheduled actions apply the latest fire due
//! (missed fires included: min/max are state, so the latest wins) and
//! are not subject to cooldowns.

pub mod decide;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::db::autoscaling::{ActivityRecord, ScalableTargetRecord};
use crate::db::{Db, DbError};
use crate::records::{now_millis, DeploymentStatus, RolloutState, ServiceRecord, UnixMillis};
use crate::schedules::expr;
use decide::{Decision, Direction, Metric, PolicyView};

/// A service's utilization, one datapoint per period: the average over
/// the service's RUNNING tasks of their use over their reservation, in
/// percent (ECS's `CPUUtilization`, `MemoryUtilization`). `period` is the
/// period's index: Unix time in milliseconds divided by the period (with
/// the default 60 s period, the Unix minute). `None`: no data (no
/// RUNNING task, or no reading yet).
pub trait ServiceMetrics: Send + Sync + std::fmt::Debug + 'static {
    fn datapoint(&self, cluster: &str, service: &str, metric: Metric, period: i64) -> Option<f64>;
}

/// No readings: policies never breach (scheduled actions and bounds still
/// apply). The scheduler's own per-task readings plug in here.
#[derive(Debug, Default)]
pub struct NoMetrics;

impl ServiceMetrics for NoMetrics {
    fn datapoint(&self, _: &str, _: &str, _: Metric, _: i64) -> Option<f64> {
        None
    }
}

pub use crate::config::AutoscalingSettings;

/// The agents' readings ([`crate::usage::UsageBook`], one datapoint per
/// minute) as the autoscaler's datapoints: a period's value is the mean of
/// the minutes it covers that have data (a period shorter than a minute
/// reads the minute it starts in).
#[derive(Debug, Clone)]
pub struct UsageMetrics {
    book: crate::usage::UsageBook,
    period_ms: i64,
}

impl UsageMetrics {
    pub fn new(book: crate::usage::UsageBook, period: Duration) -> Self {
        Self {
            book,
            period_ms: i64::try_from(period.as_millis()).unwrap_or(i64::MAX).max(1),
        }
    }
}

impl ServiceMetrics for UsageMetrics {
    fn datapoint(&self, cluster: &str, service: &str, metric: Metric, period: i64) -> Option<f64> {
        let start = period.checked_mul(self.period_ms)?;
        let end = start.checked_add(self.period_ms)?.checked_sub(1)?;
        let (first, last) = (start.div_euclid(60_000), end.div_euclid(60_000));
        let values: Vec<f64> = (first..=last)
            .filter_map(|m| u64::try_from(m).ok())
            .filter_map(|m| self.book.service_utilization(cluster, service, m))
            .filter_map(|u| match metric {
                Metric::Cpu => u.cpu,
                Metric::Memory => u.memory,
            })
            .collect();
        (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
    }
}

/// A [`crate::config::MetricsFn`] as a metrics source.
struct FnMetrics(crate::config::MetricsFn);

impl std::fmt::Debug for FnMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FnMetrics")
    }
}

impl ServiceMetrics for FnMetrics {
    fn datapoint(&self, cluster: &str, service: &str, metric: Metric, period: i64) -> Option<f64> {
        (self.0)(cluster, service, metric.name(), period)
    }
}

/// Whether a deployment is rolling (ECS: no scale-in meanwhile).
pub fn deployment_in_progress(svc: &ServiceRecord) -> bool {
    svc.deployments.len() > 1
        || svc.deployments.iter().any(|d| {
            d.status == DeploymentStatus::Primary && d.rollout_state == RolloutState::InProgress
        })
}

/// AAS's description and status message of a desired-count change.
fn set_desired(
    svc: &mut ServiceRecord,
    target: &mut ScalableTargetRecord,
    to: u32,
    cause: String,
    now: UnixMillis,
) {
    let from = svc.desired_count;
    svc.desired_count = to;
    let verb = if to > from { "out" } else { "in" };
    svc.push_event(
        crate::services::plan::new_event_id(),
        now,
        format!(
            "(service {}) was scaled {verb} from {from} to {to} tasks by Application Auto \
             Scaling: {cause}.",
            svc.name
        ),
    );
    target.push_activity(ActivityRecord {
        id: uuid::Uuid::new_v4().to_string(),
        description: format!("Setting desired count to {to}."),
        cause,
        start: now,
        end: Some(now),
        status_code: "Successful".into(),
        status_message: format!(
            "Successfully set desired count to {to}. Change successfully fulfilled by ecs."
        ),
        not_scaled_reasons: Vec::new(),
    });
}

/// The bounds clamp: desired count moved into [min, max].
fn clamp(svc: &mut ServiceRecord, target: &mut ScalableTargetRecord, now: UnixMillis) {
    let d = svc.desired_count;
    if d < target.min {
        let cause = format!("minimum capacity was set to {}", target.min);
        set_desired(svc, target, target.min, cause, now);
    } else if d > target.max {
        let cause = format!("maximum capacity was set to {}", target.max);
        set_desired(svc, target, target.max, cause, now);
    }
}

/// The autoscaler: start it once per scheduler.
pub struct Autoscaler {
    db: Db,
    metrics: Arc<dyn ServiceMetrics>,
    settings: AutoscalingSettings,
    /// Per target, the last period evaluated and the last not-scaled
    /// reasons recorded (so a long "at max" is one activity, not one a
    /// minute).
    seen: HashMap<(String, String), (i64, Vec<String>)>,
}

impl Autoscaler {
    /// `metrics`: the scheduler's readings; `settings.metrics_override`
    /// replaces them when set.
    pub fn new(db: Db, settings: AutoscalingSettings, metrics: Arc<dyn ServiceMetrics>) -> Self {
        let metrics = match settings.metrics_override.clone() {
            Some(f) => Arc::new(FnMetrics(f)),
            None => metrics,
        };
        Self {
            db,
            metrics,
            settings,
            seen: HashMap::new(),
        }
    }

    /// Runs until `shutdown` is cancelled.
    pub fn start(mut self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
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
                        tracing::warn!(cause = %e, "autoscaling pass failed; retrying");
                        last_error_log = Some(tokio::time::Instant::now());
                    }
                }
            }
        })
    }

    /// One pass over every scalable target at `now`.
    pub async fn pass(&mut self, now: UnixMillis) -> Result<(), DbError> {
        let db = self.db.clone();
        let targets = tokio::task::spawn_blocking(move || db.scalable_targets(None))
            .await
            .map_err(|e| DbError::Unavailable(e.to_string()))??;
        let period_ms = (self.settings.period.as_millis() as i64).max(1);
        let period = now / period_ms;
        for t in targets {
            self.scheduled_actions(&t, now).await?;
            let key = (t.cluster.clone(), t.service.clone());
            let evaluate = self.seen.get(&key).is_none_or(|(p, _)| *p < period);
            if evaluate {
                self.policies(&t, now, period).await?;
            } else {
                // Bounds only (a manual UpdateService outside them).
                self.db
                    .scale_service(&t.cluster, &t.service, |target, svc| {
                        clamp(svc, target, now)
                    })
                    .await?;
            }
        }
        Ok(())
    }

    async fn scheduled_actions(
        &self,
        t: &ScalableTargetRecord,
        now: UnixMillis,
    ) -> Result<(), DbError> {
        if t.suspended.scheduled {
            return Ok(());
        }
        for a in &t.scheduled_actions {
            let sched = match scheduled_action_schedule(a) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(action = %a.name, cause = %e, "stored scheduled action does not parse");
                    continue;
                }
            };
            let after = a.last_fire.unwrap_or(a.created_at - 1);
            let Some(fire) = sched.fires_between(after, now, usize::MAX).last().copied() else {
                continue;
            };
            let name = a.name.clone();
            self.db
                .scale_service(&t.cluster, &t.service, |target, svc| {
                    let Some(act) = target.scheduled_actions.iter_mut().find(|x| x.name == name)
                    else {
                        return;
                    };
                    if act.last_fire.is_some_and(|l| l >= fire) {
                        return;
                    }
                    act.last_fire = Some(fire);
                    let (min, max) = (act.min, act.max);
                    if let Some(m) = min {
                        target.min = m;
                    }
                    if let Some(m) = max {
                        target.max = m;
                    }
                    let mut what = Vec::new();
                    if let Some(m) = min {
                        what.push(format!("min capacity to {m}"));
                    }
                    if let Some(m) = max {
                        what.push(format!("max capacity to {m}"));
                    }
                    target.push_activity(ActivityRecord {
                        id: uuid::Uuid::new_v4().to_string(),
                        description: format!("Setting {}.", what.join(" and ")),
                        cause: format!("scheduled action name {name} was triggered"),
                        start: now,
                        end: Some(now),
                        status_code: "Successful".into(),
                        status_message: format!("Successfully set {}.", what.join(" and ")),
                        not_scaled_reasons: Vec::new(),
                    });
                    tracing::info!(cluster = %target.cluster, service = %target.service, action = %name, min = target.min, max = target.max, "scheduled action applied");
                    clamp(svc, target, now);
                })
                .await?;
        }
        Ok(())
    }

    async fn policies(
        &mut self,
        t: &ScalableTargetRecord,
        now: UnixMillis,
        period: i64,
    ) -> Result<(), DbError> {
        // Datapoints of the last complete periods, oldest first.
        let points: Vec<Vec<Option<f64>>> = t
            .policies
            .iter()
            .map(|p| {
                let n = p.config.window() as i64;
                let metric = p.config.metric();
                (period - n..period)
                    .map(|i| self.metrics.datapoint(&t.cluster, &t.service, metric, i))
                    .collect()
            })
            .collect();
        let resource = t.resource_id();
        let seen = self
            .seen
            .get(&(t.cluster.clone(), t.service.clone()))
            .map(|s| s.1.clone());
        let out = self
            .db
            .scale_service(&t.cluster, &t.service, |target, svc| {
                clamp(svc, target, now);
                if target.policies.len() != points.len() {
                    return None;
                }
                let views: Vec<PolicyView<'_>> = target
                    .policies
                    .iter()
                    .zip(&points)
                    .map(|(p, d)| PolicyView {
                        name: &p.name,
                        config: &p.config,
                        cooldowns: &p.cooldowns,
                        datapoints: d,
                    })
                    .collect();
                let decision = decide::decide(&decide::Inputs {
                    now,
                    desired: svc.desired_count,
                    min: target.min,
                    max: target.max,
                    suspended: target.suspended,
                    deployment_in_progress: deployment_in_progress(svc),
                    policies: &views,
                });
                match decision {
                    Decision::Idle => Some(Vec::new()),
                    Decision::Scale {
                        direction,
                        to,
                        winners,
                    } => {
                        let from = svc.desired_count;
                        let cause = winners
                            .iter()
                            .map(|w| alarm_cause(&resource, w))
                            .collect::<Vec<_>>()
                            .join(", ");
                        for p in target.policies.iter_mut() {
                            if !winners.iter().any(|w| w.policy == p.name) {
                                continue;
                            }
                            match direction {
                                Direction::Out => {
                                    // The cooldown's base stays the first scale-out's.
                                    let base = match p.cooldowns.last_out {
                                        Some((_, f)) if views_in_cooldown(&p.config, p.cooldowns.last_out, now) => f,
                                        _ => from,
                                    };
                                    p.cooldowns.last_out = Some((now, base));
                                    p.cooldowns.last_in = None;
                                }
                                Direction::In => p.cooldowns.last_in = Some(now),
                            }
                        }
                        tracing::info!(cluster = %svc.cluster, service = %svc.name, from, to, cause = %cause, "service scaled");
                        set_desired(svc, target, to, cause, now);
                        Some(Vec::new())
                    }
                    Decision::NotScaled(reasons, proposals) => {
                        let codes: Vec<String> = reasons.iter().map(|r| r.code()).collect();
                        if seen.as_ref() != Some(&codes) {
                            let cause = proposals
                                .iter()
                                .map(|w| alarm_cause(&resource, w))
                                .collect::<Vec<_>>()
                                .join(", ");
                            target.push_activity(ActivityRecord {
                                id: uuid::Uuid::new_v4().to_string(),
                                description: "Did not scale.".into(),
                                cause,
                                start: now,
                                end: Some(now),
                                status_code: "NotScaled".into(),
                                status_message: format!("Not scaled: {}.", codes.join(", ")),
                                not_scaled_reasons: codes.clone(),
                            });
                        }
                        Some(codes)
                    }
                }
            })
            .await?;
        if let Some(Some(codes)) = out {
            self.seen
                .insert((t.cluster.clone(), t.service.clone()), (period, codes));
        }
        Ok(())
    }
}

/// Whether the policy's scale-out cooldown still runs.
fn views_in_cooldown(
    config: &decide::PolicyConfig,
    last_out: Option<(UnixMillis, u32)>,
    now: UnixMillis,
) -> bool {
    let secs = match config {
        decide::PolicyConfig::TargetTracking(t) => t.scale_out_cooldown,
        decide::PolicyConfig::Step(s, _) => s.cooldown,
    };
    last_out.is_some_and(|(at, _)| now < at + i64::from(secs) * 1000)
}

/// AAS's cause: "monitor alarm … in state ALARM triggered policy …".
fn alarm_cause(resource_id: &str, p: &decide::Proposal) -> String {
    let alarm = match p.alarm.as_str() {
        "AlarmHigh" | "AlarmLow" => {
            format!("TargetTracking-{resource_id}-{}-{}", p.alarm, p.policy)
        }
        other => other.to_owned(),
    };
    format!(
        "monitor alarm {alarm} in state ALARM triggered policy {} (metric {:.1})",
        p.policy, p.metric_value
    )
}

/// A scheduled action's expression in its zone and window.
pub fn scheduled_action_schedule(
    a: &crate::db::autoscaling::ScheduledActionRecord,
) -> Result<expr::Schedule, expr::ExprError> {
    Ok(expr::Schedule {
        expression: expr::Expression::parse(&a.schedule)?,
        zone: expr::zone(&a.timezone)?,
        anchor: a.start.unwrap_or(a.created_at),
        start: a.start,
        end: a.end,
    })
}

/// The next time a scheduled action fires.
pub fn next_action_fire(a: &crate::db::autoscaling::ScheduledActionRecord) -> Option<UnixMillis> {
    let s = scheduled_action_schedule(a).ok()?;
    s.next_after(a.last_fire.unwrap_or(a.created_at - 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::{ContainerUsage, Source, TaskMeta, TaskUsage, UsageBatch, UsageBook};

    /// A sample of task `a` (a service's, reserving a core and 64 MiB)
    /// with `cpu_ns` of CPU used so far and 16 MiB of memory.
    fn sample(book: &UsageBook, read_ms: i64, cpu_ns: u64, received_ms: i64) {
        let batch = UsageBatch {
            read_ms,
            host_memory_bytes: 1 << 30,
            tasks: vec![TaskUsage {
                task_id: "a".into(),
                cpu_total_ns: Some(cpu_ns),
                memory_limit_bytes: None,
                network: None,
                containers: vec![ContainerUsage {
                    name: "app".into(),
                    cpu_total_ns: cpu_ns,
                    memory_usage_bytes: 16 << 20,
                    ..ContainerUsage::default()
                }],
            }],
        };
        let meta = TaskMeta {
            cluster: "default".into(),
            instance: "i-1".into(),
            group: "service:web".into(),
            family: "web".into(),
            revision: 1,
            reserved_cpu_units: 1024,
            reserved_memory_mib: 64,
        };
        let from = Source {
            instance: "i-1",
            conn: 1,
        };
        book.record(from, batch, received_ms, |_| Some(meta.clone()));
    }

    #[test]
    fn the_agents_readings_are_the_autoscalers_datapoints() {
        let book = UsageBook::default();
        // Minute 1: a quarter of a core; minute 2: three quarters.
        sample(&book, 0, 0, 60_000);
        sample(&book, 10_000, 2_500_000_000, 61_000);
        sample(&book, 20_000, 10_000_000_000, 121_000);
        let per_minute = UsageMetrics::new(book.clone(), Duration::from_secs(60));
        let cpu = |m: &UsageMetrics, p| m.datapoint("default", "web", Metric::Cpu, p);
        let near = |v: Option<f64>, want: f64| v.is_some_and(|v| (v - want).abs() < 1e-6);
        assert!(near(cpu(&per_minute, 1), 25.0), "{:?}", cpu(&per_minute, 1));
        assert!(near(cpu(&per_minute, 2), 75.0), "{:?}", cpu(&per_minute, 2));
        assert!(near(
            per_minute.datapoint("default", "web", Metric::Memory, 1),
            25.0
        ));
        // Missing data is no datapoint (never a zero).
        assert_eq!(cpu(&per_minute, 3), None);
        assert_eq!(per_minute.datapoint("default", "api", Metric::Cpu, 1), None);
        // A two-minute period averages its minutes; a 30 s one reads the
        // minute it starts in.
        let two = UsageMetrics::new(book.clone(), Duration::from_secs(120));
        assert!(near(cpu(&two, 0), 25.0), "{:?}", cpu(&two, 0));
        assert!(near(cpu(&two, 1), 75.0), "{:?}", cpu(&two, 1));
        let half = UsageMetrics::new(book, Duration::from_secs(30));
        assert!(near(cpu(&half, 3), 25.0), "{:?}", cpu(&half, 3));
        assert!(near(cpu(&half, 4), 75.0), "{:?}", cpu(&half, 4));
    }
}
