//! The event log over loopback gRPC: a real scheduler (`common::InProcess`,
//! real sled) and fake agents. A task's life yields its events in order in
//! EventBridge's envelope; WatchEvents resumes from a cursor without loss
//! or duplication; a service deployment and an instance drain yield their
//! events; a restart keeps every event. Every wait is bounded.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::time::Duration;

use berth_proto::v1::container_instance_service_client::ContainerInstanceServiceClient;
use berth_proto::v1::event_service_client::EventServiceClient;
use berth_proto::v1::service_service_client::ServiceServiceClient;
use berth_proto::v1::task_definition_service_client::TaskDefinitionServiceClient;
use berth_proto::v1::task_service_client::TaskServiceClient;
use berth_proto::v1::{
    CreateServiceRequest, Event, EventFilter, ListEventsRequest, RegisterTaskDefinitionRequest,
    RunTaskRequest, StopTaskRequest, UpdateContainerInstancesStateRequest, WatchEventsRequest,
};
use berth_tests::fake_agent::{FakeAgent, FakeHost};
use berth_tests::AuthedChannel;
use serde_json::Value;
use tonic::Code;

mod common;
use common::InProcess as Server;

const WEB: &str = r#"{"family":"web","containerDefinitions":[{"name":"web","image":"nginx",
    "memory":64,"portMappings":[{"containerPort":80,"hostPort":0}]}]}"#;
const TASK: &str = "ECS Task State Change";

async fn register(ch: &AuthedChannel) {
    TaskDefinitionServiceClient::new(ch.clone())
        .register_task_definition(RegisterTaskDefinitionRequest {
            task_definition_json: WEB.to_owned(),
        })
        .await
        .unwrap();
}

fn filter(detail_type: &str) -> Option<EventFilter> {
    Some(EventFilter {
        detail_type: detail_type.to_owned(),
        ..Default::default()
    })
}

/// Every event after `cursor` that `f` admits, following pages.
async fn list(ch: &AuthedChannel, mut cursor: u64, f: Option<EventFilter>) -> Vec<Event> {
    let mut client = EventServiceClient::new(ch.clone());
    let mut out = Vec::new();
    loop {
        let page = client
            .list_events(ListEventsRequest {
                since_cursor: cursor,
                filter: f.clone(),
                max_results: 7,
            })
            .await
            .unwrap()
            .into_inner();
        out.extend(page.events);
        cursor = page.next_cursor;
        if !page.more {
            return out;
        }
    }
}

/// Waits (bounded) until the events `f` admits satisfy `done`.
async fn until_events(
    ch: &AuthedChannel,
    f: Option<EventFilter>,
    done: impl Fn(&[Event]) -> bool,
) -> Vec<Event> {
    for _ in 0..300 {
        let events = list(ch, 0, f.clone()).await;
        if done(&events) {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("events never arrived: {:#?}", list(ch, 0, f).await);
}

fn json(e: &Event) -> Value {
    serde_json::from_str(&e.json).unwrap()
}

fn last_status(e: &Event) -> String {
    json(e)["detail"]["lastStatus"].as_str().unwrap().to_owned()
}

async fn run_one(ch: &AuthedChannel) -> String {
    let run = TaskServiceClient::new(ch.clone())
        .run_task(RunTaskRequest {
            task_definition: "web".into(),
            count: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(run.failures.is_empty(), "{:?}", run.failures);
    run.tasks[0].task_arn.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_task_life_is_told_in_order_in_eventbridge_shapes() {
    let s = Server::start().await;
    register(&s.ops).await;
    let _agent = FakeAgent::join(&s.target, "default", FakeHost::default())
        .await
        .autopilot();
    let arn = run_one(&s.ops).await;
    until_events(&s.ops, filter(TASK), |e| {
        e.iter().any(|e| last_status(e) == "RUNNING")
    })
    .await;
    TaskServiceClient::new(s.ops.clone())
        .stop_task(StopTaskRequest {
            task: arn.clone(),
            reason: "done".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let events = until_events(&s.ops, filter(TASK), |e| {
        e.iter().any(|e| last_status(e) == "STOPPED")
    })
    .await;
    let statuses: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            let j = json(e);
            (
                j["detail"]["lastStatus"].as_str().unwrap().to_owned(),
                j["detail"]["desiredStatus"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let pairs: Vec<(&str, &str)> = statuses
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    assert_eq!(
        pairs,
        [
            ("PROVISIONING", "RUNNING"),
            ("PENDING", "RUNNING"),
            ("RUNNING", "RUNNING"),
            ("RUNNING", "STOPPED"),
            ("STOPPED", "STOPPED"),
        ],
        "{events:#?}"
    );
    // Cursors rise; versions rise; the envelope is EventBridge's.
    assert!(events.windows(2).all(|w| w[0].cursor < w[1].cursor));
    let versions: Vec<i64> = events
        .iter()
        .map(|e| json(e)["detail"]["version"].as_i64().unwrap())
        .collect();
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
    let j = json(&events[4]);
    assert_eq!(j["version"], "0");
    assert_eq!(j["source"], "aws.ecs");
    assert_eq!(j["detail-type"], TASK);
    assert_eq!(j["resources"], serde_json::json!([arn]));
    assert_eq!(j["detail"]["taskArn"], arn.as_str());
    assert_eq!(j["detail"]["stopCode"], "UserInitiated");
    assert!(j["id"].as_str().unwrap().len() == 36, "a uuid: {j}");
    assert!(j["time"].as_str().unwrap().ends_with('Z'), "{j}");
    assert!(
        j["detail"]["createdAt"].as_str().unwrap().ends_with('Z'),
        "{j}"
    );
    assert_eq!(events[4].resource, arn);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_resumes_from_a_cursor_without_loss_or_duplication() {
    let s = Server::start().await;
    register(&s.ops).await;
    let _agent = FakeAgent::join(&s.target, "default", FakeHost::default())
        .await
        .autopilot();
    let mut client = EventServiceClient::new(s.ops.clone());
    // A first watcher sees a few events, then disconnects.
    let mut stream = client
        .watch_events(WatchEventsRequest {
            since_cursor: 0,
            filter: None,
            from_now: false,
        })
        .await
        .unwrap()
        .into_inner();
    run_one(&s.ops).await;
    let mut seen: Vec<Event> = Vec::new();
    while seen.len() < 2 {
        let e = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("an event within 10 s")
            .unwrap()
            .expect("stream open");
        seen.push(e);
    }
    drop(stream);
    // Events happen while nobody watches.
    run_one(&s.ops).await;
    run_one(&s.ops).await;
    let all = until_events(&s.ops, filter(TASK), |e| {
        e.iter().filter(|e| last_status(e) == "RUNNING").count() == 3
    })
    .await;
    // The second watcher resumes after the last cursor seen.
    let mut stream = client
        .watch_events(WatchEventsRequest {
            since_cursor: seen.last().unwrap().cursor,
            filter: None,
            from_now: false,
        })
        .await
        .unwrap()
        .into_inner();
    let everything = list(&s.ops, 0, None).await;
    while seen.len() < everything.len() {
        let e = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("an event within 10 s")
            .unwrap()
            .expect("stream open");
        seen.push(e);
    }
    let cursors: Vec<u64> = seen.iter().map(|e| e.cursor).collect();
    let expected: Vec<u64> = everything.iter().map(|e| e.cursor).collect();
    assert_eq!(cursors, expected, "no loss, no duplicate");
    assert!(all.len() >= 9);
    // And it follows what happens next.
    run_one(&s.ops).await;
    let next = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("a new event within 10 s")
        .unwrap()
        .unwrap();
    assert_eq!(next.cursor, expected.last().unwrap() + 1);
    // A cursor ahead of the log is refused.
    let err = client
        .list_events(ListEventsRequest {
            since_cursor: 1_000_000,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deployments_and_drains_are_events() {
    let s = Server::start().await;
    register(&s.ops).await;
    let agent = FakeAgent::join(&s.target, "default", FakeHost::default())
        .await
        .autopilot();
    ServiceServiceClient::new(s.ops.clone())
        .create_service(CreateServiceRequest {
            service_name: "web".into(),
            task_definition: "web".into(),
            desired_count: Some(1),
            ..Default::default()
        })
        .await
        .unwrap();
    let deployments = until_events(&s.ops, filter("ECS Deployment State Change"), |e| {
        e.iter()
            .any(|e| json(e)["detail"]["eventName"] == "SERVICE_DEPLOYMENT_COMPLETED")
    })
    .await;
    let names: Vec<String> = deployments
        .iter()
        .map(|e| json(e)["detail"]["eventName"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        [
            "SERVICE_DEPLOYMENT_IN_PROGRESS",
            "SERVICE_DEPLOYMENT_COMPLETED"
        ]
    );
    let j = json(&deployments[1]);
    assert_eq!(j["detail"]["eventType"], "INFO");
    assert!(!j["detail"]["deploymentId"].as_str().unwrap().is_empty());
    assert!(
        j["resources"][0]
            .as_str()
            .unwrap()
            .ends_with("service/default/web"),
        "{j}"
    );
    until_events(&s.ops, filter("ECS Service Action"), |e| {
        e.iter()
            .any(|e| json(e)["detail"]["eventName"] == "SERVICE_STEADY_STATE")
    })
    .await;
    // Draining the instance.
    ContainerInstanceServiceClient::new(s.ops.clone())
        .update_container_instances_state(UpdateContainerInstancesStateRequest {
            cluster: String::new(),
            container_instances: vec![agent.id.clone()],
            status: "DRAINING".into(),
        })
        .await
        .unwrap();
    let instances = until_events(&s.ops, filter("ECS Container Instance State Change"), |e| {
        e.iter().any(|e| json(e)["detail"]["status"] == "DRAINING")
    })
    .await;
    let j = json(instances.last().unwrap());
    assert_eq!(j["resources"][0], agent.arn.as_str());
    assert_eq!(j["detail"]["containerInstanceArn"], agent.arn.as_str());
    // Filters by cluster: none in another cluster.
    let other = list(
        &s.ops,
        0,
        Some(EventFilter {
            cluster: "prod".into(),
            ..Default::default()
        }),
    )
    .await;
    assert!(other.is_empty(), "{other:#?}");
}

/// Waits (bounded) until no handle of the stopped server (a connection's
/// task finishing, say) still holds the store's lock.
async fn until_store_free(dir: &std::path::Path) {
    for _ in 0..500 {
        match berth_scheduler::store::SledStore::open(dir) {
            Ok(_) => return,
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    panic!("the stopped scheduler still holds its store after 10 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restart_keeps_every_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let admin = berth_tests::generate_token();
    let s = Server::start_in(dir.path(), &admin, true, |_| {}).await;
    register(&s.ops).await;
    let agent = FakeAgent::join(&s.target, "default", FakeHost::default())
        .await
        .autopilot();
    run_one(&s.ops).await;
    let before = until_events(&s.ops, filter(TASK), |e| {
        e.iter().any(|e| last_status(e) == "RUNNING")
    })
    .await;
    let before_all = list(&s.ops, 0, None).await;
    drop(agent);
    s.stop().await;
    until_store_free(dir.path()).await;
    let s = Server::start_in(dir.path(), &admin, false, |_| {}).await;
    let after = list(&s.ops, 0, filter(TASK)).await;
    assert_eq!(after[..before.len()], before[..]);
    // Instance events render the instance as it is now (connected or not):
    // compare what is stored of each.
    let key = |e: &Event| (e.cursor, json(e)["id"].as_str().unwrap().to_owned(), e.time);
    let after_all = list(&s.ops, 0, None).await;
    assert_eq!(
        after_all[..before_all.len()]
            .iter()
            .map(key)
            .collect::<Vec<_>>(),
        before_all.iter().map(key).collect::<Vec<_>>()
    );
}
