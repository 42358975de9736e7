//! `berthctl task` against a real scheduler process, with a fake agent
//! (the real AgentService protocol, no containerd) standing in for a host:
//! start, ls, describe, logs, stop, and tasks surviving `kill -9`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::time::Duration;

use berth_tests::fake_agent::{FakeAgent, FakeHost};
use berth_tests::{eventually, json, ok_stdout, Scheduler};

const WEB: &str = r#"{"family":"web","containerDefinitions":[
    {"name":"web","image":"nginx","memory":128,"portMappings":[{"containerPort":80}]},
    {"name":"sidecar","image":"busybox","memory":32}]}"#;
const FIXED: &str = r#"{"family":"fixed","containerDefinitions":[{"name":"app","image":"nginx",
    "memory":64,"portMappings":[{"containerPort":80,"hostPort":8080}]}]}"#;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

// Multi-threaded: berthctl runs as a blocking child process while the fake
// agent must keep answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_lifecycle_through_berthctl() {
    let dir = tempfile::tempdir().unwrap();
    let s = Scheduler::start(&dir.path().join("data")).await;
    ok_stdout(&s.ctl_stdin(&["taskdef", "register", "-f", "-"], WEB));
    ok_stdout(&s.ctl_stdin(&["taskdef", "register", "-f", "-"], FIXED));
    let agent = FakeAgent::join(&s.agent_target().await, "default", FakeHost::default())
        .await
        .autopilot();

    // Two tasks on one agent: two ids, two different host ports.
    let out = ok_stdout(&s.ctl(&[
        "task",
        "start",
        "--taskdef",
        "web",
        "--instance",
        &agent.id,
        "--count",
        "2",
    ]));
    let ids: Vec<String> = out.lines().map(str::to_owned).collect();
    assert_eq!(ids.len(), 2, "{out}");
    assert!(ids.iter().all(|i| i.len() == 32), "{out}");
    let d = eventually(Duration::from_secs(10), "both tasks RUNNING", || async {
        let d = json(&s.ctl(&["task", "describe", &ids[0], &ids[1], "-o", "json"]));
        let running = d["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["lastStatus"] == "RUNNING");
        if running {
            Ok(d)
        } else {
            Err(d.to_string())
        }
    })
    .await;
    let port = |i: usize| d["tasks"][i]["containers"][0]["networkBindings"][0]["hostPort"].clone();
    assert!(port(0).is_u64() && port(1).is_u64(), "{d}");
    assert_ne!(port(0), port(1));
    assert_eq!(d["failures"], serde_json::json!([]));
    let t = &d["tasks"][0];
    assert_eq!(t["desiredStatus"], "RUNNING");
    assert_eq!(t["memory"], "160");
    assert_eq!(t["group"], "family:web");
    // As the aws CLI prints timestamps: ISO 8601 in UTC with +00:00.
    assert!(t["startedAt"].as_str().unwrap().ends_with("+00:00"), "{t}");
    assert_eq!(t["containers"][0]["runtimeId"], format!("{}-web", ids[0]));

    // A static host port already taken: refused with the reason, exit 1.
    ok_stdout(&s.ctl(&[
        "task",
        "start",
        "--taskdef",
        "fixed",
        "--instance",
        &agent.id,
    ]));
    let out = s.ctl(&[
        "task",
        "start",
        "--taskdef",
        "fixed",
        "--instance",
        &agent.id,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("RESOURCE:PORTS") && err.contains("8080/tcp"),
        "{err}"
    );

    // An INACTIVE revision cannot run.
    ok_stdout(&s.ctl(&["taskdef", "deregister", "fixed:1"]));
    let out = s.ctl(&[
        "task",
        "start",
        "--taskdef",
        "fixed:1",
        "--instance",
        &agent.id,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("TaskDefinition is inactive"),
        "{}",
        stderr(&out)
    );

    // ls: the table and its columns.
    let ls = ok_stdout(&s.ctl(&["task", "ls"]));
    let header = ls.lines().next().unwrap();
    for col in [
        "TASK", "TASKDEF", "INSTANCE", "LAST", "DESIRED", "CPU", "MEMORY", "PORTS", "STARTED",
    ] {
        assert!(header.contains(col), "{ls}");
    }
    assert_eq!(ls.lines().count(), 4, "header + 3 tasks: {ls}");
    let ls = ok_stdout(&s.ctl(&["task", "ls", "--family", "web"]));
    assert_eq!(ls.lines().count(), 3, "{ls}");

    // logs: two containers, so each line names its container.
    let logs = ok_stdout(&s.ctl(&["task", "logs", &ids[0]]));
    assert_eq!(
        logs,
        "web | web line 1\nweb | web line 2\nsidecar | sidecar line 1\nsidecar | sidecar line 2\n"
    );
    let logs = ok_stdout(&s.ctl(&["task", "logs", &ids[0], "--container", "web", "--tail", "5"]));
    assert_eq!(logs, "web line 1\nweb line 2\n");

    // stop: STOPPED once the agent reports it, with the user's reason.
    let out = ok_stdout(&s.ctl(&["task", "stop", &ids[0], "--reason", "rollout"]));
    assert!(out.contains("desired STOPPED"), "{out}");
    let t = eventually(Duration::from_secs(10), "task STOPPED", || async {
        let d = json(&s.ctl(&["task", "describe", &ids[0], "-o", "json"]));
        let t = d["tasks"][0].clone();
        if t["lastStatus"] == "STOPPED" {
            Ok(t)
        } else {
            Err(t.to_string())
        }
    })
    .await;
    assert_eq!(t["stopCode"], "UserInitiated");
    assert_eq!(t["stoppedReason"], "rollout");
    assert_eq!(t["containers"][0]["exitCode"], 0);
    let ls = ok_stdout(&s.ctl(&["task", "ls", "--desired-status", "STOPPED"]));
    assert!(ls.contains(&ids[0]), "{ls}");

    // The instance counts what its tasks hold.
    let i = json(&s.ctl(&["instance", "describe", &agent.id, "-o", "json"]));
    let ci = &i["containerInstances"][0];
    assert_eq!(ci["runningTasksCount"], 2, "{ci}");
    let memory = ci["remainingResources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "MEMORY")
        .unwrap()["integerValue"]
        .clone();
    assert_eq!(memory, 1024 - 160 - 64);

    // Logs of a task whose agent is gone: a clear error, not "unreachable".
    let agent_id = agent.id.clone();
    drop(agent);
    berth_tests::until_connected(&s, &agent_id, false, Duration::from_secs(10)).await;
    let out = s.ctl(&["task", "logs", &ids[1]]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not connected"), "{}", stderr(&out));
    let out = s.ctl(&["task", "describe", "ffffffffffffffffffffffffffffffff"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("MISSING"), "{}", stderr(&out));
}

// Multi-threaded: berthctl runs as a blocking child process while the fake
// agent must keep answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn started_tasks_and_reservations_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Scheduler::start(&dir.path().join("data")).await;
    ok_stdout(&s.ctl_stdin(&["taskdef", "register", "-f", "-"], FIXED));
    let agent = FakeAgent::join(&s.agent_target().await, "default", FakeHost::default()).await;
    let out = ok_stdout(&s.ctl(&[
        "task",
        "start",
        "--taskdef",
        "fixed",
        "--instance",
        &agent.id,
    ]));
    let id = out.trim().to_owned();
    let (agent_id, agent_arn, cert) = (agent.id.clone(), agent.arn.clone(), agent.cert.clone());
    // Killed right after the acknowledgement.
    s.kill9();
    drop(agent);
    s.restart().await;
    let d = json(&s.ctl(&["task", "describe", &id, "-o", "json"]));
    assert_eq!(d["tasks"][0]["desiredStatus"], "RUNNING", "{d}");
    let i = json(&s.ctl(&["instance", "ls", "-o", "json"]));
    let ci = &i["containerInstances"][0];
    let ports = ci["remainingResources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "PORTS")
        .unwrap()["stringSetValue"]
        .clone();
    assert!(ports.as_array().unwrap().contains(&"8080".into()), "{ci}");
    // The reconnected agent gets the task in its desired set, with its
    // port, and the reservation still holds.
    let agent = FakeAgent::reconnect(
        &s.agent_target().await,
        agent_id.clone(),
        agent_arn,
        cert,
        FakeHost::default(),
    )
    .await;
    let d = agent.desired_where(|d| d.tasks.len() == 1).await;
    assert!(d.tasks[0].task_arn.ends_with(&id));
    assert_eq!(d.tasks[0].ports[0].host_port, 8080);
    let out = s.ctl(&[
        "task",
        "start",
        "--taskdef",
        "fixed",
        "--instance",
        &agent_id,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("RESOURCE:PORTS"), "{}", stderr(&out));
}
