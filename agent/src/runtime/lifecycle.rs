//! Container semantics as pure decisions, no I/O: when a container may
//! start (`dependsOn` with its conditions and the dependency's
//! `startTimeout`), in which order containers stop (reverse dependency
//! order), how health check results become a healthStatus (Docker's rules,
//! which ECS uses), the task's healthStatus (ECS's rule) and whether an
//! exited container is restarted (ECS's restart tracker). The runner
//! ([`super::runner`]) feeds them what it saw and acts on the answers.

use std::time::Duration;

use berth_proto::taskdef::{ContainerDefinition, DependencyCondition, HealthCheck};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::report::HealthStatus;

/// ECS's (and Docker's) limit on the health check output kept.
pub const HEALTH_OUTPUT_MAX: usize = 1024;

/// A container's lifecycle settings from its definition. Kept in a label
/// (JSON) so that an agent that restarts keeps honouring them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lifecycle {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<Dependency>,
    /// Seconds a container that others depend on has to reach their
    /// condition, counted from its start (ECS: none, wait forever).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_timeout_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheckSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dependency {
    pub container: String,
    pub condition: DependencyCondition,
}

/// A health check ready to run: the argv to exec and ECS's defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheckSpec {
    pub argv: Vec<String>,
    pub interval_secs: u64,
    pub timeout_secs: u64,
    pub retries: u32,
    pub start_period_secs: u64,
}

impl HealthCheckSpec {
    /// `None` for `["NONE"]` (or anything validation would have refused).
    pub fn from_definition(hc: &HealthCheck) -> Option<Self> {
        let (kind, rest) = hc.command.split_first()?;
        let argv = match kind.as_str() {
            "CMD" => rest.to_vec(),
            // Docker runs CMD-SHELL through the shell (`/bin/sh -c`); later
            // elements become the shell's positional parameters.
            "CMD-SHELL" => ["/bin/sh".to_owned(), "-c".to_owned()]
                .into_iter()
                .chain(rest.iter().cloned())
                .collect(),
            _ => return None,
        };
        if argv.is_empty() {
            return None;
        }
        Some(Self {
            argv,
            interval_secs: u64::from(hc.interval_secs()),
            timeout_secs: u64::from(hc.timeout_secs()),
            retries: hc.retries(),
            start_period_secs: u64::from(hc.start_period_secs()),
        })
    }

    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval_secs)
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

/// An enabled restart policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestartSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored_exit_codes: Vec<i32>,
    pub attempt_period_secs: u64,
}

impl Lifecycle {
    pub fn from_definition(c: &ContainerDefinition) -> Self {
        Self {
            depends_on: c
                .depends_on
                .iter()
                .map(|d| Dependency {
                    container: d.container_name.clone(),
                    condition: d.condition,
                })
                .collect(),
            start_timeout_secs: c.start_timeout.map(u64::from),
            health_check: c
                .health_check
                .as_ref()
                .and_then(HealthCheckSpec::from_definition),
            restart_policy: c
                .restart_policy
                .as_ref()
                .filter(|p| p.enabled)
                .map(|p| RestartSpec {
                    ignored_exit_codes: p.ignored_exit_codes.clone(),
                    attempt_period_secs: u64::from(p.attempt_period_secs()),
                }),
        }
    }
}

/// Where a container is, as dependency decisions need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Not started yet (waiting for its dependencies).
    Waiting,
    /// Running since `since` (its first start: a restart does not undo a
    /// condition already met).
    Running { since: Instant },
    /// Exited for good (not restarted).
    Exited { code: Option<i32> },
}

/// What the dependency rules need to know of one container.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    pub name: &'a str,
    pub lifecycle: &'a Lifecycle,
    pub phase: Phase,
    /// When it first started (for its startTimeout), if it did.
    pub started_at: Option<Instant>,
    pub health: Option<HealthStatus>,
}

/// May a waiting container start?
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    Open,
    /// Not yet; ask again at `until` at the latest (a startTimeout ends).
    Wait {
        until: Option<Instant>,
    },
    /// Never: the task cannot start. The reason names both containers and
    /// the condition.
    Never(String),
}

/// Decides whether container `i` (waiting) may start now.
pub fn gate(views: &[View<'_>], i: usize, now: Instant) -> Gate {
    let me = &views[i];
    let mut until: Option<Instant> = None;
    let mut waiting = false;
    for dep in &me.lifecycle.depends_on {
        let Some(target) = views.iter().find(|v| v.name == dep.container) else {
            // Validation refuses unknown names; a plan without the target
            // (adopted from labels) has nothing to wait for.
            continue;
        };
        let cond = dep.condition.as_str();
        let unmet = |why: String| {
            format!(
                "DependencyError: container {:?} cannot start: its dependency {:?} did not reach \
                 {cond}: {why}",
                me.name, target.name
            )
        };
        let met = match (dep.condition, target.phase) {
            (_, Phase::Waiting) => false,
            (DependencyCondition::Start, _) => true,
            (DependencyCondition::Complete, Phase::Exited { .. }) => true,
            (DependencyCondition::Success, Phase::Exited { code: Some(0) }) => true,
            (DependencyCondition::Success, Phase::Exited { code }) => {
                return Gate::Never(unmet(match code {
                    Some(c) => format!("it exited with code {c}"),
                    None => "it exited and its exit code is unknown".to_owned(),
                }));
            }
            (DependencyCondition::Healthy, _) if target.health == Some(HealthStatus::Healthy) => {
                true
            }
            (DependencyCondition::Healthy, Phase::Exited { code }) => {
                return Gate::Never(unmet(format!(
                    "it exited (code {}) before its health check passed",
                    code.map_or("unknown".to_owned(), |c| c.to_string())
                )));
            }
            (_, Phase::Running { .. }) => false,
        };
        if met {
            continue;
        }
        waiting = true;
        // ECS: the dependency's own startTimeout, from its start.
        if let (Some(secs), Some(started)) =
            (target.lifecycle.start_timeout_secs, target.started_at)
        {
            let deadline = started + Duration::from_secs(secs);
            if now >= deadline {
                return Gate::Never(unmet(format!("its startTimeout of {secs} s passed")));
            }
            until = Some(until.map_or(deadline, |u| u.min(deadline)));
        }
    }
    if waiting {
        Gate::Wait { until }
    } else {
        Gate::Open
    }
}

/// The order to stop `live` containers in: waves, each stopped (and waited
/// for) before the next. A container is stopped only after every live
/// container that depends on it has stopped (ECS stops dependents first).
/// Containers in a cycle (which validation refuses) go in the last wave.
pub fn stop_waves(lifecycles: &[(&str, &Lifecycle)], live: &[usize]) -> Vec<Vec<usize>> {
    let mut left: Vec<usize> = live.to_vec();
    let mut waves = Vec::new();
    while !left.is_empty() {
        let depended_on = |i: usize, among: &[usize]| {
            let name = lifecycles[i].0;
            among.iter().any(|&j| {
                j != i
                    && lifecycles[j]
                        .1
                        .depends_on
                        .iter()
                        .any(|d| d.container == name)
            })
        };
        let (wave, rest): (Vec<usize>, Vec<usize>) =
            left.iter().partition(|&&i| !depended_on(i, &left));
        if wave.is_empty() {
            waves.push(rest);
            break;
        }
        waves.push(wave);
        left = rest;
    }
    waves
}

/// One health check's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    /// 0 is healthy; anything else (or a timeout, -1) a failure.
    pub exit_code: i32,
    pub output: String,
}

/// A container's health, by Docker's rules (which ECS uses): UNKNOWN until
/// the first check passes; any passing check makes it HEALTHY and resets
/// the failing streak; `retries` consecutive failures make it UNHEALTHY;
/// failures within `startPeriod` of the container's start do not count.
#[derive(Debug, Clone)]
pub struct HealthTracker {
    pub status: HealthStatus,
    pub failing_streak: u32,
    pub since: Instant,
    pub last: Option<CheckResult>,
    retries: u32,
    start_period: Duration,
    started: Instant,
}

impl HealthTracker {
    pub fn new(spec: &HealthCheckSpec, started: Instant) -> Self {
        Self {
            status: HealthStatus::Unknown,
            failing_streak: 0,
            since: started,
            last: None,
            retries: spec.retries.max(1),
            start_period: Duration::from_secs(spec.start_period_secs),
            started,
        }
    }

    /// Takes in a check's result; true when the status changed.
    pub fn record(&mut self, mut result: CheckResult, now: Instant) -> bool {
        truncate_output(&mut result.output);
        let before = self.status;
        if result.exit_code == 0 {
            self.failing_streak = 0;
            self.status = HealthStatus::Healthy;
        } else if now.duration_since(self.started) >= self.start_period {
            self.failing_streak += 1;
            if self.failing_streak >= self.retries {
                self.status = HealthStatus::Unhealthy;
            }
        }
        self.last = Some(result);
        if self.status != before {
            self.since = now;
        }
        self.status != before
    }
}

/// Keeps the first [`HEALTH_OUTPUT_MAX`] bytes, cut at a character boundary.
pub fn truncate_output(s: &mut String) {
    if s.len() > HEALTH_OUTPUT_MAX {
        let mut end = HEALTH_OUTPUT_MAX;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

/// ECS's task healthStatus from its containers' (`essential`, health of a
/// container with a check). The essential containers with a check decide;
/// only when none has one do the non-essential ones with a check decide.
/// Among those: any UNHEALTHY gives UNHEALTHY, else any UNKNOWN gives
/// UNKNOWN, else HEALTHY. No check at all: UNKNOWN.
pub fn task_health(containers: &[(bool, Option<HealthStatus>)]) -> HealthStatus {
    let checked = |essential: bool| -> Vec<HealthStatus> {
        containers
            .iter()
            .filter(|(e, _)| *e == essential)
            .filter_map(|(_, h)| *h)
            .collect()
    };
    let mut deciding = checked(true);
    if deciding.is_empty() {
        deciding = checked(false);
    }
    if deciding.is_empty() {
        HealthStatus::Unknown
    } else if deciding.contains(&HealthStatus::Unhealthy) {
        HealthStatus::Unhealthy
    } else if deciding.contains(&HealthStatus::Unknown) {
        HealthStatus::Unknown
    } else {
        HealthStatus::Healthy
    }
}

/// Whether an exited container is restarted in place, by ECS's restart
/// tracker: the policy is enabled, the task is not stopping, the exit code
/// is not ignored, and the container has run for `restartAttemptPeriod`
/// since its last (re)start. `Err` says why not.
pub fn should_restart(
    policy: Option<&RestartSpec>,
    exit_code: Option<i32>,
    last_start: Instant,
    now: Instant,
    task_stopping: bool,
) -> Result<(), String> {
    let Some(p) = policy else {
        return Err("no restart policy".to_owned());
    };
    if task_stopping {
        return Err("the task is stopping".to_owned());
    }
    let Some(code) = exit_code else {
        return Err("its exit code is unknown".to_owned());
    };
    if p.ignored_exit_codes.contains(&code) {
        return Err(format!("exit code {code} is in ignoredExitCodes"));
    }
    let ran = now.saturating_duration_since(last_start);
    if ran < Duration::from_secs(p.attempt_period_secs) {
        return Err(format!(
            "it ran {} s, less than its restartAttemptPeriod of {} s",
            ran.as_secs(),
            p.attempt_period_secs
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lc(deps: &[(&str, DependencyCondition)], timeout: Option<u64>) -> Lifecycle {
        Lifecycle {
            depends_on: deps
                .iter()
                .map(|(c, cond)| Dependency {
                    container: (*c).to_owned(),
                    condition: *cond,
                })
                .collect(),
            start_timeout_secs: timeout,
            ..Default::default()
        }
    }

    fn view<'a>(name: &'a str, l: &'a Lifecycle, phase: Phase) -> View<'a> {
        let started_at = match phase {
            Phase::Running { since } => Some(since),
            _ => None,
        };
        View {
            name,
            lifecycle: l,
            phase,
            started_at,
            health: None,
        }
    }

    use DependencyCondition::{Complete, Healthy, Start, Success};

    #[test]
    fn success_gates_until_exit_zero_and_fails_on_other_codes() {
        let t0 = Instant::now();
        let init = lc(&[], None);
        let app = lc(&[("init", Success)], None);
        let running = [
            view("init", &init, Phase::Running { since: t0 }),
            view("app", &app, Phase::Waiting),
        ];
        assert_eq!(gate(&running, 1, t0), Gate::Wait { until: None });
        let ok = [
            view("init", &init, Phase::Exited { code: Some(0) }),
            view("app", &app, Phase::Waiting),
        ];
        assert_eq!(gate(&ok, 1, t0), Gate::Open);
        let failed = [
            view("init", &init, Phase::Exited { code: Some(1) }),
            view("app", &app, Phase::Waiting),
        ];
        let Gate::Never(reason) = gate(&failed, 1, t0) else {
            panic!("a failed SUCCESS dependency must stop the task");
        };
        assert!(
            reason.contains("\"app\"")
                && reason.contains("\"init\"")
                && reason.contains("SUCCESS")
                && reason.contains("code 1"),
            "{reason}"
        );
    }

    #[test]
    fn start_complete_and_healthy_conditions() {
        let t0 = Instant::now();
        let db = lc(&[], None);
        let a = lc(&[("db", Start)], None);
        let b = lc(&[("db", Complete)], None);
        let c = lc(&[("db", Healthy)], None);
        let mut vs = vec![
            view("db", &db, Phase::Waiting),
            view("a", &a, Phase::Waiting),
            view("b", &b, Phase::Waiting),
            view("c", &c, Phase::Waiting),
        ];
        for i in 1..4 {
            assert!(matches!(gate(&vs, i, t0), Gate::Wait { .. }));
        }
        vs[0].phase = Phase::Running { since: t0 };
        vs[0].health = Some(HealthStatus::Unknown);
        assert_eq!(gate(&vs, 1, t0), Gate::Open);
        assert!(matches!(gate(&vs, 2, t0), Gate::Wait { .. }));
        assert!(matches!(gate(&vs, 3, t0), Gate::Wait { .. }));
        vs[0].health = Some(HealthStatus::Unhealthy);
        assert!(
            matches!(gate(&vs, 3, t0), Gate::Wait { .. }),
            "UNHEALTHY may still recover"
        );
        vs[0].health = Some(HealthStatus::Healthy);
        assert_eq!(gate(&vs, 3, t0), Gate::Open);
        vs[0].phase = Phase::Exited { code: Some(7) };
        assert_eq!(gate(&vs, 2, t0), Gate::Open, "COMPLETE takes any code");
        vs[0].health = Some(HealthStatus::Unknown);
        assert!(matches!(gate(&vs, 3, t0), Gate::Never(_)));
    }

    #[test]
    fn the_dependencys_start_timeout_ends_the_wait() {
        let t0 = Instant::now();
        let db = lc(&[], Some(10));
        let app = lc(&[("db", Healthy)], None);
        let mut vs = vec![
            view("db", &db, Phase::Waiting),
            view("app", &app, Phase::Waiting),
        ];
        // Not started: its timeout has not begun.
        assert_eq!(
            gate(&vs, 1, t0 + Duration::from_secs(60)),
            Gate::Wait { until: None }
        );
        vs[0].phase = Phase::Running { since: t0 };
        vs[0].started_at = Some(t0);
        assert_eq!(
            gate(&vs, 1, t0 + Duration::from_secs(3)),
            Gate::Wait {
                until: Some(t0 + Duration::from_secs(10))
            }
        );
        let Gate::Never(reason) = gate(&vs, 1, t0 + Duration::from_secs(10)) else {
            panic!("the timeout must end the wait");
        };
        assert!(reason.contains("startTimeout of 10 s"), "{reason}");
        vs[0].health = Some(HealthStatus::Healthy);
        assert_eq!(gate(&vs, 1, t0 + Duration::from_secs(11)), Gate::Open);
    }

    #[test]
    fn dependents_stop_before_what_they_depend_on() {
        // proxy -> app -> db, init (exited long ago) and a free sidecar.
        let db = lc(&[], None);
        let app = lc(&[("db", Healthy), ("init", Success)], None);
        let proxy = lc(&[("app", Start)], None);
        let side = lc(&[], None);
        let init = lc(&[], None);
        let all = [
            ("db", &db),
            ("app", &app),
            ("proxy", &proxy),
            ("side", &side),
            ("init", &init),
        ];
        assert_eq!(
            stop_waves(&all, &[0, 1, 2, 3]),
            vec![vec![2, 3], vec![1], vec![0]]
        );
        // Without the proxy, app goes first.
        assert_eq!(stop_waves(&all, &[0, 1]), vec![vec![1], vec![0]]);
        assert_eq!(stop_waves(&all, &[]), Vec::<Vec<usize>>::new());
    }

    fn spec(retries: u32, start_period: u64) -> HealthCheckSpec {
        HealthCheckSpec {
            argv: vec!["true".into()],
            interval_secs: 5,
            timeout_secs: 2,
            retries,
            start_period_secs: start_period,
        }
    }

    fn res(code: i32) -> CheckResult {
        CheckResult {
            exit_code: code,
            output: format!("exit {code}"),
        }
    }

    #[test]
    fn health_follows_dockers_rules() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut h = HealthTracker::new(&spec(3, 12), t0);
        assert_eq!(h.status, HealthStatus::Unknown);
        // Failures inside the start period do not count.
        assert!(!h.record(res(1), at(5)));
        assert!(!h.record(res(1), at(10)));
        assert_eq!(h.failing_streak, 0);
        // A pass inside it counts.
        assert!(h.record(res(0), at(11)));
        assert_eq!((h.status, h.since), (HealthStatus::Healthy, at(11)));
        assert!(!h.record(res(1), at(15)));
        assert!(!h.record(res(1), at(20)));
        assert_eq!(h.status, HealthStatus::Healthy, "two of three retries");
        assert!(h.record(res(1), at(25)));
        assert_eq!(h.status, HealthStatus::Unhealthy);
        assert_eq!(h.last.as_ref().map(|r| r.output.as_str()), Some("exit 1"));
        // One pass recovers.
        assert!(h.record(res(0), at(30)));
        assert_eq!((h.status, h.failing_streak), (HealthStatus::Healthy, 0));
    }

    #[test]
    fn output_is_cut_to_1024_bytes_at_a_character_boundary() {
        let mut s = "é".repeat(600); // 1200 bytes
        truncate_output(&mut s);
        assert_eq!(s.len(), 1024);
        let mut short = "ok".to_owned();
        truncate_output(&mut short);
        assert_eq!(short, "ok");
    }

    #[test]
    fn task_health_by_ecs_rules() {
        use HealthStatus::{Healthy as H, Unhealthy as U, Unknown as K};
        assert_eq!(task_health(&[]), K);
        assert_eq!(task_health(&[(true, None)]), K, "no checks");
        assert_eq!(task_health(&[(true, Some(H)), (true, None)]), H);
        assert_eq!(task_health(&[(true, Some(H)), (true, Some(K))]), K);
        assert_eq!(task_health(&[(true, Some(K)), (true, Some(U))]), U);
        // Non-essential checks count only when no essential one has a check.
        assert_eq!(task_health(&[(true, Some(H)), (false, Some(U))]), H);
        assert_eq!(task_health(&[(true, None), (false, Some(U))]), U);
        assert_eq!(task_health(&[(true, None), (false, Some(H))]), H);
    }

    #[test]
    fn restart_decision_follows_ecs_restart_tracker() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let p = RestartSpec {
            ignored_exit_codes: vec![0, 3],
            attempt_period_secs: 60,
        };
        assert!(should_restart(Some(&p), Some(1), t0, at(61), false).is_ok());
        assert!(should_restart(Some(&p), Some(137), t0, at(60), false).is_ok());
        let early = should_restart(Some(&p), Some(1), t0, at(59), false).unwrap_err();
        assert!(early.contains("restartAttemptPeriod of 60 s"), "{early}");
        let ignored = should_restart(Some(&p), Some(3), t0, at(600), false).unwrap_err();
        assert!(ignored.contains("ignoredExitCodes"), "{ignored}");
        assert!(should_restart(Some(&p), Some(1), t0, at(600), true).is_err());
        assert!(should_restart(Some(&p), None, t0, at(600), false).is_err());
        assert!(should_restart(None, Some(1), t0, at(600), false).is_err());
    }

    #[test]
    fn lifecycle_from_a_definition() {
        let def: ContainerDefinition = serde_json::from_str(
            r#"{"name":"web","image":"busybox",
                "dependsOn":[{"containerName":"init","condition":"SUCCESS"}],
                "startTimeout":30,
                "healthCheck":{"command":["CMD-SHELL","test -f /tmp/ok"],"interval":5},
                "restartPolicy":{"enabled":true,"ignoredExitCodes":[3]}}"#,
        )
        .unwrap();
        let l = Lifecycle::from_definition(&def);
        assert_eq!(l.depends_on[0].container, "init");
        assert_eq!(l.start_timeout_secs, Some(30));
        let hc = l.health_check.as_ref().unwrap();
        assert_eq!(hc.argv, ["/bin/sh", "-c", "test -f /tmp/ok"]);
        assert_eq!(
            (
                hc.interval_secs,
                hc.timeout_secs,
                hc.retries,
                hc.start_period_secs
            ),
            (5, 5, 3, 0),
            "ECS's defaults fill the rest"
        );
        let rp = l.restart_policy.as_ref().unwrap();
        assert_eq!(
            (rp.attempt_period_secs, rp.ignored_exit_codes.clone()),
            (300, vec![3])
        );
        let json = serde_json::to_string(&l).unwrap();
        assert_eq!(serde_json::from_str::<Lifecycle>(&json).unwrap(), l);
        let none: ContainerDefinition = serde_json::from_str(
            r#"{"name":"web","image":"busybox","healthCheck":{"command":["NONE"]},
                "restartPolicy":{"enabled":false}}"#,
        )
        .unwrap();
        assert_eq!(Lifecycle::from_definition(&none), Lifecycle::default());
    }
}
