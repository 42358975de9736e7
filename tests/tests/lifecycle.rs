//! Container semantics on real containerd + runc + CNI: `dependsOn` gates
//! (SUCCESS, HEALTHY, a failing init, a cycle refused at registration),
//! health checks run through containerd exec and reported by `task
//! describe`, and the restart policy by ECS's rules. Root is required: run
//! via `scripts/test` as root; without root the tests fail with that message.
//!
//! Each test has its own scheduler, agent, containerd, registry, bridge,
//! subnet, cgroup parent and host-port range (`berth_tests::Cluster` in
//! free_slot block 216).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)] // tests fail loudly by design; Drop polls with std time

use std::time::Duration;

use berth_proto::v1::task_definition_service_client::TaskDefinitionServiceClient;
use berth_proto::v1::RegisterTaskDefinitionRequest;
use berth_tests::{ok_stdout, Cluster, ClusterOptions};
use serde_json::Value;
use tokio::time::Instant;

async fn cluster() -> Cluster {
    Cluster::start_in(216, ClusterOptions::default()).await
}

fn container<'a>(t: &'a Value, name: &str) -> &'a Value {
    t["containers"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no container {name} in {t:#}"))
}

/// init writes a marker into a task volume and exits 0 after 4 s; app
/// exits 7 at once if it starts before the marker exists.
const GATED: &str = r#"{"family":"gated","volumes":[{"name":"data"}],"containerDefinitions":[
    {"name":"init","image":"IMAGE","memory":32,"essential":false,
     "mountPoints":[{"sourceVolume":"data","containerPath":"/data"}],
     "entryPoint":["sh","-c"],"command":["sleep 4; echo ok > /data/ready"]},
    {"name":"app","image":"IMAGE","memory":32,
     "mountPoints":[{"sourceVolume":"data","containerPath":"/data"}],
     "dependsOn":[{"containerName":"init","condition":"SUCCESS"}],
     "entryPoint":["sh","-c"],"command":["test -f /data/ready || exit 7; exec sleep 3600"]}]}"#;

const FAILING_INIT: &str = r#"{"family":"failing-init","containerDefinitions":[
    {"name":"init","image":"IMAGE","memory":32,"essential":false,
     "entryPoint":["sh","-c"],"command":["sleep 1; exit 1"]},
    {"name":"app","image":"IMAGE","memory":32,
     "dependsOn":[{"containerName":"init","condition":"SUCCESS"}],
     "entryPoint":["sh","-c"],"command":["exec sleep 3600"]}]}"#;

/// db becomes healthy once /tmp/up exists (after 6 s; checks every 5 s);
/// it also writes /data/up, which app requires at its start.
const HEALTHY_DEP: &str = r#"{"family":"healthy-dep","volumes":[{"name":"data"}],"containerDefinitions":[
    {"name":"db","image":"IMAGE","memory":32,"startTimeout":60,
     "mountPoints":[{"sourceVolume":"data","containerPath":"/data"}],
     "entryPoint":["sh","-c"],"command":["sleep 6; touch /tmp/up /data/up; exec sleep 3600"],
     "healthCheck":{"command":["CMD-SHELL","test -f /tmp/up"],"interval":5,"timeout":2,"retries":3}},
    {"name":"app","image":"IMAGE","memory":32,
     "mountPoints":[{"sourceVolume":"data","containerPath":"/data"}],
     "dependsOn":[{"containerName":"db","condition":"HEALTHY"}],
     "entryPoint":["sh","-c"],"command":["test -f /data/up || exit 7; exec sleep 3600"]}]}"#;

const CYCLE: &str = r#"{"family":"cycle","containerDefinitions":[
    {"name":"a","image":"busybox","memory":32,"dependsOn":[{"containerName":"b","condition":"START"}]},
    {"name":"b","image":"busybox","memory":32,"dependsOn":[{"containerName":"a","condition":"START"}]}]}"#;

#[tokio::test(flavor = "multi_thread")]
async fn depends_on_gates_containers_and_stops_tasks_whose_dependency_fails() {
    let c = cluster().await;

    // A cycle is refused at registration, naming the path.
    let mut client = TaskDefinitionServiceClient::new(c.sched.authed_channel().await);
    let err = client
        .register_task_definition(RegisterTaskDefinitionRequest {
            task_definition_json: CYCLE.to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(
        err.message()
            .contains("containerDefinitions[0].dependsOn[0]")
            && err.message().contains("a -> b -> a"),
        "{}",
        err.message()
    );

    let gated = c.start(&c.register(GATED));
    let failing = c.start(&c.register(FAILING_INIT));
    let healthy = c.start(&c.register(HEALTHY_DEP));

    // While init runs, app waits and the task is PENDING.
    let t = c
        .until(&gated, Duration::from_secs(60), "init running", |t| {
            container(t, "init")["lastStatus"] == "RUNNING"
        })
        .await;
    assert_eq!(t["lastStatus"], "PENDING", "{t:#}");
    assert_eq!(container(&t, "app")["lastStatus"], "PENDING", "{t:#}");
    // init exits 0: app starts (and finds init's marker: it would exit 7).
    let t = c
        .until(&gated, Duration::from_secs(30), "RUNNING", |t| {
            t["lastStatus"] == "RUNNING"
        })
        .await;
    assert_eq!(container(&t, "init")["exitCode"], 0, "{t:#}");
    assert_eq!(container(&t, "app")["lastStatus"], "RUNNING", "{t:#}");
    // Had app started before the marker it would exit 7 at once; watch long
    // enough for that exit to be reported.
    c.holds(&gated, Duration::from_secs(5), "app did not exit", |t| {
        t["lastStatus"] == "RUNNING" && container(t, "app")["lastStatus"] == "RUNNING"
    })
    .await;

    // init exits 1: the task stops, the reason names both and the condition.
    let t = c
        .until(&failing, Duration::from_secs(60), "STOPPED", |t| {
            t["lastStatus"] == "STOPPED"
        })
        .await;
    assert_eq!(t["stopCode"], "TaskFailedToStart", "{t:#}");
    let reason = t["stoppedReason"].as_str().unwrap();
    assert!(
        reason.contains("\"app\"")
            && reason.contains("\"init\"")
            && reason.contains("SUCCESS")
            && reason.contains("exited with code 1"),
        "{reason}"
    );
    assert_eq!(container(&t, "init")["exitCode"], 1, "{t:#}");
    assert_eq!(container(&t, "app")["lastStatus"], "STOPPED", "{t:#}");
    assert!(
        container(&t, "app").get("exitCode").is_none(),
        "app never ran: {t:#}"
    );

    // A HEALTHY dependency: app waits for db's health check to pass.
    let t = c
        .until(&healthy, Duration::from_secs(60), "db running", |t| {
            container(t, "db")["lastStatus"] == "RUNNING"
        })
        .await;
    assert_eq!(t["lastStatus"], "PENDING", "{t:#}");
    assert_eq!(container(&t, "app")["lastStatus"], "PENDING", "{t:#}");
    assert_eq!(container(&t, "db")["healthStatus"], "UNKNOWN", "{t:#}");
    let t = c
        .until(&healthy, Duration::from_secs(40), "RUNNING", |t| {
            t["lastStatus"] == "RUNNING"
        })
        .await;
    assert_eq!(container(&t, "db")["healthStatus"], "HEALTHY", "{t:#}");
    assert_eq!(t["healthStatus"], "HEALTHY", "{t:#}");
    assert_eq!(container(&t, "app")["lastStatus"], "RUNNING", "{t:#}");
    // app would exit 7 at once without db's marker: watch for it.
    c.holds(&healthy, Duration::from_secs(5), "app did not exit", |t| {
        t["lastStatus"] == "RUNNING" && container(t, "app")["lastStatus"] == "RUNNING"
    })
    .await;
}

/// The file the check tests goes away 12 s after the start and comes back
/// at 29 s.
const FLAPPING: &str = r#"{"family":"flapping","containerDefinitions":[
    {"name":"web","image":"IMAGE","memory":32,
     "entryPoint":["sh","-c"],
     "command":["touch /tmp/ok; sleep 12; rm /tmp/ok; sleep 17; touch /tmp/ok; exec sleep 3600"],
     "healthCheck":{"command":["CMD-SHELL","if test -f /tmp/ok; then echo fine; else echo missing; exit 1; fi"],
                    "interval":5,"timeout":2,"retries":2,"startPeriod":0}}]}"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_health_check_turns_unhealthy_and_a_passing_one_healthy() {
    let c = cluster().await;
    let id = c.start(&c.register(FLAPPING));
    let t = c
        .until(&id, Duration::from_secs(60), "RUNNING", |t| {
            t["lastStatus"] == "RUNNING"
        })
        .await;
    // The container started before RUNNING was seen: its clock is ahead.
    let running_seen = Instant::now();
    assert_eq!(container(&t, "web")["healthStatus"], "UNKNOWN", "{t:#}");

    let t = c
        .until(&id, Duration::from_secs(20), "HEALTHY", |t| {
            container(t, "web")["healthStatus"] == "HEALTHY"
        })
        .await;
    assert_eq!(t["healthStatus"], "HEALTHY", "{t:#}");
    assert_eq!(container(&t, "web")["healthCheckOutput"], "fine\n", "{t:#}");

    let t = c
        .until(&id, Duration::from_secs(40), "UNHEALTHY", |t| {
            container(t, "web")["healthStatus"] == "UNHEALTHY"
        })
        .await;
    let unhealthy_after = running_seen.elapsed();
    // Removed at 12 s; unhealthy within interval × retries + timeout of
    // that (5 × 2 + 2), with 3 s for reporting and polling.
    assert!(
        unhealthy_after <= Duration::from_secs(12 + 10 + 2 + 3),
        "UNHEALTHY only {unhealthy_after:?} after RUNNING"
    );
    assert!(
        unhealthy_after >= Duration::from_secs(12),
        "UNHEALTHY before the file went: {unhealthy_after:?}"
    );
    assert_eq!(t["healthStatus"], "UNHEALTHY", "{t:#}");
    assert_eq!(
        container(&t, "web")["healthCheckOutput"],
        "missing\n",
        "{t:#}"
    );
    // ECS: an UNHEALTHY container does not stop a standalone task.
    assert_eq!(t["lastStatus"], "RUNNING", "{t:#}");

    // The file is back at 29 s: the next check passes.
    let t = c
        .until(&id, Duration::from_secs(30), "HEALTHY again", |t| {
            container(t, "web")["healthStatus"] == "HEALTHY"
        })
        .await;
    assert_eq!(t["healthStatus"], "HEALTHY", "{t:#}");
    assert_eq!(container(&t, "web")["healthCheckOutput"], "fine\n", "{t:#}");
}

/// `crash` runs 61 s (a full restartAttemptPeriod of 60 s) and exits 1, so
/// it is restarted in place; its second run finds its marker on the kept
/// root filesystem and exits 3, which is ignored. `ignored` runs as long
/// and exits 3: not restarted. `early` exits 1 at once: it did not run a
/// full period, so ECS does not restart it.
const RESTARTS: &str = r#"{"family":"restarts","containerDefinitions":[
    {"name":"web","image":"IMAGE","memory":32,"entryPoint":["sh","-c"],"command":["exec sleep 3600"]},
    {"name":"crash","image":"IMAGE","memory":32,"essential":false,
     "restartPolicy":{"enabled":true,"ignoredExitCodes":[3],"restartAttemptPeriod":60},
     "entryPoint":["sh","-c"],
     "command":["if test -f /ran-once; then echo second run; exit 3; fi; touch /ran-once; sleep 61; exit 1"]},
    {"name":"ignored","image":"IMAGE","memory":32,"essential":false,
     "restartPolicy":{"enabled":true,"ignoredExitCodes":[3],"restartAttemptPeriod":60},
     "entryPoint":["sh","-c"],"command":["sleep 61; exit 3"]},
    {"name":"early","image":"IMAGE","memory":32,"essential":false,
     "restartPolicy":{"enabled":true,"restartAttemptPeriod":60},
     "entryPoint":["sh","-c"],"command":["exit 1"]}]}"#;

#[tokio::test(flavor = "multi_thread")]
async fn the_restart_policy_restarts_crashing_containers_by_ecs_rules() {
    let c = cluster().await;
    let id = c.start(&c.register(RESTARTS));
    c.until(&id, Duration::from_secs(60), "RUNNING", |t| {
        t["lastStatus"] == "RUNNING"
    })
    .await;
    let t = c
        .until(&id, Duration::from_secs(20), "early stopped", |t| {
            container(t, "early")["lastStatus"] == "STOPPED"
        })
        .await;
    assert_eq!(container(&t, "early")["exitCode"], 1, "{t:#}");
    assert!(
        container(&t, "early").get("restartCount").is_none(),
        "{t:#}"
    );

    let t = c
        .until(&id, Duration::from_secs(90), "crash restarted", |t| {
            container(t, "crash")["restartCount"] == 1
        })
        .await;
    assert_eq!(t["lastStatus"], "RUNNING", "{t:#}");
    // Its second run exits 3 (ignored) at once: no more restarts.
    let t = c
        .until(&id, Duration::from_secs(30), "crash stopped", |t| {
            container(t, "crash")["lastStatus"] == "STOPPED"
                && container(t, "ignored")["lastStatus"] == "STOPPED"
        })
        .await;
    assert_eq!(container(&t, "crash")["exitCode"], 3, "{t:#}");
    assert_eq!(container(&t, "crash")["restartCount"], 1, "{t:#}");
    assert_eq!(container(&t, "ignored")["exitCode"], 3, "{t:#}");
    assert!(
        container(&t, "ignored").get("restartCount").is_none(),
        "{t:#}"
    );
    let logs = ok_stdout(&c.sched.ctl(&["task", "logs", &id, "--container", "crash"]));
    assert!(logs.contains("second run"), "{logs}");
    // A wrong restart would follow the exit at once: watch for one.
    c.holds(&id, Duration::from_secs(6), "no more restarts", |t| {
        t["lastStatus"] == "RUNNING"
            && container(t, "crash")["lastStatus"] == "STOPPED"
            && container(t, "crash")["restartCount"] == 1
            && container(t, "ignored")["lastStatus"] == "STOPPED"
            && container(t, "ignored").get("restartCount").is_none()
    })
    .await;
}
