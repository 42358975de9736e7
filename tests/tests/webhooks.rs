//! Webhooks end to end (issue 16's acceptance): the real `berth-scheduler`
//! binary, two fake agents (the real agent protocol over mutual TLS, no
//! containerd: this scenario is about the control plane's events), the
//! real `berthctl` creating the subscription, and a loopback receiver
//! (`berth_tests::webhook_receiver`) that checks every signature.
//!
//! The scenario runs a task and stops it, then, while the receiver is down,
//! creates a service (a deployment) and drains an instance (its tasks are
//! replaced on the other one); the scheduler is then killed with SIGKILL,
//! restarted, and the receiver comes back. The receiver must end with
//! every event of the event log, in the log's order, each once after
//! deduplication by `Berth-Webhook-Id`, with the log's own bodies.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::collections::HashMap;
use std::time::Duration;

use berth_proto::v1::container_instance_service_client::ContainerInstanceServiceClient;
use berth_proto::v1::event_service_client::EventServiceClient;
use berth_proto::v1::service_service_client::ServiceServiceClient;
use berth_proto::v1::task_definition_service_client::TaskDefinitionServiceClient;
use berth_proto::v1::task_service_client::TaskServiceClient;
use berth_proto::v1::{
    CreateServiceRequest, Event, ListEventsRequest, RegisterTaskDefinitionRequest, RunTaskRequest,
    StopTaskRequest, UpdateContainerInstancesStateRequest,
};
use berth_tests::fake_agent::{FakeAgent, FakeHost};
use berth_tests::webhook_receiver::Receiver;
use berth_tests::{ok_stdout, AuthedChannel, Scheduler};
use serde_json::Value;

const SECRET: &[u8] = b"0f3c9a6e2b7d41e8a5c0f9b3d6e2a7c4";
const WEB: &str =
    r#"{"family":"web","containerDefinitions":[{"name":"web","image":"nginx","memory":64}]}"#;

/// Every durable event of the log, oldest first.
async fn log(ch: &AuthedChannel) -> Vec<Event> {
    let mut client = EventServiceClient::new(ch.clone());
    let mut cursor = 0;
    let mut out = Vec::new();
    loop {
        let page = client
            .list_events(ListEventsRequest {
                since_cursor: cursor,
                filter: None,
                max_results: 1000,
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

fn json(e: &Event) -> Value {
    serde_json::from_str(&e.json).unwrap()
}

/// Waits (bounded) until the log satisfies `done`.
async fn until_log(ch: &AuthedChannel, what: &str, done: impl Fn(&[Event]) -> bool) {
    for _ in 0..600 {
        if done(&log(ch).await) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let summary: Vec<String> = log(ch)
        .await
        .iter()
        .map(|e| {
            let j = json(e);
            format!(
                "{} {} {} {}",
                e.cursor, e.summary, j["detail"]["group"], j["detail"]["containerInstanceArn"]
            )
        })
        .collect();
    panic!("the event log never showed {what}: {summary:#?}");
}

fn is_task(e: &Value, last: &str) -> bool {
    e["detail-type"] == "ECS Task State Change" && e["detail"]["lastStatus"] == last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_receiver_gets_the_event_log_across_kill_9_and_an_outage() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Scheduler::start_with(
        &dir.path().join("data"),
        &[
            // Retry quickly and never dead-letter in this test: an outage
            // must end in delivery.
            ("BERTH_WEBHOOKS_BACKOFF_BASE", "50ms"),
            ("BERTH_WEBHOOKS_BACKOFF_MAX", "250ms"),
            ("BERTH_WEBHOOKS_MAX_ATTEMPTS", "100000"),
        ],
    )
    .await;
    let mut rx = Receiver::start(SECRET).await;
    let secret_file = dir.path().join("hook.secret");
    std::fs::write(&secret_file, SECRET).unwrap();
    let out = ok_stdout(&s.ctl(&[
        "webhook",
        "create",
        "all",
        "--url",
        &rx.url(),
        "--from-oldest",
        "--secret-file",
        secret_file.to_str().unwrap(),
    ]));
    assert!(out.contains("webhook all created"), "{out}");

    let ops = s.authed_channel().await;
    let target = s.agent_target().await;
    let a1 = FakeAgent::join(&target, "default", FakeHost::default())
        .await
        .autopilot();
    let a2 = FakeAgent::join(&target, "default", FakeHost::default())
        .await
        .autopilot();
    TaskDefinitionServiceClient::new(ops.clone())
        .register_task_definition(RegisterTaskDefinitionRequest {
            task_definition_json: WEB.into(),
        })
        .await
        .unwrap();

    // Run and stop, with the receiver up.
    let arn = TaskServiceClient::new(ops.clone())
        .run_task(RunTaskRequest {
            task_definition: "web".into(),
            count: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .tasks[0]
        .task_arn
        .clone();
    until_log(&ops, "the task RUNNING", |l| {
        l.iter().any(|e| is_task(&json(e), "RUNNING"))
    })
    .await;
    TaskServiceClient::new(ops.clone())
        .stop_task(StopTaskRequest {
            task: arn.clone(),
            reason: "scenario".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    rx.until(Duration::from_secs(30), |d| {
        d.iter()
            .any(|d| is_task(&d.body, "STOPPED") && d.body["resources"][0] == arn.as_str())
    })
    .await;

    // The receiver goes down; a deployment and a drain happen meanwhile.
    rx.down().await;
    ServiceServiceClient::new(ops.clone())
        .create_service(CreateServiceRequest {
            service_name: "web".into(),
            task_definition: "web".into(),
            desired_count: Some(2),
            ..Default::default()
        })
        .await
        .unwrap();
    until_log(&ops, "the deployment completed", |l| {
        l.iter()
            .any(|e| json(e)["detail"]["eventName"] == "SERVICE_DEPLOYMENT_COMPLETED")
    })
    .await;
    // The distinct service tasks on `instance` that reached `status`.
    let service_tasks_on = |l: &[Event], instance: &str, status: &str| {
        l.iter()
            .filter_map(|e| {
                let j = json(e);
                (is_task(&j, status)
                    && j["detail"]["group"] == "service:web"
                    && j["detail"]["containerInstanceArn"] == instance)
                    .then(|| j["resources"][0].as_str().unwrap().to_owned())
            })
            .collect::<std::collections::HashSet<_>>()
    };
    ContainerInstanceServiceClient::new(ops.clone())
        .update_container_instances_state(UpdateContainerInstancesStateRequest {
            cluster: String::new(),
            container_instances: vec![a1.id.clone()],
            status: "DRAINING".into(),
        })
        .await
        .unwrap();
    until_log(
        &ops,
        "the drain: a1's service tasks stopped, two RUNNING on a2",
        |l| {
            let drained = l.iter().any(|e| json(e)["detail"]["status"] == "DRAINING");
            drained
                && service_tasks_on(l, &a1.arn, "STOPPED")
                    == service_tasks_on(l, &a1.arn, "RUNNING")
                && service_tasks_on(l, &a2.arn, "RUNNING").len() >= 2
        },
    )
    .await;
    let before_kill = log(&ops).await;
    let delivered_before = rx.deduplicated().len();
    assert!(
        delivered_before < before_kill.len(),
        "events were waiting when the scheduler was killed"
    );

    // SIGKILL while the receiver is down, restart, then the receiver is back.
    drop((a1, a2));
    s.kill9();
    s.restart().await;
    let ops = s.authed_channel().await;
    rx.up().await;
    let logged = log(&ops).await;
    assert!(
        logged.len() >= before_kill.len(),
        "no acknowledged event was lost by the kill"
    );
    let got = rx
        .until(Duration::from_secs(60), |d| d.len() >= logged.len())
        .await;
    eprintln!(
        "{} events in the log at the kill, {} delivered before it; {} delivered in the end",
        before_kill.len(),
        delivered_before,
        got.len()
    );
    // Exactly the log, in its order (any later events follow the prefix).
    let latest = log(&ops).await;
    assert!(got.len() <= latest.len(), "nothing the log does not have");
    let mut by_resource: HashMap<String, u64> = HashMap::new();
    for (d, e) in got.iter().zip(&latest) {
        assert_eq!(d.cursor, e.cursor);
        assert_eq!(d.id, json(e)["id"].as_str().unwrap(), "cursor {}", e.cursor);
        assert!(d.signature_ok, "cursor {}", e.cursor);
        let j = json(e);
        if j["detail-type"] == "ECS Container Instance State Change" {
            // An instance's detail shows its connection as it is when the
            // event is read (docs/events.md): compare what the event says.
            assert_eq!(d.body["detail"]["status"], j["detail"]["status"]);
            assert_eq!(d.body["resources"], j["resources"]);
        } else {
            assert_eq!(d.body, j, "cursor {}", e.cursor);
        }
        let resource = j["resources"][0].as_str().unwrap().to_owned();
        if let Some(prev) = by_resource.insert(resource.clone(), d.cursor) {
            assert!(prev < d.cursor, "{resource}: out of order");
        }
    }
    // The scenario is all there.
    let has = |f: &dyn Fn(&Value) -> bool| got.iter().any(|d| f(&d.body));
    assert!(has(
        &|b| is_task(b, "RUNNING") && b["resources"][0] == arn.as_str()
    ));
    assert!(has(
        &|b| is_task(b, "STOPPED") && b["detail"]["stopCode"] == "UserInitiated"
    ));
    assert!(has(
        &|b| b["detail"]["eventName"] == "SERVICE_DEPLOYMENT_IN_PROGRESS"
    ));
    assert!(has(
        &|b| b["detail"]["eventName"] == "SERVICE_DEPLOYMENT_COMPLETED"
    ));
    assert!(has(&|b| b["detail"]["status"] == "DRAINING"));
    assert!(has(
        &|b| is_task(b, "STOPPED") && b["detail"]["stopCode"] == "ServiceSchedulerInitiated"
    ));
    let out = ok_stdout(&s.ctl(&["webhook", "describe", "all"]));
    assert!(out.contains("0 kept, 0 redriving, 0 ever"), "{out}");
}
