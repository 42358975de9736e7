//! Unit tests of the runner and supervisor against [`super::fake::FakeOps`],
//! with tokio's paused clock.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::fake::{FakeOps, FAKE_TASK_IP};
use super::ops::{Observed, ObservedState};
use super::plan::TaskPlan;
use super::report::{
    ContainerStatus, HealthStatus, Protocol, Reporter, StopCode, TargetHealth, TargetReason,
    TargetState, TaskReport, TaskStatus,
};
use super::runner::RunnerCtx;
use super::supervisor::Supervisor;
use super::targets::ProbeOutcome;
use crate::desired::{
    CheckPort, CheckProtocol, DesiredState, DesiredStatus, DesiredTask, PortAssignment,
    TargetCheck, TargetHealthCheck,
};

const ARN: &str = "arn:berth:ecs:local:0:task/default/0123456789abcdef0123456789abcdef";
const WEB: &str = "0123456789abcdef0123456789abcdef-0-web";
const SIDE: &str = "0123456789abcdef0123456789abcdef-1-side";

fn task(status: DesiredStatus) -> DesiredTask {
    DesiredTask {
        task_arn: ARN.into(),
        desired_status: status,
        task_definition_json: r#"{"family":"web","containerDefinitions":[
            {"name":"web","image":"busybox","memory":32,"stopTimeout":2,"portMappings":[{"containerPort":80}]},
            {"name":"side","image":"sidecar","memory":32,"essential":false}]}"#
            .into(),
        cluster: "default".into(),
        family: "web".into(),
        revision: 1,
        ports: vec![PortAssignment {
            container_name: "web".into(),
            container_port: 80,
            protocol: Protocol::Tcp,
            host_port: 20001,
        }],
        ..Default::default()
    }
}

struct Harness {
    ops: Arc<FakeOps>,
    reporter: Reporter,
    desired: watch::Sender<Option<DesiredState>>,
    cancel: CancellationToken,
    generation: u64,
}

impl Harness {
    fn start(ops: Arc<FakeOps>) -> Self {
        let reporter = Reporter::default();
        let ctx = Arc::new(RunnerCtx {
            ops: ops.clone(),
            reporter: reporter.clone(),
            cleanup_after: Duration::from_secs(60),
        });
        let cancel = CancellationToken::new();
        let (desired, rx) = watch::channel(None);
        let sup = Supervisor::new(ctx, Duration::from_secs(30), cancel.clone());
        tokio::spawn(sup.run(rx));
        Self {
            ops,
            reporter,
            desired,
            cancel,
            generation: 0,
        }
    }

    fn want(&mut self, tasks: Vec<DesiredTask>) {
        self.generation += 1;
        self.desired.send_replace(Some(DesiredState {
            generation: self.generation,
            tasks,
        }));
    }

    async fn until(&self, what: &str, f: impl Fn(&TaskReport) -> bool) -> TaskReport {
        for _ in 0..2000 {
            if let Some(r) = self.reporter.get(ARN) {
                if f(&r) {
                    return r;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "never reached {what}: {:?}\ncalls: {:?}",
            self.reporter.get(ARN),
            self.ops.calls()
        );
    }
}

#[tokio::test(start_paused = true)]
async fn launch_runs_then_essential_exit_stops_the_task() {
    let mut h = Harness::start(FakeOps::new());
    h.want(vec![task(DesiredStatus::Running)]);
    let r = h
        .until("RUNNING", |r| r.status == TaskStatus::Running)
        .await;
    assert!(r.pull_started_at.is_some() && r.pull_stopped_at.is_some() && r.started_at.is_some());
    assert_eq!(r.containers[0].bindings[0].host_port, 20001);
    assert!(r.containers[1].bindings.is_empty());
    assert_eq!(r.containers[0].image_digest, "sha256:7");

    // A non-essential exit leaves the task RUNNING.
    h.ops.exit(SIDE, 0, false);
    let r = h
        .until("sidecar stopped", |r| {
            r.containers[1].status == ContainerStatus::Stopped
        })
        .await;
    assert_eq!(r.status, TaskStatus::Running);
    assert_eq!(r.containers[1].exit_code, Some(0));

    // The essential one exiting 3 stops it.
    h.ops.exit(WEB, 3, false);
    let r = h
        .until("STOPPED", |r| r.status == TaskStatus::Stopped)
        .await;
    assert_eq!(r.stop_code, Some(StopCode::EssentialContainerExited));
    assert_eq!(r.containers[0].exit_code, Some(3));
    assert!(r.stopped_at.is_some());
    let calls = h.ops.calls();
    assert!(calls.iter().any(|c| c.starts_with("teardown")), "{calls:?}");
    // Cleanup waits its turn.
    assert!(!calls.iter().any(|c| c.starts_with("remove")));
    tokio::time::sleep(Duration::from_secs(61)).await;
    assert!(h.ops.calls().iter().any(|c| c.starts_with("remove")));
    h.cancel.cancel();
}

#[tokio::test(start_paused = true)]
async fn stop_sends_sigterm_then_sigkill_after_stop_timeout() {
    let ops = FakeOps::new();
    ops.ignore_sigterm.lock().unwrap().push(WEB.to_owned());
    let mut h = Harness::start(ops);
    h.want(vec![task(DesiredStatus::Running)]);
    h.until("RUNNING", |r| r.status == TaskStatus::Running)
        .await;
    let mut stop = task(DesiredStatus::Stopped);
    stop.stop_code = Some(StopCode::UserInitiated);
    stop.stopped_reason = "Task stopped by user".into();
    h.want(vec![stop]);
    let r = h
        .until("STOPPED", |r| r.status == TaskStatus::Stopped)
        .await;
    assert_eq!(r.stop_code, Some(StopCode::UserInitiated));
    assert_eq!(r.stopped_reason, "Task stopped by user");
    assert_eq!(
        r.containers[0].exit_code,
        Some(137),
        "killed after its 2 s stopTimeout"
    );
    assert_eq!(
        r.containers[1].exit_code,
        Some(143),
        "the sidecar obeyed SIGTERM"
    );
    let calls = h.ops.calls();
    let term = calls
        .iter()
        .position(|c| c == &format!("signal {WEB} SIGTERM"))
        .unwrap();
    let kill = calls
        .iter()
        .position(|c| c == &format!("signal {WEB} SIGKILL"))
        .unwrap();
    assert!(term < kill);
    let teardown = calls
        .iter()
        .position(|c| c.starts_with("teardown"))
        .unwrap();
    assert!(
        kill < teardown,
        "network and cgroup go only after every container exited"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_pull_is_task_failed_to_start() {
    let ops = FakeOps::new();
    ops.failing_images.lock().unwrap().insert(
        "sidecar".into(),
        "unauthorized: authentication required".into(),
    );
    let mut h = Harness::start(ops);
    h.want(vec![task(DesiredStatus::Running)]);
    let r = h
        .until("STOPPED", |r| r.status == TaskStatus::Stopped)
        .await;
    assert_eq!(r.stop_code, Some(StopCode::TaskFailedToStart));
    assert_eq!(
        r.stopped_reason,
        "CannotPullContainerError: unauthorized: authentication required"
    );
    assert!(!h.ops.calls().iter().any(|c| c.starts_with("start")));
}

#[tokio::test(start_paused = true)]
async fn tasks_dropped_from_the_desired_set_are_stopped_and_never_restarted() {
    let mut h = Harness::start(FakeOps::new());
    h.want(vec![task(DesiredStatus::Running)]);
    h.until("RUNNING", |r| r.status == TaskStatus::Running)
        .await;
    h.want(vec![]);
    let r = h
        .until("STOPPED", |r| r.status == TaskStatus::Stopped)
        .await;
    assert!(r
        .stopped_reason
        .contains("not in the scheduler's desired state"));
    // The scheduler lists it RUNNING again (it had not heard): no relaunch.
    h.want(vec![task(DesiredStatus::Running)]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let starts = h
        .ops
        .calls()
        .iter()
        .filter(|c| c.starts_with(&format!("start {WEB}")))
        .count();
    assert_eq!(starts, 1);
}

/// `task` in awsvpc mode (no host ports).
fn awsvpc_task(status: DesiredStatus) -> DesiredTask {
    DesiredTask {
        task_definition_json: r#"{"family":"web","networkMode":"awsvpc","containerDefinitions":[
            {"name":"web","image":"busybox","memory":32,"stopTimeout":2,"portMappings":[{"containerPort":80}]},
            {"name":"side","image":"sidecar","memory":32,"essential":false}]}"#
            .into(),
        ports: vec![],
        ..task(status)
    }
}

#[tokio::test(start_paused = true)]
async fn awsvpc_tasks_report_their_address_and_bridge_tasks_do_not() {
    let mut h = Harness::start(FakeOps::new());
    h.want(vec![awsvpc_task(DesiredStatus::Running)]);
    let r = h
        .until("RUNNING", |r| r.status == TaskStatus::Running)
        .await;
    assert_eq!(r.private_ipv4, Some(FAKE_TASK_IP));
    assert!(r.containers.iter().all(|c| c.bindings.is_empty()));

    // The fake gives bridge tasks an address too; ECS shows none for them.
    let mut h = Harness::start(FakeOps::new());
    h.want(vec![task(DesiredStatus::Running)]);
    let r = h
        .until("RUNNING", |r| r.status == TaskStatus::Running)
        .await;
    assert_eq!(r.private_ipv4, None);
}

#[tokio::test(start_paused = true)]
async fn a_readopted_awsvpc_task_reports_its_address_again() {
    let plan = TaskPlan::from_desired(
        &awsvpc_task(DesiredStatus::Running),
        Duration::from_secs(30),
    )
    .unwrap();
    let ops = FakeOps::new();
    *ops.observed.lock().unwrap() = observed(
        &plan,
        [
            ObservedState::Running { pid: 10 },
            ObservedState::Running { pid: 11 },
        ],
    );
    let h = Harness::start(ops);
    let r = h
        .until("RUNNING", |r| r.status == TaskStatus::Running)
        .await;
    assert_eq!(r.private_ipv4, Some(FAKE_TASK_IP));
    assert!(h.ops.calls().iter().any(|c| c.starts_with("adopt ")));
}

fn observed(plan: &TaskPlan, states: [ObservedState; 2]) -> Vec<Observed> {
    states
        .into_iter()
        .enumerate()
        .map(|(i, state)| Observed {
            runtime_id: plan.containers[i].runtime_id.clone(),
            labels: plan.labels(i),
            state,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn running_containers_are_readopted_without_a_restart() {
    let plan =
        TaskPlan::from_desired(&task(DesiredStatus::Running), Duration::from_secs(30)).unwrap();
    let ops = FakeOps::new();
    *ops.observed.lock().unwrap() = observed(
        &plan,
        [
            ObservedState::Running { pid: 10 },
            ObservedState::Running { pid: 11 },
        ],
    );
    let mut h = Harness::start(ops);
    // RUNNING before any desired state arrives (the scheduler may be away).
    let r = h
        .until("RUNNING", |r| r.status == TaskStatus::Running)
        .await;
    assert_eq!(r.containers[0].status, ContainerStatus::Running);
    h.want(vec![task(DesiredStatus::Running)]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let calls = h.ops.calls();
    assert!(
        !calls
            .iter()
            .any(|c| c.starts_with("start") || c.starts_with("pull")),
        "{calls:?}"
    );
    // Exits are watched again.
    h.ops.exit(WEB, 1, true);
    let r = h
        .until("STOPPED", |r| r.status == TaskStatus::Stopped)
        .await;
    assert_eq!(r.containers[0].reason, super::runner::OOM_REASON);
}

#[tokio::test(start_paused = true)]
async fn tasks_that_died_while_the_agent_was_down_are_reported_stopped() {
    let plan =
        TaskPlan::from_desired(&task(DesiredStatus::Running), Duration::from_secs(30)).unwrap();
    let ops = FakeOps::new();
    *ops.observed.lock().unwrap() = observed(&plan, [ObservedState::NoTask, ObservedState::NoTask]);
    let h = Harness::start(ops);
    let r = h
        .until("STOPPED", |r| r.status == TaskStatus::Stopped)
        .await;
    assert_eq!(r.stop_code, Some(StopCode::EssentialContainerExited));
    assert!(
        r.stopped_reason.contains("agent was down"),
        "{}",
        r.stopped_reason
    );
}

#[tokio::test(start_paused = true)]
async fn agent_shutdown_leaves_tasks_running() {
    let mut h = Harness::start(FakeOps::new());
    h.want(vec![task(DesiredStatus::Running)]);
    h.until("RUNNING", |r| r.status == TaskStatus::Running)
        .await;
    h.cancel.cancel();
    tokio::time::sleep(Duration::from_secs(120)).await;
    let calls = h.ops.calls();
    assert!(
        !calls
            .iter()
            .any(|c| c.starts_with("signal") || c.starts_with("teardown")),
        "{calls:?}"
    );
}

/// A desired task of `containers` (JSON objects), no ports.
fn task_of(containers: &str) -> DesiredTask {
    DesiredTask {
        task_arn: ARN.into(),
        desired_status: DesiredStatus::Running,
        task_definition_json: format!(
            r#"{{"family":"web","containerDefinitions":[{containers}]}}"#
        ),
        cluster: "default".into(),
        family: "web".into(),
        revision: 1,
        ..Default::default()
    }
}

const INIT: &str = "0123456789abcdef0123456789abcdef-0-init";
const APP: &str = "0123456789abcdef0123456789abcdef-1-app";

const INIT_APP: &str = r#"
    {"name":"init","image":"busybox","memory":32,"essential":false},
    {"name":"app","image":"busybox","memory":32,
     "dependsOn":[{"containerName":"init","condition":"SUCCESS"}]}"#;

#[tokio::test(start_paused = true)]
async fn a_success_dependency_gates_the_app_until_init_exits_zero() {
    let mut h = Harness::start(FakeOps::new());
    h.want(vec![task_of(INIT_APP)]);
    h.until("init running", |r| {
        r.containers[0].status == ContainerStatus::Running
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let r = h.reporter.get(ARN).unwrap();
    assert_eq!(r.status, TaskStatus::Pending, "init still runs");
    assert_eq!(r.containers[1].status, ContainerStatus::Pending);
    assert_eq!(h.ops.count(&format!("start {APP}")), 0);
    h.ops.exit(INIT, 0, false);
    let r = h
        .until("RUNNING", |r| r.status == TaskStatus::Running)
        .await;
    assert_eq!(r.containers[0].status, ContainerStatus::Stopped);
    assert_eq!(r.containers[0].exit_code, Some(0));
    assert_eq!(r.containers[1].status, ContainerStatus::Running);
    h.cancel.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_failed_success_dependency_stops_the_task_with_a_reason() {
    let mut h = Harness::start(FakeOps::new());
    h.want(vec![task_of(INIT_APP)]);
    h.until("init running", |r| {
        r.containers[0].status == ContainerStatus::Running
    })
    .await;
    h.ops.exit(INIT, 1, false);
    let r = h
        .until("STOPPED", |r| r.status == TaskStatus::Stopped)
        .await;
    assert_eq!(r.stop_code, Some(StopCode::TaskFailedToStart));
    assert!(
        r.stopped_reason.contains("\"app\"")
            && r.stopped_reason.contains("\"init\"")
            && r.stopped_reason.contains("SUCCESS")
            && r.stopped_reason.contains("code 1"),
        "{}",
        r.stopped_reason
    );
    assert_eq!(r.containers[1].status, ContainerStatus::Stopped);
    assert_eq!(r.containers[1].reason, r.stopped_reason);
    assert_eq!(h.ops.count(&format!("start {APP}")), 0);
}

const DB_APP: &str = r#"
    {"name":"db","image":"busybox","memory":32,"startTimeout":30,
     "healthCheck":{"command":["CMD-SHELL","pg_isready"],"interval":5,"retries":2}},
    {"name":"app","image":"busybox","memory":32,
     "dependsOn":[{"containerName":"db","condition":"HEALTHY"}]}"#;
const DB: &str = "0123456789abcdef0123456789abcdef-0-db";
const DB_APP_APP: &str = "0123456789abcdef0123456789abcdef-1-app";

#[tokio::test(start_paused = true)]
async fn a_healthy_dependency_waits_for_the_check_and_health_is_reported() {
    let ops = FakeOps::new();
    ops.set_exec_code(DB, 1);
    let mut h = Harness::start(ops);
    h.want(vec![task_of(DB_APP)]);
    h.until("db running", |r| {
        r.containers[0].status == ContainerStatus::Running
    })
    .await;
    tokio::time::sleep(Duration::from_secs(12)).await;
    let r = h.reporter.get(ARN).unwrap();
    assert_eq!(r.status, TaskStatus::Pending);
    assert_eq!(
        r.containers[0].health.as_ref().map(|h| h.status),
        Some(HealthStatus::Unhealthy),
        "two failed checks (retries 2)"
    );
    assert_eq!(r.containers[0].health.as_ref().unwrap().output, "exit 1");
    assert_eq!(r.health_status, HealthStatus::Unhealthy);
    assert!(h
        .ops
        .calls()
        .contains(&format!("exec {DB} /bin/sh -c pg_isready")));
    h.ops.set_exec_code(DB, 0);
    let r = h
        .until("RUNNING", |r| r.status == TaskStatus::Running)
        .await;
    assert_eq!(
        r.containers[0].health.as_ref().map(|h| h.status),
        Some(HealthStatus::Healthy)
    );
    assert_eq!(r.health_status, HealthStatus::Healthy);
    assert_eq!(r.containers[1].health, None, "app has no check");
    assert_eq!(h.ops.count(&format!("start {DB_APP_APP}")), 1);

    // Stopping goes dependents first: app, then db.
    let mut stop = task_of(DB_APP);
    stop.desired_status = DesiredStatus::Stopped;
    stop.stop_code = Some(StopCode::UserInitiated);
    h.want(vec![stop]);
    h.until("STOPPED", |r| r.status == TaskStatus::Stopped)
        .await;
    let calls = h.ops.calls();
    let app = calls
        .iter()
        .position(|c| c == &format!("signal {DB_APP_APP} SIGTERM"))
        .unwrap();
    let db = calls
        .iter()
        .position(|c| c == &format!("signal {DB} SIGTERM"))
        .unwrap();
    assert!(app < db, "{calls:?}");
}

#[tokio::test(start_paused = true)]
async fn a_dependency_that_misses_its_start_timeout_stops_the_task() {
    let ops = FakeOps::new();
    ops.set_exec_code(DB, 1);
    let mut h = Harness::start(ops);
    h.want(vec![task_of(DB_APP)]);
    tokio::time::sleep(Duration::from_secs(25)).await;
    assert_eq!(h.reporter.get(ARN).unwrap().status, TaskStatus::Pending);
    let r = h
        .until("STOPPED", |r| r.status == TaskStatus::Stopped)
        .await;
    assert_eq!(r.stop_code, Some(StopCode::TaskFailedToStart));
    assert!(
        r.stopped_reason.contains("HEALTHY") && r.stopped_reason.contains("startTimeout of 30 s"),
        "{}",
        r.stopped_reason
    );
    assert_eq!(h.ops.count(&format!("start {DB_APP_APP}")), 0);
}

const RESTARTING: &str = r#"
    {"name":"web","image":"busybox","memory":32},
    {"name":"side","image":"busybox","memory":32,"essential":false,
     "restartPolicy":{"enabled":true,"ignoredExitCodes":[3],"restartAttemptPeriod":60}}"#;
const RSIDE: &str = "0123456789abcdef0123456789abcdef-1-side";

#[tokio::test(start_paused = true)]
async fn the_restart_policy_restarts_by_ecs_rules() {
    let mut h = Harness::start(FakeOps::new());
    h.want(vec![task_of(RESTARTING)]);
    h.until("RUNNING", |r| r.status == TaskStatus::Running)
        .await;
    // Ran a full restartAttemptPeriod: restarted in place.
    tokio::time::sleep(Duration::from_secs(61)).await;
    h.ops.exit(RSIDE, 1, false);
    let r = h
        .until("one restart", |r| r.containers[1].restart_count == 1)
        .await;
    assert_eq!(r.containers[1].status, ContainerStatus::Running);
    assert_eq!(h.ops.count(&format!("restart {RSIDE}")), 1);
    tokio::time::sleep(Duration::from_secs(61)).await;
    h.ops.exit(RSIDE, 137, false);
    h.until("two restarts", |r| r.containers[1].restart_count == 2)
        .await;
    // An ignored exit code is not restarted, however long it ran.
    tokio::time::sleep(Duration::from_secs(61)).await;
    h.ops.exit(RSIDE, 3, false);
    let r = h
        .until("side stopped", |r| {
            r.containers[1].status == ContainerStatus::Stopped
        })
        .await;
    assert_eq!(
        (r.containers[1].exit_code, r.containers[1].restart_count),
        (Some(3), 2)
    );
    assert_eq!(r.status, TaskStatus::Running);
    assert_eq!(h.ops.count(&format!("restart {RSIDE}")), 2);
    h.cancel.cancel();
}

#[tokio::test(start_paused = true)]
async fn an_early_exit_is_not_restarted() {
    let mut h = Harness::start(FakeOps::new());
    h.want(vec![task_of(RESTARTING)]);
    h.until("RUNNING", |r| r.status == TaskStatus::Running)
        .await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    h.ops.exit(RSIDE, 1, false);
    let r = h
        .until("side stopped", |r| {
            r.containers[1].status == ContainerStatus::Stopped
        })
        .await;
    assert_eq!(r.containers[1].restart_count, 0);
    assert_eq!(h.ops.count(&format!("restart {RSIDE}")), 0);
    h.cancel.cancel();
}

fn target_check(group: &str, port: CheckPort) -> TargetCheck {
    TargetCheck {
        target_group_arn: group.into(),
        container_name: "web".into(),
        container_port: 80,
        host_port: 20001,
        health: TargetHealthCheck {
            protocol: CheckProtocol::Http,
            path: "/".into(),
            port,
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            healthy_threshold: 2,
            unhealthy_threshold: 2,
            matcher: "200".parse().unwrap(),
        },
    }
}

fn probes(ops: &FakeOps) -> Vec<String> {
    ops.calls()
        .into_iter()
        .filter(|c| c.starts_with("probe "))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_running_task_reports_its_targets_health() {
    let ops = FakeOps::new();
    let mut h = Harness::start(ops.clone());
    let mut t = task(DesiredStatus::Running);
    t.target_checks = vec![target_check("arn:tg/a", CheckPort::TrafficPort)];
    h.want(vec![t.clone()]);
    let r = h
        .until("RUNNING", |r| r.status == TaskStatus::Running)
        .await;
    assert!(r.target_health.is_empty(), "nothing before a threshold");

    // Two successes (at once, then after 5 s): healthy.
    let r = h.until("healthy", |r| !r.target_health.is_empty()).await;
    assert_eq!(
        r.target_health,
        [TargetHealth {
            target_group_arn: "arn:tg/a".into(),
            container_name: "web".into(),
            container_port: 80,
            state: TargetState::Healthy,
            reason: None,
            description: String::new(),
        }]
    );
    // Only ever the task's own address on the bridge, at the container port.
    let to = SocketAddrV4::new(FAKE_TASK_IP, 80);
    let seen = probes(&ops);
    assert!(
        !seen.is_empty() && seen.iter().all(|c| *c == format!("probe {to}")),
        "{seen:?}"
    );

    // 503s: unhealthy after two, through the task's report.
    ops.set_probe(to, ProbeOutcome::Code(503));
    let r = h
        .until("unhealthy", |r| {
            r.target_health
                .first()
                .is_some_and(|t| t.state == TargetState::Unhealthy)
        })
        .await;
    assert_eq!(
        r.target_health[0].reason,
        Some(TargetReason::ResponseCodeMismatch)
    );
    assert_eq!(
        r.target_health[0].description,
        "Health checks failed with these codes: [503]"
    );
    assert_eq!(
        r.status,
        TaskStatus::Running,
        "target health never stops a task"
    );

    // New checks: the old verdicts go, the new ones start from scratch. A
    // fixed port that is the task's host port probes its container port.
    ops.set_probe(to, ProbeOutcome::Success);
    t.target_checks = vec![target_check("arn:tg/b", CheckPort::Port(20001))];
    h.want(vec![t.clone()]);
    h.until("verdicts cleared", |r| r.target_health.is_empty())
        .await;
    let r = h
        .until("the new group healthy", |r| {
            r.target_health
                .first()
                .is_some_and(|t| t.target_group_arn == "arn:tg/b")
        })
        .await;
    assert_eq!(r.target_health.len(), 1);
    assert_eq!(r.target_health[0].state, TargetState::Healthy);
    assert!(probes(&ops).iter().all(|c| *c == format!("probe {to}")));

    // Stopping ends the probes and the report carries no target health.
    h.want(vec![task(DesiredStatus::Stopped)]);
    let r = h
        .until("STOPPED", |r| r.status == TaskStatus::Stopped)
        .await;
    assert!(r.target_health.is_empty(), "{:?}", r.target_health);
    let before = probes(&ops).len();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(probes(&ops).len(), before, "no probes after the stop");
    h.cancel.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_readopted_task_is_probed_from_scratch() {
    let plan =
        TaskPlan::from_desired(&task(DesiredStatus::Running), Duration::from_secs(30)).unwrap();
    let ops = FakeOps::new();
    *ops.observed.lock().unwrap() = observed(
        &plan,
        [
            ObservedState::Running { pid: 10 },
            ObservedState::Running { pid: 11 },
        ],
    );
    let to = SocketAddrV4::new(FAKE_TASK_IP, 80);
    ops.set_probe(to, ProbeOutcome::Timeout);
    let mut h = Harness::start(ops.clone());
    h.until("RUNNING", |r| r.status == TaskStatus::Running)
        .await;
    // The checks come with the first desired state after the restart.
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(probes(&ops).is_empty(), "no checks known yet");
    let mut t = task(DesiredStatus::Running);
    t.target_checks = vec![target_check("arn:tg/a", CheckPort::TrafficPort)];
    h.want(vec![t]);
    let r = h.until("unhealthy", |r| !r.target_health.is_empty()).await;
    assert_eq!(r.target_health[0].state, TargetState::Unhealthy);
    assert_eq!(r.target_health[0].reason, Some(TargetReason::Timeout));
    assert!(probes(&ops).iter().all(|c| *c == format!("probe {to}")));
    h.cancel.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_host_mode_task_is_probed_on_loopback_and_a_none_task_not_at_all() {
    for (mode, expect) in [
        ("host", Some(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 80))),
        ("none", None),
    ] {
        let ops = FakeOps::new();
        let mut h = Harness::start(ops.clone());
        let mut t = task(DesiredStatus::Running);
        t.task_definition_json = t.task_definition_json.replacen(
            r#"{"family":"web","#,
            &format!(r#"{{"family":"web","networkMode":"{mode}","#),
            1,
        );
        if mode == "host" {
            t.ports[0].host_port = 80;
        } else {
            t.task_definition_json =
                t.task_definition_json
                    .replacen(r#","portMappings":[{"containerPort":80}]"#, "", 1);
            t.ports.clear();
        }
        t.target_checks = vec![target_check("arn:tg/a", CheckPort::TrafficPort)];
        h.want(vec![t]);
        h.until("RUNNING", |r| r.status == TaskStatus::Running)
            .await;
        tokio::time::sleep(Duration::from_secs(25)).await;
        let seen = probes(&ops);
        match expect {
            Some(to) => assert!(
                !seen.is_empty() && seen.iter().all(|c| *c == format!("probe {to}")),
                "{mode}: {seen:?}"
            ),
            None => assert!(seen.is_empty(), "{mode}: {seen:?}"),
        }
        h.cancel.cancel();
    }
}
