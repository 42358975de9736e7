//! Webhooks over loopback: a real scheduler (`common::InProcess`, real sled),
//! fake agents, and a real HTTP receiver on loopback
//! (`berth_tests::webhook_receiver`). Deliveries are signed and in order per
//! task; a receiver answering 500 is retried and then dead-lettered, and a
//! redrive delivers the same events; a receiver that is down gets every
//! event once it is back; bad requests name their field. Every wait is
//! bounded.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::collections::HashMap;
use std::time::Duration;

use berth_proto::v1::task_definition_service_client::TaskDefinitionServiceClient;
use berth_proto::v1::task_service_client::TaskServiceClient;
use berth_proto::v1::webhook_service_client::WebhookServiceClient;
use berth_proto::v1::{
    CreateWebhookRequest, DeleteWebhookRequest, DescribeWebhookRequest, ListDeadLettersRequest,
    RedriveDeadLettersRequest, RegisterTaskDefinitionRequest, RunTaskRequest, StopTaskRequest,
};
use berth_tests::fake_agent::{FakeAgent, FakeHost};
use berth_tests::webhook_receiver::{Delivery, Receiver};
use berth_tests::AuthedChannel;
use tonic::Code;

mod common;
use common::InProcess as Server;

const WEB: &str = r#"{"family":"web","containerDefinitions":[{"name":"web","image":"nginx",
    "memory":64}]}"#;
const SECRET: &[u8] = b"whsec_0123456789abcdef";
const TASKS_ONLY: &str = r#"{"source":["aws.ecs"],"detail-type":["ECS Task State Change"]}"#;

async fn register(ch: &AuthedChannel) {
    TaskDefinitionServiceClient::new(ch.clone())
        .register_task_definition(RegisterTaskDefinitionRequest {
            task_definition_json: WEB.to_owned(),
        })
        .await
        .unwrap();
}

async fn run(ch: &AuthedChannel, count: i32) -> Vec<String> {
    let r = TaskServiceClient::new(ch.clone())
        .run_task(RunTaskRequest {
            task_definition: "web".into(),
            count,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.failures.is_empty(), "{:?}", r.failures);
    r.tasks.into_iter().map(|t| t.task_arn).collect()
}

async fn stop(ch: &AuthedChannel, arn: &str) {
    TaskServiceClient::new(ch.clone())
        .stop_task(StopTaskRequest {
            task: arn.to_owned(),
            reason: "test".into(),
            ..Default::default()
        })
        .await
        .unwrap();
}

async fn create(ch: &AuthedChannel, name: &str, url: &str, pattern: &str) {
    WebhookServiceClient::new(ch.clone())
        .create_webhook(CreateWebhookRequest {
            name: name.into(),
            url: url.into(),
            event_pattern: pattern.into(),
            secret: SECRET.to_vec(),
            ..Default::default()
        })
        .await
        .unwrap();
}

fn detail(d: &Delivery, field: &str) -> String {
    d.body["detail"][field]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// ECS's order of lastStatus.
fn rank(status: &str) -> usize {
    [
        "PROVISIONING",
        "PENDING",
        "ACTIVATING",
        "RUNNING",
        "DEACTIVATING",
        "STOPPING",
        "DEPROVISIONING",
        "STOPPED",
    ]
    .iter()
    .position(|s| *s == status)
    .unwrap_or_else(|| panic!("unknown lastStatus {status}"))
}

/// Each task's deliveries come in the order of the log, and its lastStatus
/// never goes back.
fn assert_ordered_per_task(ds: &[Delivery]) {
    let mut last: HashMap<String, (u64, usize)> = HashMap::new();
    for d in ds {
        let arn = detail(d, "taskArn");
        let r = rank(&detail(d, "lastStatus"));
        if let Some((cursor, prev)) = last.get(&arn) {
            assert!(
                d.cursor > *cursor,
                "{arn}: cursor {} after {cursor}",
                d.cursor
            );
            assert!(
                r >= *prev,
                "{arn}: lastStatus went back at cursor {}",
                d.cursor
            );
        }
        last.insert(arn, (d.cursor, r));
    }
}

fn stopped(ds: &[Delivery], arn: &str) -> bool {
    ds.iter()
        .any(|d| detail(d, "taskArn") == arn && detail(d, "lastStatus") == "STOPPED")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deliveries_are_signed_filtered_and_in_order_per_task() {
    let s = Server::start().await;
    let rx = Receiver::start(SECRET).await;
    register(&s.ops).await;
    create(&s.ops, "tasks", &rx.url(), TASKS_ONLY).await;
    let _agent = FakeAgent::join(&s.target, "default", FakeHost::default())
        .await
        .autopilot();
    let arns = run(&s.ops, 3).await;
    for a in &arns {
        stop(&s.ops, a).await;
    }
    let ds = rx
        .until(Duration::from_secs(20), |d| {
            arns.iter().all(|a| stopped(d, a))
        })
        .await;
    assert!(
        ds.iter().all(|d| d.signature_ok),
        "every signature verifies"
    );
    assert!(ds.iter().all(|d| d.subscription == "tasks"));
    // The pattern let only task events through (the instance's own event
    // and the cluster's were skipped).
    assert!(ds
        .iter()
        .all(|d| d.body["detail-type"] == "ECS Task State Change"));
    assert_ordered_per_task(&ds);
    // Each delivery is the event log's own event, byte for byte in JSON.
    let listed = berth_proto::v1::event_service_client::EventServiceClient::new(s.ops.clone())
        .list_events(berth_proto::v1::ListEventsRequest {
            since_cursor: 0,
            filter: None,
            max_results: 1000,
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    for d in &ds {
        let e = listed.iter().find(|e| e.cursor == d.cursor).unwrap();
        let j: serde_json::Value = serde_json::from_str(&e.json).unwrap();
        assert_eq!(j, d.body, "cursor {}", d.cursor);
        assert_eq!(j["id"], d.id.as_str());
    }
    // Every task event of the log after the subscription's start is there.
    let task_events: Vec<u64> = listed
        .iter()
        .filter(|e| e.detail_type == "ECS Task State Change")
        .map(|e| e.cursor)
        .collect();
    let got: Vec<u64> = ds.iter().map(|d| d.cursor).collect();
    assert_eq!(got, task_events);
    let w = WebhookServiceClient::new(s.ops.clone())
        .describe_webhook(DescribeWebhookRequest {
            name: "tasks".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .webhook
        .unwrap();
    assert_eq!(w.delivered as usize, ds.len());
    assert_eq!(w.dead_lettered, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_receiver_is_retried_then_dead_lettered_and_redriven() {
    let s = Server::start_with(|c| {
        c.webhooks.max_attempts = 3;
        c.webhooks.backoff_base = Duration::from_millis(20);
        c.webhooks.backoff_max = Duration::from_millis(100);
    })
    .await;
    let mut rx = Receiver::start(SECRET).await;
    register(&s.ops).await;
    let _agent = FakeAgent::join(&s.target, "default", FakeHost::default())
        .await
        .autopilot();
    create(&s.ops, "tasks", &rx.url(), TASKS_ONLY).await;
    rx.answer(500);
    let arn = run(&s.ops, 1).await.remove(0);
    stop(&s.ops, &arn).await;
    let mut hooks = WebhookServiceClient::new(s.ops.clone());
    // Every task event is tried three times and then dead-lettered.
    let mut letters = Vec::new();
    for _ in 0..400 {
        letters = hooks
            .list_dead_letters(ListDeadLettersRequest {
                name: "tasks".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .dead_letters;
        if letters.iter().any(|l| {
            serde_json::from_str::<serde_json::Value>(&l.body).unwrap()["detail"]["lastStatus"]
                == "STOPPED"
        }) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // PROVISIONING .. STOPPED (a stop that comes before RUNNING makes
    // three events, one after it five).
    let status = |l: &berth_proto::v1::DeadLetter| {
        serde_json::from_str::<serde_json::Value>(&l.body).unwrap()["detail"]["lastStatus"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(letters.len() >= 3, "{letters:#?}");
    assert_eq!(status(&letters[0]), "PROVISIONING");
    assert_eq!(status(letters.last().unwrap()), "STOPPED");
    assert!(letters.windows(2).all(|w| w[0].cursor < w[1].cursor));
    for l in &letters {
        assert_eq!(l.attempts, 3, "{l:?}");
        assert!(l.last_error.contains("HTTP 500"), "{l:?}");
        assert!(!l.redriving);
        assert_eq!(l.resource, arn);
    }
    let tries = rx.all();
    for l in &letters {
        let n = tries.iter().filter(|d| d.id == l.event_id).count();
        assert_eq!(n, 3, "three attempts at {}", l.cursor);
        let attempts: Vec<u32> = tries
            .iter()
            .filter(|d| d.id == l.event_id)
            .map(|d| d.attempt)
            .collect();
        assert_eq!(attempts, [1, 2, 3]);
    }
    assert!(rx.accepted().is_empty());
    // The receiver is fixed; a redrive sends the same events, in order.
    rx.answer(200);
    let n = hooks
        .redrive_dead_letters(RedriveDeadLettersRequest {
            name: "tasks".into(),
            cursors: vec![],
        })
        .await
        .unwrap()
        .into_inner()
        .redriven;
    assert_eq!(n as usize, letters.len());
    let ds = rx
        .until(Duration::from_secs(20), |d| d.len() == letters.len())
        .await;
    let ids: Vec<&str> = ds.iter().map(|d| d.id.as_str()).collect();
    let want: Vec<&str> = letters.iter().map(|l| l.event_id.as_str()).collect();
    assert_eq!(ids, want);
    assert!(ds.iter().all(|d| d.signature_ok));
    for _ in 0..100 {
        let left = hooks
            .list_dead_letters(ListDeadLettersRequest {
                name: "tasks".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .dead_letters;
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let w = hooks
        .describe_webhook(DescribeWebhookRequest {
            name: "tasks".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .webhook
        .unwrap();
    assert_eq!(w.dead_letters, 0, "{w:?}");
    assert_eq!(w.redrives_pending, 0, "{w:?}");
    assert_eq!(w.dead_lettered as usize, letters.len());
    assert_eq!(w.delivered as usize, letters.len());

    // A receiver that is down: connections are refused and retried until
    // it is back (the attempt limit is not reached here).
    drop(s);
    let s = Server::start_with(|c| {
        c.webhooks.max_attempts = 200;
        c.webhooks.backoff_base = Duration::from_millis(20);
        c.webhooks.backoff_max = Duration::from_millis(100);
    })
    .await;
    let mut rx2 = Receiver::start(SECRET).await;
    register(&s.ops).await;
    let _agent = FakeAgent::join(&s.target, "default", FakeHost::default())
        .await
        .autopilot();
    create(&s.ops, "tasks", &rx2.url(), TASKS_ONLY).await;
    rx2.down().await;
    let arn = run(&s.ops, 1).await.remove(0);
    stop(&s.ops, &arn).await;
    let mut hooks = WebhookServiceClient::new(s.ops.clone());
    for _ in 0..200 {
        let w = hooks
            .describe_webhook(DescribeWebhookRequest {
                name: "tasks".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .webhook
            .unwrap();
        if w.attempts >= 3 {
            assert!(w.last_error.contains("connecting to"), "{w:?}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    rx2.up().await;
    let ds = rx2
        .until(Duration::from_secs(20), |d| stopped(d, &arn))
        .await;
    assert_ordered_per_task(&ds);
    let statuses: Vec<String> = ds.iter().map(|d| detail(d, "lastStatus")).collect();
    assert_eq!(statuses.first().map(String::as_str), Some("PROVISIONING"));
    assert_eq!(statuses.last().map(String::as_str), Some("STOPPED"));
    assert!(ds[0].attempt > 1, "the first event needed retries");
    rx.down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_requests_name_their_field_and_the_secret_never_comes_back() {
    let s = Server::start().await;
    let mut hooks = WebhookServiceClient::new(s.ops.clone());
    let bad = |name: &str, url: &str, pattern: &str, secret: &[u8]| CreateWebhookRequest {
        name: name.into(),
        url: url.into(),
        event_pattern: pattern.into(),
        secret: secret.to_vec(),
        ..Default::default()
    };
    for (req, field) in [
        (bad("a/b", "http://127.0.0.1:1/", "", SECRET), "name:"),
        (bad("ok", "ftp://x/", "", SECRET), "url:"),
        (bad("ok", "http://127.0.0.1:1/", "", b"short"), "secret:"),
        (
            bad(
                "ok",
                "http://127.0.0.1:1/",
                r#"{"detail":{"lastStatus":"RUNNING"}}"#,
                SECRET,
            ),
            "eventPattern.detail.lastStatus:",
        ),
        (
            bad(
                "ok",
                "http://127.0.0.1:1/",
                r#"{"detail":{"x":[{"numeric":[">","1"]}]}}"#,
                SECRET,
            ),
            "eventPattern.detail.x[0].numeric[1]:",
        ),
    ] {
        let e = hooks.create_webhook(req).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        assert!(e.message().starts_with(field), "{field}: {}", e.message());
    }
    create(&s.ops, "ok", "http://127.0.0.1:1/", "").await;
    let e = hooks
        .create_webhook(bad("ok", "http://127.0.0.1:1/", "", SECRET))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists);
    let w = hooks
        .describe_webhook(DescribeWebhookRequest { name: "ok".into() })
        .await
        .unwrap()
        .into_inner();
    assert!(!format!("{w:?}").contains("whsec_"), "{w:?}");
    hooks
        .delete_webhook(DeleteWebhookRequest { name: "ok".into() })
        .await
        .unwrap();
    let e = hooks
        .describe_webhook(DescribeWebhookRequest { name: "ok".into() })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    s.stop().await;
}
