//! Tasks over loopback gRPC: a real scheduler (`server::run` on
//! `127.0.0.1:0`, real sled) and fake agents speaking the real AgentService
//! protocol.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::time::Duration;

use berth_proto::v1::cluster_service_client::ClusterServiceClient;
use berth_proto::v1::container_instance_service_client::ContainerInstanceServiceClient;
use berth_proto::v1::task_definition_service_client::TaskDefinitionServiceClient;
use berth_proto::v1::task_service_client::TaskServiceClient;
use berth_proto::v1::{
    agent_message, DeregisterTaskDefinitionRequest, DescribeClustersRequest,
    DescribeContainerInstancesRequest, DescribeTasksRequest, GetTaskLogsRequest, ListTasksRequest,
    LogChunk, LogEntry, RegisterTaskDefinitionRequest, StartTaskRequest, StopTaskRequest, Task,
};
use berth_tests::fake_agent::{report_for, FakeAgent, FakeHost};
use berth_tests::AuthedChannel;
use tonic::Code;

mod common;
use common::InProcess as Server;

async fn start() -> Server {
    Server::start().await
}

const WEB: &str = r#"{"family":"web","containerDefinitions":[{"name":"web","image":"nginx",
    "memory":128,"cpu":256,"portMappings":[{"containerPort":80,"hostPort":0}]}]}"#;
const FIXED: &str = r#"{"family":"fixed","containerDefinitions":[{"name":"app","image":"nginx",
    "memory":64,"portMappings":[{"containerPort":80,"hostPort":8080}]}]}"#;

async fn register(ch: &AuthedChannel, json: &str) {
    TaskDefinitionServiceClient::new(ch.clone())
        .register_task_definition(RegisterTaskDefinitionRequest {
            task_definition_json: json.to_owned(),
        })
        .await
        .unwrap();
}

fn start_req(taskdef: &str, instance: &str, count: i32) -> StartTaskRequest {
    StartTaskRequest {
        cluster: String::new(),
        task_definition: taskdef.to_owned(),
        container_instances: vec![instance.to_owned()],
        count,
        started_by: "test".to_owned(),
        group: String::new(),
        ..Default::default()
    }
}

async fn describe(tasks: &mut TaskServiceClient<AuthedChannel>, id: &str) -> Task {
    let mut r = tasks
        .describe_tasks(DescribeTasksRequest {
            cluster: String::new(),
            tasks: vec![id.to_owned()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.failures.is_empty(), "{:?}", r.failures);
    r.tasks.remove(0)
}

/// Waits (bounded) until the scheduler records the instance as disconnected.
async fn until_disconnected(ops: &AuthedChannel, instance: &str) {
    let mut client = ContainerInstanceServiceClient::new(ops.clone());
    for _ in 0..200 {
        let ci = client
            .describe_container_instances(DescribeContainerInstancesRequest {
                cluster: String::new(),
                container_instances: vec![instance.to_owned()],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .container_instances
            .remove(0);
        if !ci.agent_connected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("instance {instance} still connected after 10 s");
}

async fn eventually_task(
    tasks: &mut TaskServiceClient<AuthedChannel>,
    id: &str,
    want: impl Fn(&Task) -> bool,
) -> Task {
    for _ in 0..100 {
        let t = describe(tasks, id).await;
        if want(&t) {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "task {id} never matched; last: {:?}",
        describe(tasks, id).await
    );
}

fn short(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap()
}

#[tokio::test]
async fn start_report_describe_logs_and_stop_with_a_fake_agent() {
    let s = start().await;
    register(&s.ops, WEB).await;
    register(&s.ops, FIXED).await;
    let agent = FakeAgent::join(&s.target, "default", FakeHost::default()).await;
    let mut tasks = TaskServiceClient::new(s.ops.clone());

    // Two dynamic-port tasks on one agent get different host ports.
    let started = tasks
        .start_task(start_req("web", &agent.id, 2))
        .await
        .unwrap()
        .into_inner();
    assert!(started.failures.is_empty(), "{:?}", started.failures);
    assert_eq!(started.tasks.len(), 2);
    let t0 = &started.tasks[0];
    assert_eq!(t0.last_status, "PROVISIONING");
    assert_eq!(t0.desired_status, "RUNNING");
    assert_eq!((t0.cpu.as_str(), t0.memory.as_str()), ("256", "128"));
    assert_eq!(t0.group, "family:web");
    assert_eq!(short(&t0.task_arn).len(), 32);
    let d = agent.desired_where(|d| d.tasks.len() == 2).await;
    let ports: Vec<u32> = d.tasks.iter().map(|t| t.ports[0].host_port).collect();
    assert_ne!(ports[0], ports[1]);
    assert!(
        ports.iter().all(|p| (20000..=32767).contains(p)),
        "{ports:?}"
    );
    let json: serde_json::Value = serde_json::from_str(&d.tasks[0].task_definition_json).unwrap();
    assert_eq!(json["family"], "web");
    assert_eq!(
        (d.tasks[0].family.as_str(), d.tasks[0].revision),
        ("web", 1)
    );

    // A static host port already taken is refused with a clear reason.
    let ok = tasks
        .start_task(start_req("fixed", &agent.id, 1))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.tasks.len(), 1);
    let refused = tasks
        .start_task(start_req("fixed", &agent.id, 1))
        .await
        .unwrap()
        .into_inner();
    assert!(refused.tasks.is_empty());
    assert_eq!(refused.failures[0].reason, "RESOURCE:PORTS");
    assert!(
        refused.failures[0].detail.contains("8080/tcp"),
        "{:?}",
        refused.failures
    );
    assert_eq!(refused.failures[0].arn, agent.arn);

    // Reports: PENDING → RUNNING with bindings, runtime ids, timestamps.
    let web0 = d.tasks[0].clone();
    agent.report(report_for(&web0, "PENDING")).await;
    agent.report(report_for(&web0, "RUNNING")).await;
    let id0 = short(&web0.task_arn).to_owned();
    let t = eventually_task(&mut tasks, &id0, |t| t.last_status == "RUNNING").await;
    let c = &t.containers[0];
    assert_eq!(c.runtime_id, format!("{id0}-web"));
    assert_eq!(c.network_bindings[0].host_port, web0.ports[0].host_port);
    assert!(t.started_at.is_some() && t.pull_started_at.is_some());
    // A regression is ignored. Reports on one stream are handled in order:
    // once a later report on the same stream is visible, the regression has
    // been handled too.
    agent.report(report_for(&web0, "PENDING")).await;
    let web1 = d.tasks[1].clone();
    let id1 = short(&web1.task_arn).to_owned();
    agent.report(report_for(&web1, "PENDING")).await;
    eventually_task(&mut tasks, &id1, |t| t.last_status == "PENDING").await;
    assert_eq!(describe(&mut tasks, &id0).await.last_status, "RUNNING");

    // Counters follow the tasks.
    let ci = ContainerInstanceServiceClient::new(s.ops.clone())
        .describe_container_instances(DescribeContainerInstancesRequest {
            cluster: String::new(),
            container_instances: vec![agent.id.clone()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .container_instances
        .remove(0);
    assert_eq!((ci.running_tasks_count, ci.pending_tasks_count), (1, 2));
    let memory = ci
        .remaining_resources
        .iter()
        .find(|r| r.name == "MEMORY")
        .unwrap();
    assert_eq!(memory.integer_value, 1024 - 128 - 128 - 64);
    let ports = ci
        .remaining_resources
        .iter()
        .find(|r| r.name == "PORTS")
        .unwrap();
    assert!(ports.string_set_value.contains(&"8080".to_owned()));
    let cluster = ClusterServiceClient::new(s.ops.clone())
        .describe_clusters(DescribeClustersRequest {
            clusters: vec![],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .clusters
        .remove(0);
    assert_eq!(
        (cluster.running_tasks_count, cluster.pending_tasks_count),
        (1, 2)
    );

    // Logs travel agent → scheduler → caller.
    let mut logs_client = tasks.clone();
    let logs = tokio::spawn({
        let id0 = id0.clone();
        async move {
            let mut stream = logs_client
                .get_task_logs(GetTaskLogsRequest {
                    task: id0,
                    tail: 10,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            let mut lines = Vec::new();
            while let Some(e) = stream.message().await.unwrap() {
                lines.push(e.log);
            }
            lines
        }
    });
    let req = agent.next_log_request().await;
    assert_eq!(req.task_arn, web0.task_arn);
    assert_eq!(req.tail, 10);
    let entry = |log: &str| LogEntry {
        container: "web".into(),
        stream: "stdout".into(),
        log: log.into(),
        time: None,
    };
    for (entries, eof) in [(vec![entry("one")], false), (vec![entry("two")], true)] {
        agent
            .send(agent_message::Msg::LogChunk(LogChunk {
                request_id: req.request_id,
                entries,
                eof,
                error: String::new(),
            }))
            .await;
    }
    assert_eq!(logs.await.unwrap(), vec!["one", "two"]);

    // Stop: desired STOPPED reaches the agent; its STOPPED report releases.
    let stopped = tasks
        .stop_task(StopTaskRequest {
            cluster: String::new(),
            task: web0.task_arn.clone(),
            reason: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    assert_eq!(stopped.desired_status, "STOPPED");
    assert_eq!(stopped.stop_code, "UserInitiated");
    assert_eq!(stopped.stopped_reason, "Task stopped by user");
    assert_eq!(stopped.last_status, "RUNNING", "until the agent reports");
    let d = agent
        .desired_where(|d| {
            d.tasks
                .iter()
                .any(|t| t.task_arn == web0.task_arn && t.desired_status == "STOPPED")
        })
        .await;
    let w = d
        .tasks
        .iter()
        .find(|t| t.task_arn == web0.task_arn)
        .unwrap();
    assert_eq!(w.stop_code, "UserInitiated");
    agent.report(report_for(w, "STOPPED")).await;
    let t = eventually_task(&mut tasks, &id0, |t| t.last_status == "STOPPED").await;
    assert_eq!(t.stop_code, "UserInitiated");
    assert_eq!(t.containers[0].exit_code, Some(0));
    assert!(t.stopped_at.is_some() && t.stopping_at.is_some());
    agent
        .desired_where(|d| d.tasks.iter().all(|t| t.task_arn != web0.task_arn))
        .await;

    // The agent takes deltas: after the whole set on connect, each message
    // carried only what changed, based on the generation before it.
    let sent = agent.desired_messages();
    assert!(!sent[0].delta, "a new stream starts with the whole set");
    for w in sent.windows(2) {
        assert!(w[1].delta, "{sent:#?}");
        assert_eq!(w[1].base_generation, w[0].generation, "{sent:#?}");
    }
    let stop = sent
        .iter()
        .position(|m| m.tasks == [web0.task_arn.clone()])
        .expect("the stop carried the stopped task alone");
    assert!(
        sent[stop..]
            .iter()
            .any(|m| m.removed == [web0.task_arn.clone()] && m.tasks.is_empty()),
        "the task left the set by a removal alone: {sent:#?}"
    );

    // ListTasks: RUNNING by default, STOPPED on request, filters.
    let list = |desired: &str, family: &str| ListTasksRequest {
        desired_status: desired.into(),
        family: family.into(),
        ..Default::default()
    };
    let running = tasks.list_tasks(list("", "")).await.unwrap().into_inner();
    assert_eq!(running.task_arns.len(), 2);
    let stopped = tasks
        .list_tasks(list("STOPPED", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stopped.task_arns, vec![web0.task_arn.clone()]);
    let fixed = tasks
        .list_tasks(list("", "fixed"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fixed.task_arns.len(), 1);

    // Another instance cannot report this task. The intruder then reports a
    // task of its own on the same stream: once that is visible, the forged
    // report has been handled too.
    let intruder = FakeAgent::join(&s.target, "default", FakeHost::default()).await;
    intruder.report(report_for(&web1, "STOPPED")).await;
    let own = tasks
        .start_task(start_req("web", &intruder.id, 1))
        .await
        .unwrap()
        .into_inner();
    assert!(own.failures.is_empty(), "{:?}", own.failures);
    let own = intruder.desired_where(|d| d.tasks.len() == 1).await.tasks[0].clone();
    intruder.report(report_for(&own, "PENDING")).await;
    eventually_task(&mut tasks, short(&own.task_arn), |t| {
        t.last_status == "PENDING"
    })
    .await;
    let t1 = describe(&mut tasks, &id1).await;
    assert_eq!(
        (t1.last_status.as_str(), t1.desired_status.as_str()),
        ("PENDING", "RUNNING")
    );

    // Errors.
    let missing = tasks
        .describe_tasks(DescribeTasksRequest {
            cluster: String::new(),
            tasks: vec!["0123456789abcdef0123456789abcdef".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(missing.failures[0].reason, "MISSING");
    let err = tasks
        .get_task_logs(GetTaskLogsRequest {
            task: "nope".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let other = short(&d.tasks[0].task_arn).to_owned();
    let agent_id = agent.id.clone();
    drop(agent);
    until_disconnected(&s.ops, &agent_id).await;
    let err = tasks
        .get_task_logs(GetTaskLogsRequest {
            task: other,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert!(err.message().contains("not connected"), "{}", err.message());
    let err = tasks
        .start_task(start_req("web", &intruder.id, 0))
        .await
        .unwrap()
        .into_inner();
    assert!(err.failures.is_empty());
}

#[tokio::test]
async fn inactive_revisions_and_bad_instances_are_refused() {
    let s = start().await;
    register(&s.ops, WEB).await;
    let agent = FakeAgent::join(&s.target, "default", FakeHost::default()).await;
    let mut tasks = TaskServiceClient::new(s.ops.clone());
    TaskDefinitionServiceClient::new(s.ops.clone())
        .deregister_task_definition(DeregisterTaskDefinitionRequest {
            task_definition: "web:1".into(),
        })
        .await
        .unwrap();
    let err = tasks
        .start_task(start_req("web:1", &agent.id, 1))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("TaskDefinition is inactive"),
        "{}",
        err.message()
    );
    register(&s.ops, WEB).await;
    let r = tasks
        .start_task(start_req("web", "no-such-instance", 1))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.failures[0].reason, "MISSING");
    let err = tasks
        .start_task(start_req("web", &agent.id, 11))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    // Too little memory on the host.
    let small = FakeAgent::join(
        &s.target,
        "default",
        FakeHost {
            memory_mib: 100,
            ..FakeHost::default()
        },
    )
    .await;
    let r = tasks
        .start_task(start_req("web", &small.id, 1))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.failures[0].reason, "RESOURCE:MEMORY");
    // A disconnected agent takes nothing.
    let id = agent.id.clone();
    drop(agent);
    until_disconnected(&s.ops, &id).await;
    let r = tasks
        .start_task(start_req("web", &id, 1))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.failures[0].reason, "AGENT");
}
