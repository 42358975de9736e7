//! Target groups over loopback gRPC with fake agents: targets register with
//! the tasks' host ports and the agents' verdicts, a stop drains them for
//! the deregistration delay before the agent is told to stop, a failing
//! target replaces its task with ECS's reason, a deployment waits for new
//! targets to pass, and WatchTargets follows all of it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::sync::Arc;
use std::time::Duration;

use berth_proto::v1::service_service_client::ServiceServiceClient;
use berth_proto::v1::target_group_service_client::TargetGroupServiceClient;
use berth_proto::v1::task_definition_service_client::TaskDefinitionServiceClient;
use berth_proto::v1::task_service_client::TaskServiceClient;
use berth_proto::v1::{
    CreateServiceRequest, CreateTargetGroupRequest, DescribeServicesRequest,
    DescribeTargetHealthRequest, DescribeTasksRequest, HealthCheck, ListTasksRequest, LoadBalancer,
    RegisterTaskDefinitionRequest, TargetHealthDescription, UpdateServiceRequest,
    WatchTargetsRequest,
};
use berth_tests::eventually;
use berth_tests::fake_agent::{Autopilot, FakeAgent, FakeHost};
use berth_tests::AuthedChannel;

mod common;
use common::InProcess as Server;

const WEB: &str = r#"{"family":"web","containerDefinitions":[{"name":"web","image":"nginx",
    "memory":64,"portMappings":[{"containerPort":80,"hostPort":0}]}]}"#;

async fn setup(pilot: Autopilot, delay_secs: u32) -> (Server, FakeAgent, String) {
    let s = Server::start_with(|c| {
        c.services.resync = Duration::from_millis(200);
    })
    .await;
    let agent = FakeAgent::join(&s.target, "default", FakeHost::default())
        .await
        .autopilot_with(pilot);
    TaskDefinitionServiceClient::new(s.ops.clone())
        .register_task_definition(RegisterTaskDefinitionRequest {
            task_definition_json: WEB.to_owned(),
        })
        .await
        .unwrap();
    let tg = TargetGroupServiceClient::new(s.ops.clone())
        .create_target_group(CreateTargetGroupRequest {
            name: "web".into(),
            protocol: "HTTP".into(),
            port: 80,
            health_check: Some(HealthCheck {
                path: "/health".into(),
                interval_seconds: 5,
                timeout_seconds: 2,
                healthy_threshold: 2,
                ..Default::default()
            }),
            deregistration_delay_seconds: Some(delay_secs),
            slow_start_seconds: None,
        })
        .await
        .unwrap()
        .into_inner()
        .target_group
        .unwrap();
    (s, agent, tg.target_group_arn)
}

async fn create_service(ops: &AuthedChannel, tg: &str, desired: i32) {
    ServiceServiceClient::new(ops.clone())
        .create_service(CreateServiceRequest {
            service_name: "web".into(),
            task_definition: "web".into(),
            desired_count: Some(desired),
            load_balancers: vec![LoadBalancer {
                target_group_arn: tg.to_owned(),
                container_name: "web".into(),
                container_port: 80,
            }],
            ..Default::default()
        })
        .await
        .unwrap();
}

async fn health(ops: &AuthedChannel) -> Vec<TargetHealthDescription> {
    TargetGroupServiceClient::new(ops.clone())
        .describe_target_health(DescribeTargetHealthRequest {
            target_group: "web".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .target_health_descriptions
}

fn states(h: &[TargetHealthDescription]) -> Vec<String> {
    let mut v: Vec<String> = h
        .iter()
        .map(|d| d.target_health.clone().unwrap_or_default().state)
        .collect();
    v.sort();
    v
}

async fn until_states(ops: &AuthedChannel, want: &[&str]) -> Vec<TargetHealthDescription> {
    eventually(Duration::from_secs(20), "target states", || async {
        let h = health(ops).await;
        if states(&h) == want {
            Ok(h)
        } else {
            Err(format!("{:?}", states(&h)))
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_register_drain_before_the_stop_and_are_watched() {
    let (s, agent, tg) = setup(Autopilot::default(), 2).await;
    let mut watch = TargetGroupServiceClient::new(s.ops.clone())
        .watch_targets(WatchTargetsRequest {
            target_groups: vec!["web".into()],
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.groups.len(), 1);
    assert!(first.groups[0].targets.is_empty());

    create_service(&s.ops, &tg, 2).await;
    let h = until_states(&s.ops, &["healthy", "healthy"]).await;
    // Each target is its task's host port on the host's address (the
    // fake agent connects from loopback).
    let tasks = TaskServiceClient::new(s.ops.clone())
        .describe_tasks(DescribeTasksRequest {
            tasks: h.iter().map(|d| d.task_arn.clone()).collect(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .tasks;
    for d in &h {
        let t = d.target.clone().unwrap();
        assert_eq!(t.id, agent.id);
        assert_eq!(t.address, "127.0.0.1");
        let task = tasks.iter().find(|x| x.task_arn == d.task_arn).unwrap();
        let binding = &task.containers[0].network_bindings[0];
        assert_eq!(t.port, binding.host_port);
        assert_eq!(d.health_check_port, binding.host_port.to_string());
        assert_eq!((d.container_name.as_str(), d.container_port), ("web", 80));
    }
    // The stream saw them healthy too.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let snap = tokio::time::timeout_at(deadline, watch.message())
            .await
            .expect("the stream shows both targets healthy within 10 s")
            .unwrap()
            .expect("the stream goes on");
        let healthy = snap.groups[0]
            .targets
            .iter()
            .filter(|t| t.target_health.as_ref().unwrap().state == "healthy")
            .count();
        if healthy == 2 {
            break;
        }
    }

    // Scale in: one task drains for 2 s, DEACTIVATING, while its agent is
    // still told to run it.
    ServiceServiceClient::new(s.ops.clone())
        .update_service(UpdateServiceRequest {
            service: "web".into(),
            desired_count: Some(1),
            ..Default::default()
        })
        .await
        .unwrap();
    let h = until_states(&s.ops, &["draining", "healthy"]).await;
    let drained_at = tokio::time::Instant::now();
    let draining = h
        .iter()
        .find(|d| d.target_health.as_ref().unwrap().state == "draining")
        .unwrap();
    assert_eq!(
        draining.target_health.as_ref().unwrap().reason,
        "Target.DeregistrationInProgress"
    );
    let task = TaskServiceClient::new(s.ops.clone())
        .describe_tasks(DescribeTasksRequest {
            tasks: vec![draining.task_arn.clone()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .tasks
        .remove(0);
    assert_eq!(
        (task.last_status.as_str(), task.desired_status.as_str()),
        ("DEACTIVATING", "STOPPED")
    );
    let set = agent
        .desired_where(|d| d.tasks.iter().any(|t| t.task_arn == draining.task_arn))
        .await;
    let mine = set
        .tasks
        .iter()
        .find(|t| t.task_arn == draining.task_arn)
        .unwrap();
    assert_eq!(mine.desired_status, "RUNNING", "drains while it runs");
    // After the delay the agent is told to stop it, and it leaves the group.
    agent
        .desired_where(|d| {
            d.tasks
                .iter()
                .any(|t| t.task_arn == draining.task_arn && t.desired_status == "STOPPED")
        })
        .await;
    let waited = drained_at.elapsed();
    assert!(
        waited >= Duration::from_millis(1500),
        "stopped {waited:?} after draining began; the delay is 2 s"
    );
    until_states(&s.ops, &["healthy"]).await;
    let stopped = TaskServiceClient::new(s.ops.clone())
        .describe_tasks(DescribeTasksRequest {
            tasks: vec![draining.task_arn.clone()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .tasks
        .remove(0);
    assert_eq!(stopped.stop_code, "ServiceSchedulerInitiated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_target_replaces_its_task_with_ecs_reason() {
    // The first task's target fails; its replacements pass.
    let first: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
    let pilot = Autopilot {
        targets: Arc::new({
            let first = first.clone();
            move |t, _| {
                let mut f = first.lock().unwrap();
                let arn = f.get_or_insert_with(|| t.task_arn.clone());
                if *arn == t.task_arn {
                    "unhealthy".into()
                } else {
                    "healthy".into()
                }
            }
        }),
        ..Autopilot::default()
    };
    let (s, _agent, tg) = setup(pilot, 0).await;
    create_service(&s.ops, &tg, 1).await;
    let bad = eventually(Duration::from_secs(20), "the failing task", || async {
        first.lock().unwrap().clone().ok_or("none yet".to_string())
    })
    .await;
    let stopped = eventually(
        Duration::from_secs(20),
        "the failing task stopped",
        || async {
            let t = TaskServiceClient::new(s.ops.clone())
                .describe_tasks(DescribeTasksRequest {
                    tasks: vec![bad.clone()],
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .tasks
                .remove(0);
            if t.last_status == "STOPPED" {
                Ok(t)
            } else {
                Err(t.last_status)
            }
        },
    )
    .await;
    assert_eq!(
        stopped.stopped_reason,
        format!("Task failed ELB health checks in (target-group {tg})")
    );
    until_states(&s.ops, &["healthy"]).await;
    let svc = ServiceServiceClient::new(s.ops.clone())
        .describe_services(DescribeServicesRequest {
            services: vec!["web".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .services
        .remove(0);
    // The circuit breaker counted it.
    assert_eq!(svc.deployments[0].failed_tasks, 1, "{:?}", svc.deployments);
    assert_eq!(svc.load_balancers.len(), 1);
    assert_eq!(svc.load_balancers[0].target_group_arn, tg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_waits_for_new_targets_to_pass() {
    // Tasks of revision 2 never pass their target checks.
    let pilot = Autopilot {
        targets: Arc::new(|t, _| {
            if t.revision == 2 {
                String::new()
            } else {
                "healthy".into()
            }
        }),
        ..Autopilot::default()
    };
    let (s, _agent, tg) = setup(pilot, 0).await;
    create_service(&s.ops, &tg, 2).await;
    until_states(&s.ops, &["healthy", "healthy"]).await;
    TaskDefinitionServiceClient::new(s.ops.clone())
        .register_task_definition(RegisterTaskDefinitionRequest {
            task_definition_json: WEB.to_owned(),
        })
        .await
        .unwrap();
    ServiceServiceClient::new(s.ops.clone())
        .update_service(UpdateServiceRequest {
            service: "web".into(),
            task_definition: "web:2".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    // Two new tasks register, stay `initial`, and the old ones keep
    // serving: with minimumHealthyPercent 100 none of them may go.
    until_states(&s.ops, &["healthy", "healthy", "initial", "initial"]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        states(&health(&s.ops).await),
        ["healthy", "healthy", "initial", "initial"]
    );
    let running = TaskServiceClient::new(s.ops.clone())
        .list_tasks(ListTasksRequest {
            desired_status: "RUNNING".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .task_arns;
    assert_eq!(running.len(), 4, "no old task stopped: {running:?}");
}
