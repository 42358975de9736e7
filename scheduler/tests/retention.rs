//! Retention through the API (`docs/retention.md`): an in-process
//! scheduler with short windows, fake agents speaking the real
//! AgentService protocol, and the store read after shutdown.
//! - a STOPPED task is described and listed within its window, then gone
//!   with its index entries; a RUNNING task is never removed, and a late
//!   report of a removed task resurrects nothing;
//! - a RunTask client token is honoured within its window, not after;
//! - audit records are kept by count, and ListAuditEvents pages;
//! - a service's failed launches still count once their tasks are gone
//!   (the circuit breaker trips although the kept failures are fewer).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::time::Duration;

use berth_proto::v1::audit_service_client::AuditServiceClient;
use berth_proto::v1::cluster_service_client::ClusterServiceClient;
use berth_proto::v1::service_service_client::ServiceServiceClient;
use berth_proto::v1::task_definition_service_client::TaskDefinitionServiceClient;
use berth_proto::v1::task_service_client::TaskServiceClient;
use berth_proto::v1::{
    CreateClusterRequest, CreateServiceRequest, DeploymentCircuitBreaker, DeploymentConfiguration,
    DescribeTasksRequest, ListAuditEventsRequest, ListTasksRequest, RegisterTaskDefinitionRequest,
    RunTaskRequest, StartTaskRequest, StopTaskRequest,
};
use berth_scheduler::store::{SledStore, Store, Table};
use berth_tests::fake_agent::{report_for, Autopilot, FakeAgent, FakeHost};
use berth_tests::AuthedChannel;
use tokio::time::Instant;

mod common;
use common::InProcess as Server;

const WEB: &str = r#"{"family":"web","containerDefinitions":[{"name":"web","image":"nginx",
    "memory":64,"cpu":10}]}"#;

async fn register(ch: &AuthedChannel) {
    TaskDefinitionServiceClient::new(ch.clone())
        .register_task_definition(RegisterTaskDefinitionRequest {
            task_definition_json: WEB.to_owned(),
        })
        .await
        .unwrap();
}

fn short(arn: &str) -> String {
    arn.rsplit('/').next().unwrap().to_owned()
}

/// (described lastStatus, or the failure's reason).
async fn describe(
    tasks: &mut TaskServiceClient<AuthedChannel>,
    id: &str,
) -> Result<String, String> {
    let r = tasks
        .describe_tasks(DescribeTasksRequest {
            tasks: vec![id.to_owned()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    match r.tasks.first() {
        Some(t) => Ok(t.last_status.clone()),
        None => Err(r.failures[0].reason.clone()),
    }
}

async fn listed_stopped(tasks: &mut TaskServiceClient<AuthedChannel>) -> Vec<String> {
    tasks
        .list_tasks(ListTasksRequest {
            desired_status: "STOPPED".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .task_arns
        .iter()
        .map(|a| short(a))
        .collect()
}

/// Opens the store of a stopped scheduler (sled lets go of its lock a
/// moment after the last handle is dropped).
fn reopen(dir: &std::path::Path) -> SledStore {
    for _ in 0..500 {
        match SledStore::open(dir) {
            Ok(s) => return s,
            Err(e) if e.to_string().contains("could not acquire lock") => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => panic!("{e}"),
        }
    }
    panic!("the store is still locked after 10 s");
}

fn mentions(store: &SledStore, table: Table, id: &str) -> bool {
    store
        .scan_prefix(table, b"")
        .unwrap()
        .iter()
        .any(|(k, _)| k.windows(id.len()).any(|w| w == id.as_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_task_is_kept_for_its_window_then_removed_with_its_index_entries() {
    const WINDOW: Duration = Duration::from_secs(3);
    // The store is read after shutdown: the test keeps the directory.
    let tmp = tempfile::tempdir().unwrap();
    let admin = berth_tests::generate_token();
    let s = Server::start_in(tmp.path(), &admin, true, |c| {
        c.retention.stopped_tasks = WINDOW;
        c.retention.interval = Duration::from_millis(100);
    })
    .await;
    register(&s.ops).await;
    let agent = FakeAgent::join(&s.target, "default", FakeHost::default()).await;
    let mut tasks = TaskServiceClient::new(s.ops.clone());
    let started = tasks
        .start_task(StartTaskRequest {
            task_definition: "web".to_owned(),
            container_instances: vec![agent.id.clone()],
            count: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(started.tasks.len(), 2, "{:?}", started.failures);
    let d = agent.desired_where(|d| d.tasks.len() == 2).await;
    for t in &d.tasks {
        agent.report(report_for(t, "RUNNING")).await;
    }
    let (gone, kept) = (short(&d.tasks[0].task_arn), short(&d.tasks[1].task_arn));
    let deadline = Instant::now() + Duration::from_secs(10);
    while describe(&mut tasks, &gone).await.unwrap() != "RUNNING" {
        assert!(Instant::now() < deadline, "never RUNNING");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tasks
        .stop_task(StopTaskRequest {
            task: gone.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let stopped_report = report_for(&d.tasks[0], "STOPPED");
    let reported_at = Instant::now();
    agent.report(stopped_report.clone()).await;
    while describe(&mut tasks, &gone).await.unwrap() != "STOPPED" {
        assert!(Instant::now() < deadline, "never STOPPED");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Within the window: described and listed.
    assert_eq!(listed_stopped(&mut tasks).await, vec![gone.clone()]);
    // Then gone, not before the window has passed.
    let deadline = Instant::now() + WINDOW + Duration::from_secs(10);
    loop {
        match describe(&mut tasks, &gone).await {
            Ok(status) => {
                assert_eq!(status, "STOPPED");
                assert!(Instant::now() < deadline, "still there after the window");
            }
            Err(reason) => {
                assert_eq!(reason, "MISSING");
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        reported_at.elapsed() >= WINDOW,
        "removed after {:?}, within its window",
        reported_at.elapsed()
    );
    assert!(listed_stopped(&mut tasks).await.is_empty());
    // The agent reports it again (as after a reconnect): nothing comes back.
    agent.report(stopped_report).await;
    // The running task outlives several windows.
    tokio::time::sleep(WINDOW + Duration::from_millis(500)).await;
    assert_eq!(describe(&mut tasks, &kept).await.unwrap(), "RUNNING");
    assert_eq!(describe(&mut tasks, &gone).await, Err("MISSING".to_owned()));
    let set = agent.desired_where(|d| d.tasks.len() == 1).await.tasks;
    assert_eq!(short(&set[0].task_arn), kept, "the agent's desired set");

    drop(agent);
    s.stop().await;
    let store = reopen(tmp.path());
    assert!(mentions(&store, Table::Tasks, &kept), "the store was read");
    for table in [Table::Tasks, Table::InstanceTasks, Table::Retention] {
        assert!(!mentions(&store, table, &gone), "{} keeps it", table.name());
    }
    assert!(mentions(&store, Table::Tasks, &kept));
    assert!(mentions(&store, Table::InstanceTasks, &kept));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_token_is_honoured_within_its_window_only() {
    const WINDOW: Duration = Duration::from_secs(2);
    let s = Server::start_with(|c| {
        c.retention.client_tokens = WINDOW;
        c.retention.interval = Duration::from_millis(100);
    })
    .await;
    register(&s.ops).await;
    let _agent = FakeAgent::join(&s.target, "default", FakeHost::default())
        .await
        .autopilot();
    let mut tasks = TaskServiceClient::new(s.ops.clone());
    let run = || RunTaskRequest {
        task_definition: "web".to_owned(),
        count: 1,
        client_token: "once".to_owned(),
        ..Default::default()
    };
    let first = tasks.run_task(run()).await.unwrap().into_inner();
    let used_at = Instant::now();
    let first = short(&first.tasks[0].task_arn);
    let again = tasks.run_task(run()).await.unwrap().into_inner();
    assert_eq!(
        short(&again.tasks[0].task_arn),
        first,
        "a retry within the window"
    );
    let deadline = Instant::now() + WINDOW + Duration::from_secs(10);
    let second = loop {
        let r = tasks.run_task(run()).await.unwrap().into_inner();
        let id = short(&r.tasks[0].task_arn);
        if id != first {
            break id;
        }
        assert!(Instant::now() < deadline, "the token never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        used_at.elapsed() >= WINDOW,
        "expired after {:?}",
        used_at.elapsed()
    );
    // The new use is remembered in its turn.
    let r = tasks.run_task(run()).await.unwrap().into_inner();
    assert_eq!(short(&r.tasks[0].task_arn), second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_records_are_kept_by_count_and_listed_in_pages() {
    let s = Server::start_with(|c| {
        c.retention.audit_max_records = 5;
        c.retention.interval = Duration::from_millis(100);
    })
    .await;
    let mut clusters = ClusterServiceClient::new(s.ops.clone());
    for i in 0..12 {
        clusters
            .create_cluster(CreateClusterRequest {
                cluster_name: format!("c{i:02}"),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let mut audit = AuditServiceClient::new(s.ops.clone());
    let page = |limit: i32, next_token: String| ListAuditEventsRequest {
        limit,
        method: "CreateCluster".to_owned(),
        next_token,
        ..Default::default()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let kept = loop {
        let r = audit
            .list_audit_events(page(100, String::new()))
            .await
            .unwrap()
            .into_inner();
        if r.events.len() <= 5 {
            break r.events;
        }
        assert!(
            Instant::now() < deadline,
            "{} audit records",
            r.events.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let resources: Vec<&str> = kept.iter().map(|e| e.resource.as_str()).collect();
    assert_eq!(
        resources,
        [
            "cluster/c07",
            "cluster/c08",
            "cluster/c09",
            "cluster/c10",
            "cluster/c11"
        ],
        "the most recent stay, oldest first"
    );
    // Pages of 2 walk back from the most recent.
    let mut pages = Vec::new();
    let mut token = String::new();
    loop {
        let r = audit
            .list_audit_events(page(2, token))
            .await
            .unwrap()
            .into_inner();
        pages.push(
            r.events
                .iter()
                .map(|e| e.resource.trim_start_matches("cluster/").to_owned())
                .collect::<Vec<_>>(),
        );
        if r.next_token.is_empty() {
            break;
        }
        token = r.next_token;
    }
    assert_eq!(pages, [vec!["c10", "c11"], vec!["c08", "c09"], vec!["c07"]]);
    let bad = audit
        .list_audit_events(page(2, "not-a-token".to_owned()))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    assert!(bad.message().contains("nextToken"), "{}", bad.message());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_launches_removed_by_retention_still_trip_the_circuit_breaker() {
    const WINDOW: Duration = Duration::from_secs(1);
    let s = Server::start_with(|c| {
        c.retention.stopped_tasks = WINDOW;
        c.retention.interval = Duration::from_millis(100);
    })
    .await;
    register(&s.ops).await;
    let _agent = FakeAgent::join(&s.target, "default", FakeHost::default())
        .await
        .autopilot_with(Autopilot {
            start_delay: Duration::from_millis(100),
            fail: std::sync::Arc::new(|_| true),
            ..Autopilot::default()
        });
    ServiceServiceClient::new(s.ops.clone())
        .create_service(CreateServiceRequest {
            service_name: "svc".to_owned(),
            task_definition: "web:1".to_owned(),
            desired_count: Some(1),
            deployment_configuration: Some(DeploymentConfiguration {
                minimum_healthy_percent: Some(100),
                maximum_percent: Some(200),
                deployment_circuit_breaker: Some(DeploymentCircuitBreaker {
                    enable: true,
                    rollback: false,
                }),
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut tasks = TaskServiceClient::new(s.ops.clone());
    let deadline = Instant::now() + Duration::from_secs(60);
    // Fewer failed tasks are stored than the deployment counts at some
    // point: the window removed some.
    let mut pruned_seen = false;
    loop {
        let svc = berth_tests::service_probe::describe(&s.ops, "svc").await;
        let d = &svc.deployments[0];
        let stored = listed_stopped(&mut tasks).await.len() as i32;
        pruned_seen |= stored < d.failed_tasks;
        if d.rollout_state == "FAILED" {
            assert!(d.failed_tasks >= 10, "{d:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the breaker never tripped: {} failed tasks counted, {stored} stored",
            d.failed_tasks
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        pruned_seen,
        "retention never removed a failed task before the breaker tripped"
    );
}
