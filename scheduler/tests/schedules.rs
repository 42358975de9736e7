//! Scheduled tasks end to end in-process: ScheduleService over loopback
//! gRPC, the schedule loop, RunTask through the placer onto a fake agent,
//! and one run per fire time across a scheduler restart on the same store.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::time::Duration;

use berth_proto::v1::schedule_service_client::ScheduleServiceClient;
use berth_proto::v1::task_definition_service_client::TaskDefinitionServiceClient;
use berth_proto::v1::task_service_client::TaskServiceClient;
use berth_proto::v1::{
    CreateScheduleRequest, GetScheduleRequest, ListTasksRequest, RegisterTaskDefinitionRequest,
    ScheduleTarget, UpdateScheduleStateRequest,
};
use berth_tests::eventually;
use berth_tests::fake_agent::{FakeAgent, FakeHost};
use berth_tests::AuthedChannel;
use tonic::Code;

mod common;
use common::InProcess as Server;

const BATCH: &str = r#"{"family":"batch","containerDefinitions":[{"name":"job","image":"busybox",
    "memory":64,"command":["true"]}]}"#;

async fn register(ch: &AuthedChannel) {
    TaskDefinitionServiceClient::new(ch.clone())
        .register_task_definition(RegisterTaskDefinitionRequest {
            task_definition_json: BATCH.to_owned(),
        })
        .await
        .unwrap();
}

/// `at(…)` `secs` seconds from now, in UTC (EventBridge's form).
fn at_in(secs: i64) -> String {
    let t = time::OffsetDateTime::now_utc() + time::Duration::seconds(secs);
    format!(
        "at({:04}-{:02}-{:02}T{:02}:{:02}:{:02})",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn create(name: &str, expression: String) -> CreateScheduleRequest {
    CreateScheduleRequest {
        name: name.into(),
        expression,
        target: Some(ScheduleTarget {
            task_definition: "batch".into(),
            count: 2,
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn started_by(ch: &AuthedChannel, name: &str) -> Vec<String> {
    let mut arns = Vec::new();
    for status in ["RUNNING", "STOPPED"] {
        let r = TaskServiceClient::new(ch.clone())
            .list_tasks(ListTasksRequest {
                started_by: name.into(),
                desired_status: status.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        arns.extend(r.task_arns);
    }
    arns
}

/// sled lets go of its file lock a moment after the last handle closes.
async fn wait_for_store_lock(dir: &std::path::Path) {
    for _ in 0..500 {
        match berth_scheduler::store::SledStore::open(dir) {
            Ok(store) => {
                drop(store);
                return;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    panic!("the stopped scheduler still holds {}", dir.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_at_schedule_fires_once_and_not_again_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let admin = berth_tests::generate_token();
    let s = Server::start_in(dir.path(), &admin, true, |_| {}).await;
    let agent = FakeAgent::join(&s.target, "default", FakeHost::default())
        .await
        .autopilot();
    register(&s.ops).await;
    let mut schedules = ScheduleServiceClient::new(s.ops.clone());
    let created = schedules
        .create_schedule(create("nightly", at_in(2)))
        .await
        .unwrap()
        .into_inner()
        .schedule
        .unwrap();
    assert_eq!(created.state, "ENABLED");
    assert!(created.next_fire_time.is_some());
    assert!(created.fires.is_empty());

    let fired = eventually(Duration::from_secs(15), "the schedule to fire", || {
        let mut c = schedules.clone();
        async move {
            let s = c
                .get_schedule(GetScheduleRequest {
                    name: "nightly".into(),
                })
                .await
                .map_err(|e| e.to_string())?
                .into_inner()
                .schedule
                .unwrap();
            if s.fires.is_empty() {
                return Err("no fire yet".into());
            }
            Ok(s)
        }
    })
    .await;
    assert_eq!(fired.fires.len(), 1);
    assert_eq!(fired.fires[0].outcome, "STARTED");
    assert_eq!(fired.fires[0].task_arns.len(), 2, "{:?}", fired.fires[0]);
    assert!(fired.next_fire_time.is_none(), "at() fires once");
    let mut tasks = started_by(&s.ops, "nightly").await;
    tasks.sort();
    let mut recorded = fired.fires[0].task_arns.clone();
    recorded.sort();
    assert_eq!(tasks, recorded, "the tasks it started carry startedBy");

    // A restart on the same store: the fire is not run again.
    drop(agent);
    s.stop().await;
    wait_for_store_lock(dir.path()).await;
    let s = Server::start_in(dir.path(), &admin, false, |_| {}).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(started_by(&s.ops, "nightly").await.len(), 2);
    let after = ScheduleServiceClient::new(s.ops.clone())
        .get_schedule(GetScheduleRequest {
            name: "nightly".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .schedule
        .unwrap();
    assert_eq!(after.fires.len(), 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_schedule_fires_at_creation_then_waits_its_period() {
    let s = Server::start().await;
    let _agent = FakeAgent::join(&s.target, "default", FakeHost::default())
        .await
        .autopilot();
    register(&s.ops).await;
    let mut schedules = ScheduleServiceClient::new(s.ops.clone());
    schedules
        .create_schedule(create("every-minute", "rate(1 minute)".into()))
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "the first fire's tasks", || {
        let ops = s.ops.clone();
        async move {
            match started_by(&ops, "every-minute").await.len() {
                2 => Ok(()),
                n => Err(format!("{n} tasks")),
            }
        }
    })
    .await;
    // Ticks keep coming (every 100 ms in tests); the next fire is a minute away.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(started_by(&s.ops, "every-minute").await.len(), 2);
    // Disabled: no next fire.
    let disabled = schedules
        .update_schedule_state(UpdateScheduleStateRequest {
            name: "every-minute".into(),
            state: "DISABLED".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .schedule
        .unwrap();
    assert!(disabled.next_fire_time.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_schedules_are_refused_naming_the_field() {
    let s = Server::start().await;
    register(&s.ops).await;
    let mut schedules = ScheduleServiceClient::new(s.ops.clone());
    let cases = [
        (
            create("a", "cron(0 25 * * ? *)".into()),
            "expression.cron.hours",
        ),
        (
            create("a", "cron(0 1 * * * *)".into()),
            "expression.cron.day-of-week",
        ),
        (create("a", "rate(2 weeks)".into()), "expression.rate.unit"),
        (create("bad name", "rate(1 hour)".into()), "name"),
        (
            CreateScheduleRequest {
                timezone: "Europe/Atlantis".into(),
                ..create("a", "rate(1 hour)".into())
            },
            "timezone",
        ),
        (
            CreateScheduleRequest {
                target: Some(ScheduleTarget {
                    task_definition: "batch".into(),
                    count: 5000,
                    ..Default::default()
                }),
                ..create("a", "rate(1 hour)".into())
            },
            "target.count",
        ),
    ];
    for (req, field) in cases {
        let e = schedules.create_schedule(req).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{field}: {e:?}");
        assert!(e.message().contains(field), "{field}: {}", e.message());
    }
    let missing = schedules
        .create_schedule(CreateScheduleRequest {
            target: Some(ScheduleTarget {
                task_definition: "nope".into(),
                ..Default::default()
            }),
            ..create("a", "rate(1 hour)".into())
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound, "{missing:?}");
    schedules
        .create_schedule(create("dup", "rate(1 hour)".into()))
        .await
        .unwrap();
    let dup = schedules
        .create_schedule(create("dup", "rate(1 hour)".into()))
        .await
        .unwrap_err();
    assert_eq!(dup.code(), Code::AlreadyExists);
}
