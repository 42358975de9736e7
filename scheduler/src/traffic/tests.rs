//! The view's pure rules: target states in ELB's order, addresses by
//! network mode, groups recreated under a name, and DNS endpoints.

use super::*;
use crate::records::{
    CheckPort, DiscoveryRecord, HealthCheckRecord, PortAssignment, Protocol, Reservation,
    TargetProtocol, TaskTarget,
};

const NOW: UnixMillis = 1_000_000;

fn group(name: &str, id: &str) -> TargetGroupRecord {
    TargetGroupRecord {
        name: name.into(),
        id: id.into(),
        protocol: TargetProtocol::Http,
        port: 80,
        health_check: HealthCheckRecord {
            protocol: TargetProtocol::Http,
            path: "/".into(),
            port: CheckPort::TrafficPort,
            interval_secs: 30,
            timeout_secs: 5,
            healthy_threshold: 5,
            unhealthy_threshold: 2,
            matcher: "200".into(),
        },
        deregistration_delay_secs: 300,
        slow_start_secs: 0,
        created_at: 0,
    }
}

fn task(id: &str, instance: &str, state: ProbeState, tg_arn: &str) -> TaskRecord {
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
    let mut t = crate::db::placed_task_for_tests(id, instance, &td, "service:web");
    t.last_status = TaskStatus::Running;
    t.reservation = Reservation {
        cpu_units: 0,
        memory_mib: 8,
        ports: vec![PortAssignment {
            container_name: "web".into(),
            container_port: 80,
            protocol: Protocol::Tcp,
            host_port: 20001,
        }],
    };
    t.targets = vec![TaskTarget {
        target_group_arn: tg_arn.into(),
        container_name: "web".into(),
        container_port: 80,
        host_port: 20001,
        state,
        reason: String::new(),
        description: String::new(),
        since: NOW,
    }];
    t
}

fn instances(connected: bool) -> HashMap<String, InstanceFacts> {
    [(
        "i1".to_owned(),
        InstanceFacts {
            address: Some(Ipv4Addr::new(10, 0, 0, 1)),
            zone: "rack-1".into(),
            connected,
        },
    )]
    .into()
}

fn service(discovery: bool) -> ServiceRecord {
    let mut rec: ServiceRecord = serde_json::from_value(serde_json::json!({
        "cluster": "default", "name": "web", "status": "ACTIVE", "scheduling": "REPLICA",
        "desired_count": 1, "constraints": [], "strategies": [],
        "deployment_config": {"minimum_healthy_percent": 100, "maximum_percent": 200,
            "circuit_breaker": {"enable": false, "rollback": false}},
        "health_check_grace_period_secs": 0, "tags": [], "created_at": 0,
        "deployments": [], "events": [], "steady": false, "throttled_until": null,
        "throttle_failures": 0, "last_completed": null, "version": 1
    }))
    .unwrap();
    if discovery {
        rec.discovery = Some(DiscoveryRecord {
            namespace: "prod.internal".into(),
            name: "web".into(),
            container: None,
        });
    }
    rec
}

#[test]
fn states_follow_elb_in_order() {
    let arn = ArnPrefix::default();
    let g = group("web", "00000000000000aa");
    let tg = arn.target_group("web", &g.id);
    let view = |t: TaskRecord, connected: bool| {
        build(
            &arn,
            std::slice::from_ref(&g),
            &[service(false)],
            &[t],
            &instances(connected),
        )
    };
    let state = |v: &View| {
        let t = &v.groups[0].targets[0];
        (t.state, t.reason)
    };
    let healthy = task("t1", "i1", ProbeState::Healthy, &tg);
    assert_eq!(
        state(&view(healthy.clone(), true)),
        (TargetState::Healthy, "")
    );
    assert_eq!(
        state(&view(task("t1", "i1", ProbeState::Initial, &tg), true)),
        (TargetState::Initial, "Elb.RegistrationInProgress")
    );
    let mut bad = task("t1", "i1", ProbeState::Unhealthy, &tg);
    bad.targets[0].reason = "Target.Timeout".into();
    assert_eq!(
        state(&view(bad, true)),
        (TargetState::Unhealthy, "Target.Timeout")
    );
    assert_eq!(
        state(&view(healthy.clone(), false)),
        (TargetState::Unavailable, "Elb.InternalError")
    );
    // Draining wins over everything, even a lost agent.
    let mut draining = healthy.clone();
    draining.last_status = TaskStatus::Deactivating;
    draining.drain_until = Some(NOW + 1000);
    assert_eq!(
        state(&view(draining.clone(), false)),
        (TargetState::Draining, "Target.DeregistrationInProgress")
    );
    // A drain that ended is no target any more; nor is a task not yet
    // RUNNING.
    draining.drain_until = None;
    assert!(view(draining, true).groups[0].targets.is_empty());
    let mut pending = healthy.clone();
    pending.last_status = TaskStatus::Pending;
    assert!(view(pending, true).groups[0].targets.is_empty());
    // The target is the host's address and the task's host port.
    let v = view(healthy, true);
    let t = &v.groups[0].targets[0];
    assert_eq!(
        (
            t.address,
            t.host_port,
            t.health_check_port.as_str(),
            t.availability_zone.as_str()
        ),
        (Some(Ipv4Addr::new(10, 0, 0, 1)), 20001, "20001", "rack-1")
    );
}

#[test]
fn a_group_made_again_under_its_name_has_no_old_targets() {
    let arn = ArnPrefix::default();
    let old = arn.target_group("web", "00000000000000aa");
    let v = build(
        &arn,
        &[group("web", "00000000000000bb")],
        &[service(false)],
        &[task("t1", "i1", ProbeState::Healthy, &old)],
        &instances(true),
    );
    assert!(v.groups[0].targets.is_empty());
}

#[test]
fn dns_answers_with_healthy_running_tasks_only() {
    let arn = ArnPrefix::default();
    let g = group("web", "00000000000000aa");
    let tg = arn.target_group("web", &g.id);
    let ok = task("t1", "i1", ProbeState::Healthy, &tg);
    let initial = task("t2", "i1", ProbeState::Initial, &tg);
    let mut unhealthy = task("t3", "i1", ProbeState::Healthy, &tg);
    unhealthy.health_status = Some(HealthStatus::Unhealthy);
    let mut stopping = task("t4", "i1", ProbeState::Healthy, &tg);
    stopping.desired_status = DesiredStatus::Stopped;
    let v = build(
        &arn,
        &[g],
        &[service(true)],
        &[ok, initial, unhealthy, stopping],
        &instances(true),
    );
    assert_eq!(v.discovered.len(), 1);
    let d = &v.discovered[0];
    assert_eq!(
        (d.namespace.as_str(), d.name.as_str()),
        ("prod.internal", "web")
    );
    assert_eq!(
        d.endpoints,
        vec![Endpoint {
            task_id: "t1".into(),
            address: Ipv4Addr::new(10, 0, 0, 1),
            port: 20001
        }]
    );
    // A lost agent takes its tasks out of DNS.
    let v = build(
        &arn,
        &[],
        &[service(true)],
        &[task("t1", "i1", ProbeState::Healthy, &tg)],
        &instances(false),
    );
    assert!(v.discovered[0].endpoints.is_empty());
}
