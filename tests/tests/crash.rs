//! Durability: every registration the scheduler acknowledged survives a
//! SIGKILL, and revisions continue after the restart without reuse.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use berth_proto::v1::task_definition_service_client::TaskDefinitionServiceClient;
use berth_proto::v1::{DescribeTaskDefinitionRequest, RegisterTaskDefinitionRequest};
use berth_tests::Scheduler;

fn body(family: &str, i: usize) -> String {
    format!(
        r#"{{"family":"{family}","containerDefinitions":[{{"name":"c","image":"busybox","memory":32,"environment":[{{"name":"I","value":"{i}"}}]}}]}}"#
    )
}

#[tokio::test]
async fn acknowledged_registrations_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Scheduler::start(&dir.path().join("data")).await;
    let mut client = TaskDefinitionServiceClient::new(s.authed_channel().await);
    const N: usize = 40;
    for i in 0..N {
        let r = client
            .register_task_definition(RegisterTaskDefinitionRequest {
                task_definition_json: body("crash", i),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.task_definition.unwrap().revision as usize, i + 1);
    }
    // Killed right after the last acknowledgement: nothing may be lost.
    s.kill9();
    s.restart().await;
    let mut client = TaskDefinitionServiceClient::new(s.authed_channel().await);
    for rev in 1..=N {
        let d = client
            .describe_task_definition(DescribeTaskDefinitionRequest {
                task_definition: format!("crash:{rev}"),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("revision {rev} lost after kill -9: {e}"))
            .into_inner()
            .task_definition
            .unwrap();
        let json: serde_json::Value = serde_json::from_str(&d.json).unwrap();
        assert_eq!(
            json["containerDefinitions"][0]["environment"][0]["value"],
            (rev - 1).to_string(),
            "revision {rev} holds the body it was registered with"
        );
    }
    let next = client
        .register_task_definition(RegisterTaskDefinitionRequest {
            task_definition_json: body("crash", N),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next.task_definition.unwrap().revision as usize, N + 1);
}

#[tokio::test]
async fn concurrent_acknowledged_registrations_survive_sigkill_mid_flight() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Scheduler::start(&dir.path().join("data")).await;
    let channel = s.authed_channel().await;
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u32>::new()));
    let mut writers = Vec::new();
    for w in 0..8 {
        let mut client = TaskDefinitionServiceClient::new(channel.clone());
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                match client
                    .register_task_definition(RegisterTaskDefinitionRequest {
                        task_definition_json: body("race", w * 1000 + i),
                    })
                    .await
                {
                    Ok(r) => acked
                        .lock()
                        .unwrap()
                        .push(r.into_inner().task_definition.unwrap().revision as u32),
                    Err(_) => return, // the scheduler died under us
                }
            }
        }));
    }
    // Let the writers run until they have made progress, then kill the
    // scheduler while calls are in flight (the writers never pause).
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while acked.lock().unwrap().len() <= 8 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the writers made no progress in 60 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    s.kill9();
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 8,
        "the writers made progress ({} acks)",
        acked.len()
    );
    s.restart().await;
    let mut client = TaskDefinitionServiceClient::new(s.authed_channel().await);
    for rev in &acked {
        client
            .describe_task_definition(DescribeTaskDefinitionRequest {
                task_definition: format!("race:{rev}"),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("acknowledged revision {rev} lost after kill -9: {e}"));
    }
    let max = *acked.iter().max().unwrap();
    let next = client
        .register_task_definition(RegisterTaskDefinitionRequest {
            task_definition_json: body("race", 0),
        })
        .await
        .unwrap()
        .into_inner()
        .task_definition
        .unwrap()
        .revision as u32;
    assert!(
        next > max,
        "revision {next} reuses an acknowledged one (max {max})"
    );
}

/// Scheduled tasks: a `rate(1 minute)` schedule fires once per minute, no
/// more and no less, while its scheduler is killed with SIGKILL right after
/// each fire (no agent: each fire's RunTask answers with its placement
/// failure, which the fire records like any outcome).
#[tokio::test]
async fn a_one_minute_schedule_fires_once_per_minute_across_sigkill() {
    use berth_proto::v1::schedule_service_client::ScheduleServiceClient;
    use berth_proto::v1::{CreateScheduleRequest, GetScheduleRequest, ScheduleTarget};

    let dir = tempfile::tempdir().unwrap();
    let mut s = Scheduler::start(&dir.path().join("data")).await;
    TaskDefinitionServiceClient::new(s.authed_channel().await)
        .register_task_definition(RegisterTaskDefinitionRequest {
            task_definition_json: body("cron-job", 0),
        })
        .await
        .unwrap();
    ScheduleServiceClient::new(s.authed_channel().await)
        .create_schedule(CreateScheduleRequest {
            name: "every-minute".into(),
            expression: "rate(1 minute)".into(),
            target: Some(ScheduleTarget {
                task_definition: "cron-job".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    // The fire times recorded, once there are `n` of them.
    async fn fires(s: &Scheduler, n: usize, limit: std::time::Duration) -> Vec<i64> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let sched = ScheduleServiceClient::new(s.authed_channel().await)
                .get_schedule(GetScheduleRequest {
                    name: "every-minute".into(),
                })
                .await
                .unwrap()
                .into_inner()
                .schedule
                .unwrap();
            if sched.fires.len() >= n || tokio::time::Instant::now() > deadline {
                return sched
                    .fires
                    .iter()
                    .map(|f| f.fire_time.as_ref().unwrap().seconds)
                    .collect();
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
    let first = fires(&s, 1, std::time::Duration::from_secs(10)).await;
    assert_eq!(first.len(), 1, "the first fire is at creation");
    s.kill9();
    s.restart().await;
    // Nothing more until the minute has passed.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(fires(&s, 1, std::time::Duration::ZERO).await, first);
    let two = fires(&s, 2, std::time::Duration::from_secs(75)).await;
    assert_eq!(two.len(), 2, "{two:?}");
    assert_eq!(two[0] - two[1], 60, "newest first, a minute apart: {two:?}");
    s.kill9();
    s.restart().await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let after = fires(&s, 2, std::time::Duration::ZERO).await;
    assert_eq!(after, two, "no fire repeated after the second SIGKILL");
}
