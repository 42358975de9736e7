//! Unit tests of the service controller's arithmetic: rolling updates
//! simulated step by step against the invariants, the circuit breaker,
//! the throttle, scale-in order, lost and draining instances.

use super::*;
use crate::placement::spec::Strategy;
use crate::records::{CircuitBreaker, DeploymentConfig, SchedulingStrategy};

const T0: UnixMillis = 1_700_000_000_000;

fn service(desired: u32, min: u32, max: u32) -> ServiceRecord {
    let mut rec = ServiceRecord {
        load_balancers: Vec::new(),
        discovery: None,
        enable_execute_command: false,
        cluster: "default".into(),
        name: "web".into(),
        status: ServiceStatus::Active,
        scheduling: SchedulingStrategy::Replica,
        desired_count: desired,
        constraints: vec![],
        strategies: vec![],
        deployment_config: DeploymentConfig {
            minimum_healthy_percent: min,
            maximum_percent: max,
            circuit_breaker: CircuitBreaker::default(),
        },
        health_check_grace_period_secs: 0,
        tags: vec![],
        created_at: T0,
        deployments: vec![],
        events: vec![],
        steady: false,
        throttled_until: None,
        throttle_failures: 0,
        last_completed: None,
        version: 1,
        service_deployments: vec![],
    };
    let mut d = new_deployment("web", 1, T0);
    d.id = "ecs-svc/1".into();
    promote(&mut rec, d);
    rec
}

fn instances(n: usize) -> HashMap<String, InstanceFacts> {
    (0..n)
        .map(|i| {
            (
                format!("i{i}"),
                InstanceFacts {
                    attributes: vec![(
                        "ecs.availability-zone".to_owned(),
                        format!("zone-{}", i % 3),
                    )],
                    remaining_memory: 1000 - 100 * i as i64,
                    ..Default::default()
                },
            )
        })
        .collect()
}

fn task(id: &str, dep: &str, inst: &str, status: TaskStatus) -> TaskFacts {
    TaskFacts {
        id: id.into(),
        instance_id: inst.into(),
        deployment: dep.into(),
        desired_running: true,
        last_status: status,
        health: None,
        created_at: T0,
        started_at: (status >= TaskStatus::Running).then_some(T0),
        stopped_at: (status == TaskStatus::Stopped).then_some(T0),
        failed_health: false,
        targets: TargetsHealth::None,
        stop_code: if status == TaskStatus::Stopped {
            Some(StopCode::TaskFailedToStart)
        } else {
            None
        },
    }
}

fn run_plan(
    rec: &ServiceRecord,
    tasks: &[TaskFacts],
    inst: &HashMap<String, InstanceFacts>,
    now: UnixMillis,
) -> Plan {
    plan(&Inputs {
        service: rec,
        tasks,
        instances: inst,
        health_checked: &HashSet::new(),
        now,
        throttle_base_ms: 1000,
        eligible: &HashSet::new(),
        busy: &HashSet::new(),
    })
}

/// A world that follows the plan: stops take one step to report STOPPED,
/// starts are PENDING for one step, then RUNNING.
struct World {
    rec: ServiceRecord,
    tasks: Vec<TaskFacts>,
    inst: HashMap<String, InstanceFacts>,
    next: usize,
    now: UnixMillis,
}

impl World {
    fn new(desired: u32, min: u32, max: u32) -> Self {
        let rec = service(desired, min, max);
        let mut w = World {
            rec,
            tasks: vec![],
            inst: instances(3),
            next: 0,
            now: T0,
        };
        // Converge on the first deployment.
        w.settle(100);
        assert!(w.rec.steady, "first deployment reaches steady state");
        w
    }

    fn healthy(&self) -> u32 {
        self.tasks
            .iter()
            .filter(|t| t.desired_running && t.last_status == TaskStatus::Running)
            .count() as u32
    }

    fn occupying(&self) -> u32 {
        self.tasks
            .iter()
            .filter(|t| t.last_status != TaskStatus::Stopped)
            .count() as u32
    }

    /// One evaluation, then the agents act. Returns whether anything moved.
    fn step(&mut self) -> bool {
        self.now += 1000;
        let p = run_plan(&self.rec, &self.tasks, &self.inst, self.now);
        let moved = p.start > 0 || !p.stops.is_empty();
        // Agents first finish what was asked before.
        for t in &mut self.tasks {
            match (t.desired_running, t.last_status) {
                (false, s) if s != TaskStatus::Stopped => {
                    t.last_status = TaskStatus::Stopped;
                    t.stopped_at = Some(self.now);
                }
                (true, TaskStatus::Pending) => {
                    t.last_status = TaskStatus::Running;
                    t.started_at = Some(self.now);
                }
                _ => {}
            }
        }
        for s in &p.stops {
            if let Some(t) = self.tasks.iter_mut().find(|t| t.id == s.task_id) {
                t.desired_running = false;
                t.stop_code = Some(StopCode::ServiceSchedulerInitiated);
            }
        }
        let primary = p.record.primary().map(|d| d.id.clone()).unwrap_or_default();
        for _ in 0..p.start {
            self.next += 1;
            let inst = format!("i{}", self.next % self.inst.len());
            let mut t = task(
                &format!("t{}", self.next),
                &primary,
                &inst,
                TaskStatus::Pending,
            );
            t.created_at = self.now;
            self.tasks.push(t);
        }
        self.rec = p.record;
        moved
            || self.tasks.iter().any(|t| {
                t.last_status == TaskStatus::Pending
                    || (!t.desired_running && t.last_status != TaskStatus::Stopped)
            })
    }

    fn settle(&mut self, limit: usize) -> usize {
        let mut idle = 0;
        for n in 0..limit {
            idle = if self.step() { 0 } else { idle + 1 };
            if idle == 3 {
                return n;
            }
        }
        panic!("did not settle in {limit} steps");
    }
}

fn rolling_update_keeps_bounds(desired: u32, min: u32, max: u32) {
    let mut w = World::new(desired, min, max);
    let min_h = min_healthy(desired, min);
    let max_r = max_running(desired, max);
    let mut d = new_deployment("web", 2, w.now);
    d.id = "ecs-svc/2".into();
    promote(&mut w.rec, d);
    let mut idle = 0;
    for _ in 0..200 {
        let moved = w.step();
        assert!(
            w.healthy() >= min_h,
            "{desired} {min}/{max}: {} healthy < {min_h}",
            w.healthy()
        );
        assert!(
            w.occupying() <= max_r.max(desired),
            "{desired} {min}/{max}: {} running > {max_r}",
            w.occupying()
        );
        idle = if moved { 0 } else { idle + 1 };
        if idle == 3 {
            break;
        }
    }
    let p = w.rec.primary().unwrap();
    assert_eq!(p.id, "ecs-svc/2");
    assert_eq!(
        p.rollout_state,
        RolloutState::Completed,
        "{desired} {min}/{max}"
    );
    assert!(w.rec.deployments[1..]
        .iter()
        .all(|d| d.status == DeploymentStatus::Inactive));
    let live: Vec<_> = w
        .tasks
        .iter()
        .filter(|t| t.last_status != TaskStatus::Stopped)
        .collect();
    assert_eq!(live.len() as u32, desired);
    assert!(live.iter().all(|t| t.deployment == "ecs-svc/2"));
}

#[test]
fn ecs_arithmetic() {
    assert_eq!(min_healthy(4, 50), 2);
    assert_eq!(min_healthy(3, 50), 2, "ceil");
    assert_eq!(max_running(3, 150), 4, "floor");
    assert_eq!(max_running(4, 200), 8);
    assert_eq!(failure_threshold(1), 10);
    assert_eq!(failure_threshold(25), 13);
    assert_eq!(failure_threshold(1000), 200);
    assert_eq!(throttle_delay(4, 1000), 0);
    assert_eq!(throttle_delay(5, 1000), 1000);
    assert_eq!(throttle_delay(7, 1000), 4000);
    assert_eq!(throttle_delay(60, 1000), MAX_THROTTLE_MS);
}

#[test]
fn rolling_updates_stay_within_min_and_max() {
    for (d, min, max) in [
        (4, 50, 100),
        (4, 100, 150),
        (4, 100, 200),
        (4, 0, 100),
        (3, 50, 150),
        (5, 60, 120),
        (1, 100, 200),
        (1, 0, 100),
        (10, 90, 110),
    ] {
        rolling_update_keeps_bounds(d, min, max);
    }
}

#[test]
fn min_50_max_100_stops_two_old_first() {
    let mut w = World::new(4, 50, 100);
    let mut d = new_deployment("web", 2, w.now);
    d.id = "ecs-svc/2".into();
    promote(&mut w.rec, d);
    let p = run_plan(&w.rec, &w.tasks, &w.inst, w.now + 1);
    assert_eq!(p.start, 0, "no room under 100%");
    assert_eq!(p.stops.len(), 2, "down to the 50% minimum");
    assert!(p.stops[0]
        .reason
        .starts_with("Scaling activity initiated by (deployment ecs-svc/2)"));
}

#[test]
fn min_100_max_150_starts_two_new_first() {
    let mut w = World::new(4, 100, 150);
    let mut d = new_deployment("web", 2, w.now);
    d.id = "ecs-svc/2".into();
    promote(&mut w.rec, d);
    let p = run_plan(&w.rec, &w.tasks, &w.inst, w.now + 1);
    assert_eq!(p.start, 2);
    assert!(p.stops.is_empty());
}

#[test]
fn steady_state_is_announced_once() {
    let mut w = World::new(2, 100, 200);
    let steady = |w: &World| {
        w.rec
            .events
            .iter()
            .filter(|e| e.message == "(service web) has reached a steady state.")
            .count()
    };
    assert_eq!(steady(&w), 1);
    w.step();
    w.step();
    assert_eq!(steady(&w), 1);
    assert!(w
        .rec
        .events
        .iter()
        .any(|e| e.message == "(service web) (deployment ecs-svc/1) deployment completed."));
}

#[test]
fn scale_in_takes_the_fullest_zone_then_instance() {
    let inst = instances(4); // i0, i3 in zone-0; i1 zone-1; i2 zone-2
    let ts = [
        task("a", "d", "i0", TaskStatus::Running),
        task("b", "d", "i3", TaskStatus::Running),
        task("c", "d", "i3", TaskStatus::Running),
        task("e", "d", "i1", TaskStatus::Running),
        task("f", "d", "i2", TaskStatus::Running),
    ];
    let refs: Vec<&TaskFacts> = ts.iter().collect();
    let order: Vec<&str> = scale_in_order(&refs, &[], &inst, &[], 4)
        .iter()
        .map(|t| t.id.as_str())
        .collect();
    // zone-0 has 3 (i3 has 2): one from i3 first, then zone-0 still leads.
    assert!(order[0] == "b" || order[0] == "c", "{order:?}");
    assert!(
        ["a", "b", "c"].contains(&order[1]),
        "zone-0 still has the most: {order:?}"
    );
    assert_eq!(order.len(), 4, "only as many as asked");
    // binpack:memory stops where the most memory is left (i0, then i1, ...).
    let binpack = [Strategy::Binpack(
        crate::placement::spec::BinpackField::Memory,
    )];
    let order: Vec<&str> = scale_in_order(&refs, &[], &inst, &binpack, 2)
        .iter()
        .map(|t| t.id.as_str())
        .collect();
    assert_eq!(order[0], "a", "{order:?}");
    assert_eq!(order[1], "e", "{order:?}");
    // spread:instanceId alone: the instance with most tasks first.
    let spread = [Strategy::Spread(
        crate::placement::spec::SpreadField::Instance,
    )];
    let order: Vec<&str> = scale_in_order(&refs, &[], &inst, &spread, 1)
        .iter()
        .map(|t| t.id.as_str())
        .collect();
    assert!(order[0] == "b" || order[0] == "c", "{order:?}");
}

#[test]
fn circuit_breaker_fails_and_rolls_back_to_the_completed_deployment() {
    let mut w = World::new(2, 100, 200);
    w.rec.deployment_config.circuit_breaker = CircuitBreaker {
        enable: true,
        rollback: true,
    };
    let mut d = new_deployment("web", 2, w.now);
    d.id = "ecs-svc/2".into();
    promote(&mut w.rec, d);
    // Ten launches of the new deployment failed.
    for i in 0..10 {
        w.tasks.push(task(
            &format!("f{i}"),
            "ecs-svc/2",
            "i0",
            TaskStatus::Stopped,
        ));
    }
    let p = run_plan(&w.rec, &w.tasks, &w.inst, w.now + 1);
    let failed = p.record.deployments.iter().find(|d| d.id == "ecs-svc/2");
    let failed = failed.expect("the failed deployment stays until drained");
    assert_eq!(failed.rollout_state, RolloutState::Failed);
    assert_eq!(failed.status, DeploymentStatus::Inactive, "no task left");
    let primary = p.record.primary().unwrap();
    assert_eq!(primary.id, "ecs-svc/1", "back to the completed deployment");
    // Its tasks never went away (100% minimum), so it is complete at once.
    assert_eq!(primary.rollout_state, RolloutState::Completed);
    let msgs: Vec<&str> = p.record.events.iter().map(|e| e.message.as_str()).collect();
    assert!(msgs.contains(
        &"(service web) (deployment ecs-svc/2) deployment failed: tasks failed to start."
    ));
    assert!(msgs.contains(&"(service web) rolling back to deployment ecs-svc/1."));
    // And it completes again with the old tasks.
    w.rec = p.record;
    w.settle(50);
    assert_eq!(
        w.rec.primary().unwrap().rollout_state,
        RolloutState::Completed
    );
}

#[test]
fn circuit_breaker_without_rollback_stops_launching() {
    let mut w = World::new(2, 100, 200);
    w.rec.deployment_config.circuit_breaker = CircuitBreaker {
        enable: true,
        rollback: false,
    };
    let mut d = new_deployment("web", 2, w.now);
    d.id = "ecs-svc/2".into();
    promote(&mut w.rec, d);
    for i in 0..10 {
        w.tasks.push(task(
            &format!("f{i}"),
            "ecs-svc/2",
            "i0",
            TaskStatus::Stopped,
        ));
    }
    let p = run_plan(&w.rec, &w.tasks, &w.inst, w.now + 1);
    assert_eq!(
        p.record.primary().unwrap().rollout_state,
        RolloutState::Failed
    );
    assert_eq!(p.start, 0);
}

#[test]
fn repeated_failures_throttle_starts() {
    let rec = service(1, 100, 200);
    let inst = instances(1);
    let mut tasks = Vec::new();
    for i in 0..THROTTLE_AFTER {
        let mut t = task(&format!("f{i}"), "ecs-svc/1", "i0", TaskStatus::Stopped);
        t.stopped_at = Some(T0 + i64::from(i));
        tasks.push(t);
    }
    let p = run_plan(&rec, &tasks, &inst, T0 + 10);
    assert_eq!(p.start, 0, "throttled");
    assert!(p.record.events[0]
        .message
        .contains("is unable to consistently start tasks successfully"));
    let later = run_plan(&p.record, &tasks, &inst, T0 + 5000);
    assert_eq!(later.start, 1, "after the back-off");
}

#[test]
fn lost_instance_tasks_are_replaced_and_stopped() {
    let mut w = World::new(3, 100, 200);
    let victim = w
        .tasks
        .iter()
        .find(|t| t.last_status == TaskStatus::Running)
        .map(|t| t.instance_id.clone())
        .unwrap();
    let on_victim = w
        .tasks
        .iter()
        .filter(|t| t.instance_id == victim && t.desired_running)
        .count();
    w.inst.get_mut(&victim).unwrap().standing = Standing::Lost;
    let p = run_plan(&w.rec, &w.tasks, &w.inst, w.now + 1);
    assert_eq!(p.stops.len(), on_victim);
    assert!(p.stops[0].reason.contains("was lost"));
    assert_eq!(p.start as usize, on_victim, "replaced at once");
}

#[test]
fn draining_starts_replacements_first_within_max() {
    let mut w = World::new(3, 100, 200);
    let victim = w.tasks[0].instance_id.clone();
    let on_victim = w
        .tasks
        .iter()
        .filter(|t| t.instance_id == victim && t.desired_running)
        .count();
    w.inst.get_mut(&victim).unwrap().standing = Standing::Draining;
    let p = run_plan(&w.rec, &w.tasks, &w.inst, w.now + 1);
    assert!(p.stops.is_empty(), "100% minimum: nothing stops first");
    assert_eq!(p.start as usize, on_victim);
}

#[test]
fn scale_in_and_delete() {
    let mut w = World::new(4, 100, 200);
    w.rec.desired_count = 1;
    let p = run_plan(&w.rec, &w.tasks, &w.inst, w.now + 1);
    assert_eq!(p.stops.len(), 3);
    w.rec.status = ServiceStatus::Draining;
    w.rec.desired_count = 0;
    w.settle(20);
    assert_eq!(w.rec.status, ServiceStatus::Inactive);
    assert_eq!(w.occupying(), 0);
}

fn daemon() -> ServiceRecord {
    let mut rec = service(0, 0, 100);
    rec.scheduling = SchedulingStrategy::Daemon;
    rec
}

fn daemon_plan(
    rec: &ServiceRecord,
    tasks: &[TaskFacts],
    inst: &HashMap<String, InstanceFacts>,
    eligible: &[&str],
    busy: &[&str],
) -> Plan {
    let eligible: HashSet<String> = eligible.iter().map(|s| s.to_string()).collect();
    let busy: HashSet<String> = busy.iter().map(|s| s.to_string()).collect();
    plan(&Inputs {
        service: rec,
        tasks,
        instances: inst,
        health_checked: &HashSet::new(),
        now: T0 + 1000,
        throttle_base_ms: 1000,
        eligible: &eligible,
        busy: &busy,
    })
}

#[test]
fn daemon_runs_one_task_per_eligible_instance() {
    let inst = instances(4);
    let p = daemon_plan(&daemon(), &[], &inst, &["i0", "i1", "i2"], &[]);
    assert_eq!(p.start_on, ["i0", "i1", "i2"]);
    assert_eq!(p.record.desired_count, 3);
    // A fourth instance joins: only it gets a task.
    let tasks: Vec<TaskFacts> = ["i0", "i1", "i2"]
        .iter()
        .map(|i| task(&format!("t-{i}"), "ecs-svc/1", i, TaskStatus::Running))
        .collect();
    let p = daemon_plan(&daemon(), &tasks, &inst, &["i0", "i1", "i2", "i3"], &[]);
    assert_eq!(p.start_on, ["i3"]);
    assert!(p.stops.is_empty());
    assert_eq!(p.record.desired_count, 4);
    // Steady with one healthy task on each.
    let p = daemon_plan(&daemon(), &tasks, &inst, &["i0", "i1", "i2"], &[]);
    assert!(p.record.steady && p.start_on.is_empty() && p.stops.is_empty());
}

#[test]
fn daemon_update_stops_then_starts_per_instance_and_stops_last_on_drain() {
    let inst = instances(3);
    let tasks: Vec<TaskFacts> = ["i0", "i1", "i2"]
        .iter()
        .map(|i| task(&format!("t-{i}"), "ecs-svc/1", i, TaskStatus::Running))
        .collect();
    let mut rec = daemon();
    let mut d = new_deployment("web", 2, T0);
    d.id = "ecs-svc/2".into();
    promote(&mut rec, d);
    let p = daemon_plan(&rec, &tasks, &inst, &["i0", "i1", "i2"], &[]);
    assert_eq!(p.stops.len(), 3, "minimum 0: every old daemon stops");
    assert!(
        p.start_on.is_empty(),
        "maximum 100: not while the old one runs"
    );
    // An instance that stops being eligible (DRAINING) while replica tasks
    // remain on it keeps its daemon; without them it stops.
    let mut inst = instances(3);
    inst.get_mut("i2").unwrap().standing = Standing::Draining;
    let p = daemon_plan(&daemon(), &tasks, &inst, &["i0", "i1"], &["i2"]);
    assert!(p.stops.is_empty(), "{:?}", p.stops);
    let p = daemon_plan(&daemon(), &tasks, &inst, &["i0", "i1"], &[]);
    assert_eq!(p.stops.len(), 1);
    assert_eq!(p.stops[0].task_id, "t-i2");
}

#[test]
fn behind_load_balancers_targets_decide_health() {
    // Two RUNNING tasks of the old deployment with healthy targets, two of
    // the new one whose targets have no verdict yet: at 100% minimum no old
    // task may stop, whatever the grace period says.
    let mut rec = service(2, 100, 200);
    rec.health_check_grace_period_secs = 0;
    let old = rec.primary().unwrap().id.clone();
    let mut d = new_deployment("web", 2, T0);
    d.id = "ecs-svc/2".into();
    promote(&mut rec, d);
    let mut tasks: Vec<TaskFacts> = (0..4)
        .map(|i| {
            let dep = if i < 2 { old.as_str() } else { "ecs-svc/2" };
            let mut t = task(&format!("t{i}"), dep, &format!("i{i}"), TaskStatus::Running);
            t.targets = if i < 2 {
                TargetsHealth::Healthy
            } else {
                TargetsHealth::Initial
            };
            t
        })
        .collect();
    let inst = instances(4);
    let p = run_plan(&rec, &tasks, &inst, T0 + 60_000);
    assert!(p.stops.is_empty(), "{:?}", p.stops);
    // Once the new targets pass, the old tasks go.
    for t in &mut tasks[2..] {
        t.targets = TargetsHealth::Healthy;
    }
    let p = run_plan(&rec, &tasks, &inst, T0 + 60_000);
    let mut stopped: Vec<&str> = p.stops.iter().map(|s| s.task_id.as_str()).collect();
    stopped.sort();
    assert_eq!(stopped, ["t0", "t1"]);
    // A failing target replaces its task with ECS's reason, after the
    // grace period only.
    let arn = "arn:berth:elasticloadbalancing:local:0:targetgroup/web/00aa";
    tasks[3].targets = TargetsHealth::Unhealthy(arn.into());
    rec.health_check_grace_period_secs = 120;
    let p = run_plan(&rec, &tasks, &inst, T0 + 60_000);
    assert!(p.stops.iter().all(|s| s.task_id != "t3"), "{:?}", p.stops);
    rec.health_check_grace_period_secs = 30;
    let p = run_plan(&rec, &tasks, &inst, T0 + 60_000);
    let s = p
        .stops
        .iter()
        .find(|s| s.task_id == "t3")
        .expect("t3 replaced");
    assert_eq!(
        s.reason,
        format!("Task failed ELB health checks in (target-group {arn})")
    );
    assert!(failed_health(&s.reason));
}
