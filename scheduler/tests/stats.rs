//! Task stats over loopback gRPC with fake agents: usage samples sent on
//! the agent's stream come back through `TaskStatsService` with rates and
//! utilization over the task's reservation; unknown tasks are NotFound,
//! tasks without a reading or not RUNNING are FailedPrecondition; `top`'s
//! list sorts and filters by service; a watcher makes the agent sample
//! every second until it goes; a read-only token may read; readings leave
//! with the task and with the agent.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::time::{Duration, SystemTime};

use berth_proto::v1::task_definition_service_client::TaskDefinitionServiceClient;
use berth_proto::v1::task_service_client::TaskServiceClient;
use berth_proto::v1::task_stats_service_client::TaskStatsServiceClient;
use berth_proto::v1::token_service_client::TokenServiceClient;
use berth_proto::v1::{
    agent_message, ContainerUsage, CreateTokenRequest, DescribeTasksRequest, GetTaskStatsRequest,
    ListTaskStatsRequest, NetworkUsage, RegisterTaskDefinitionRequest, StartTaskRequest,
    StopTaskRequest, TaskStats, TaskUsage, UsageSample,
};
use berth_tests::fake_agent::{FakeAgent, FakeHost};
use berth_tests::{authed, eventually, AuthedChannel};
use tonic::Code;

mod common;
use common::InProcess as Server;

/// Half a core reserved, 128 MiB.
const WEB: &str = r#"{"family":"web","cpu":"512","memory":"128","containerDefinitions":[
    {"name":"app","image":"busybox","essential":true},
    {"name":"side","image":"busybox","essential":false}]}"#;
const BATCH: &str = r#"{"family":"batch","containerDefinitions":[
    {"name":"job","image":"busybox","cpu":1024,"memory":256}]}"#;

async fn start_task(ops: &AuthedChannel, family: &str, instance: &str, group: &str) -> String {
    let t = TaskServiceClient::new(ops.clone())
        .start_task(StartTaskRequest {
            task_definition: family.into(),
            container_instances: vec![instance.into()],
            count: 1,
            group: group.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(t.failures.is_empty(), "{:?}", t.failures);
    t.tasks[0].task_arn.clone()
}

async fn until_status(ops: &AuthedChannel, arn: &str, status: &str) {
    eventually(Duration::from_secs(10), status, || async {
        let t = TaskServiceClient::new(ops.clone())
            .describe_tasks(DescribeTasksRequest {
                tasks: vec![arn.into()],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        match t.tasks.first() {
            Some(t) if t.last_status == status => Ok(()),
            other => Err(format!("{:?}", other.map(|t| &t.last_status))),
        }
    })
    .await
}

const MIB: u64 = 1 << 20;

/// A task's reading: `cpu_s` seconds of CPU so far (app has all of it),
/// app's memory `mem_mib` plus 2 MiB of inactive file pages.
fn task_usage(arn: &str, cpu_s: f64, mem_mib: u64) -> TaskUsage {
    let ns = (cpu_s * 1e9) as u64;
    TaskUsage {
        task_arn: arn.into(),
        cpu_total_ns: Some(ns),
        memory_limit_bytes: None,
        network: Some(NetworkUsage {
            rx_bytes: 1000,
            rx_packets: 10,
            tx_bytes: 500,
            tx_packets: 5,
        }),
        containers: vec![
            ContainerUsage {
                name: "app".into(),
                cpu_total_ns: ns,
                memory_usage_bytes: (mem_mib + 2) * MIB,
                memory_inactive_file_bytes: 2 * MIB,
                memory_limit_bytes: None,
                pids: 3,
                block_read_bytes: Some(4096),
                block_write_bytes: Some(0),
                oom_kills: Some(0),
                ..Default::default()
            },
            ContainerUsage {
                name: "side".into(),
                memory_usage_bytes: MIB,
                memory_limit_bytes: Some(32 * MIB),
                pids: 1,
                ..Default::default()
            },
        ],
    }
}

async fn sample(agent: &FakeAgent, at: SystemTime, tasks: Vec<TaskUsage>) {
    agent
        .send(agent_message::Msg::Usage(UsageSample {
            sampled_at: Some(at.into()),
            host_memory_bytes: 4096 * MIB,
            tasks,
        }))
        .await;
}

async fn get(ops: &AuthedChannel, task: &str) -> Result<TaskStats, tonic::Status> {
    TaskStatsServiceClient::new(ops.clone())
        .get_task_stats(GetTaskStatsRequest {
            cluster: String::new(),
            task: task.into(),
        })
        .await
        .map(|r| r.into_inner().stats.unwrap())
}

/// Waits until the task's reading was read at `at` (samples travel on the
/// agent's stream, so they land a little later).
async fn reading_at(ops: &AuthedChannel, task: &str, at: SystemTime) -> TaskStats {
    let want: prost_types::Timestamp = at.into();
    eventually(Duration::from_secs(10), "the sample", || async {
        match get(ops, task).await {
            Ok(s) if s.read.as_ref().map(|t| t.seconds) == Some(want.seconds) => Ok(s),
            other => Err(format!("{other:?}")),
        }
    })
    .await
}

async fn list(ops: &AuthedChannel, service: &str, sort: &str) -> Vec<String> {
    TaskStatsServiceClient::new(ops.clone())
        .list_task_stats(ListTaskStatsRequest {
            cluster: "default".into(),
            service: service.into(),
            sort: sort.into(),
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .tasks
        .into_iter()
        .map(|t| t.task_arn)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_come_back_as_stats_and_leave_with_the_task() {
    let s = Server::start().await;
    let ops = s.ops.clone();
    for json in [WEB, BATCH] {
        TaskDefinitionServiceClient::new(ops.clone())
            .register_task_definition(RegisterTaskDefinitionRequest {
                task_definition_json: json.into(),
            })
            .await
            .unwrap();
    }
    let agent = FakeAgent::join(&s.target, "default", FakeHost::default())
        .await
        .autopilot();
    let web = start_task(&ops, "web", &agent.id, "service:web").await;
    let batch = start_task(&ops, "batch", &agent.id, "").await;
    until_status(&ops, &web, "RUNNING").await;
    until_status(&ops, &batch, "RUNNING").await;

    let e = get(&ops, "0123456789abcdef0123456789abcdef")
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    let e = get(&ops, &web).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("no reading yet"), "{e:?}");

    // Two samples 10 s apart: web used 5 s of CPU (half a core, all of
    // its 512 units), batch 1 s of its 1024 units.
    let t0 = SystemTime::now() - Duration::from_secs(10);
    let t1 = t0 + Duration::from_secs(10);
    sample(
        &agent,
        t0,
        vec![task_usage(&web, 1.0, 64), task_usage(&batch, 0.0, 200)],
    )
    .await;
    sample(
        &agent,
        t1,
        vec![task_usage(&web, 6.0, 64), task_usage(&batch, 1.0, 200)],
    )
    .await;
    let st = reading_at(&ops, &web, t1).await;
    assert_eq!(st.task_arn, web);
    assert_eq!(st.group, "service:web");
    assert!((st.cpu_units - 512.0).abs() < 1.0, "{st:?}");
    assert_eq!(st.cpu_reserved_units, 512);
    assert_eq!(st.recent.len(), 1, "one interval so far");
    assert!((st.recent[0].cpu_units - 512.0).abs() < 1.0);
    assert_eq!(st.recent[0].read, st.read);
    assert!((st.cpu_utilization.unwrap() - 100.0).abs() < 0.5, "{st:?}");
    // The working sets: 64 MiB + 1 MiB, of 128 reserved.
    assert_eq!(st.memory_used_bytes, 65 * MIB);
    assert_eq!(st.memory_reserved_mib, 128);
    assert!((st.memory_utilization.unwrap() - 65.0 / 128.0 * 100.0).abs() < 0.01);
    let app = &st.containers[0];
    assert_eq!(app.name, "app");
    assert!((app.cpu_percent - 50.0).abs() < 0.1, "{app:?}");
    assert_eq!(app.memory_usage_bytes, 64 * MIB);
    assert_eq!(app.memory_raw_usage_bytes, 66 * MIB);
    assert_eq!(
        app.memory_limit_bytes,
        4096 * MIB,
        "unlimited: the host's memory"
    );
    assert_eq!(app.network.as_ref().unwrap().rx_bytes, 1000);
    assert_eq!((app.block_read_bytes, app.pids), (Some(4096), 3));
    let side = &st.containers[1];
    assert_eq!(side.memory_limit_bytes, 32 * MIB);
    assert!((side.memory_percent - 100.0 / 32.0).abs() < 0.01);

    // top: web first by CPU (512 units against 102), batch by memory; the
    // service filter keeps web.
    assert_eq!(list(&ops, "", "cpu").await, [web.clone(), batch.clone()]);
    assert_eq!(list(&ops, "", "memory").await, [batch.clone(), web.clone()]);
    assert_eq!(list(&ops, "web", "").await, vec![web.clone()]);
    let e = TaskStatsServiceClient::new(ops.clone())
        .list_task_stats(ListTaskStatsRequest {
            sort: "disk".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("sort"), "{e:?}");

    // A read-only token reads stats.
    let ro = TokenServiceClient::new(ops.clone())
        .create_token(CreateTokenRequest {
            name: "viewer".into(),
            role: "read-only".into(),
            expires_in: None,
        })
        .await
        .unwrap()
        .into_inner()
        .secret;
    let viewer = authed(s.channel.clone(), &ro);
    assert_eq!(get(&viewer, &web).await.unwrap().task_arn, web);

    // A watcher: the agent is asked for 1 s samples, each new sample is
    // streamed, and the agent goes back to its own pace after.
    let mut watch = TaskStatsServiceClient::new(viewer.clone())
        .watch_task_stats(GetTaskStatsRequest {
            cluster: String::new(),
            task: web.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap().stats.unwrap();
    assert_eq!(first.read, st.read);
    agent.sampling_becomes(1000).await;
    let t2 = t1 + Duration::from_secs(1);
    sample(
        &agent,
        t2,
        vec![task_usage(&web, 7.0, 70), task_usage(&batch, 1.0, 200)],
    )
    .await;
    let next = tokio::time::timeout(Duration::from_secs(10), watch.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
        .stats
        .unwrap();
    assert!((next.cpu_units - 1024.0).abs() < 2.0, "{next:?}");
    drop(watch);
    agent.sampling_becomes(0).await;

    // Stopped: FailedPrecondition, and gone from top once its agent's next
    // sample lacks it.
    TaskServiceClient::new(ops.clone())
        .stop_task(StopTaskRequest {
            cluster: String::new(),
            task: batch.clone(),
            reason: String::new(),
        })
        .await
        .unwrap();
    until_status(&ops, &batch, "STOPPED").await;
    let e = get(&ops, &batch).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(e.message().contains("STOPPED, not RUNNING"), "{e:?}");
    assert_eq!(list(&ops, "", "cpu").await, vec![web.clone()]);
    sample(
        &agent,
        t2 + Duration::from_secs(1),
        vec![task_usage(&web, 8.0, 70)],
    )
    .await;
    reading_at(&ops, &web, t2 + Duration::from_secs(1)).await;

    // The agent goes: its readings go with it.
    drop(agent);
    eventually(Duration::from_secs(10), "the readings to go", || async {
        match get(&ops, &web).await {
            Err(e) if e.code() == Code::FailedPrecondition => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    s.stop().await;
}
