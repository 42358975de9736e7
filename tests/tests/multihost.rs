//! Several hosts on one machine (the `berth_tests::multihost` harness): each
//! its own network namespace, containerd and agent on a test bridge, with a
//! real scheduler, registry, runc and CNI. Hosts join and serve on their own
//! addresses; a killed host stops answering and comes back with its identity;
//! a host cut off from the scheduler keeps its task running and rejoins;
//! drained instances take no new tasks. Root is required: run via
//! `scripts/test` as root; without root the tests fail with that message.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::time::Duration;

use berth_tests::multihost::{Hosts, HEARTBEAT_TTL};
use berth_tests::{eventually, ok_stdout};
use serde_json::Value;

/// busybox httpd on container port 80, on a dynamic host port (bridge mode).
const HTTPD: &str = r#"{"family":"mh-httpd","networkMode":"bridge","containerDefinitions":[{
    "name":"web","image":"IMAGE","memory":32,"essential":true,
    "entryPoint":["sh","-c"],
    "command":["mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www"],
    "portMappings":[{"containerPort":80,"hostPort":0}]}]}"#;

fn host_port(task: &Value) -> u16 {
    task["containers"][0]["networkBindings"]
        .as_array()
        .and_then(|b| b.iter().find(|b| b["containerPort"] == 80))
        .and_then(|b| b["hostPort"].as_u64())
        .unwrap_or_else(|| panic!("no binding for port 80 in {task}")) as u16
}

/// Waits until host `i` answers on `port` with a 200.
async fn until_serving(hosts: &Hosts, i: usize, port: u16) -> String {
    let h = hosts.host(i);
    eventually(
        Duration::from_secs(15),
        &format!("host {i} ({}) to serve on port {port}", h.addr()),
        || async {
            let r = h.get(port, "/")?;
            if r.starts_with("HTTP/1.0 200") || r.starts_with("HTTP/1.1 200") {
                Ok(r)
            } else {
                Err(r)
            }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn hosts_serve_on_their_addresses_survive_a_kill_and_a_cut() {
    let mut hosts = Hosts::start(3).await;

    // Three connected instances, each with its own host and identity.
    let v = hosts.ctl_json(&["instance", "ls"]);
    let listed = v["containerInstances"].as_array().unwrap();
    assert_eq!(listed.len(), 3, "{v}");
    for i in 0..3 {
        let ci = hosts.instance(i);
        assert_eq!(ci["agentConnected"], true, "{ci}");
        assert_eq!(ci["status"], "ACTIVE", "{ci}");
        assert!(
            listed
                .iter()
                .any(|l| l["containerInstanceArn"] == ci["containerInstanceArn"]),
            "{ci} not in instance ls"
        );
    }
    let names: std::collections::BTreeSet<String> = (0..3)
        .map(|i| {
            hosts.instance(i)["ec2InstanceId"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(names.len(), 3, "distinct host names: {names:?}");
    let addrs: std::collections::BTreeSet<_> = hosts.hosts().iter().map(|h| h.addr()).collect();
    assert_eq!(addrs.len(), 3);

    // An httpd on each host, answering on that host's address only.
    let td = hosts.register(HTTPD);
    let tasks: Vec<String> = (0..3).map(|i| hosts.start_task(&td, i)).collect();
    let mut ports = Vec::new();
    for (i, t) in tasks.iter().enumerate() {
        let d = hosts.until_task_status(t, "RUNNING").await;
        assert!(
            d["containerInstanceArn"]
                .as_str()
                .unwrap()
                .ends_with(hosts.host(i).instance()),
            "{d}"
        );
        let port = host_port(&d);
        until_serving(&hosts, i, port).await;
        ports.push(port);
    }

    // Kill host 1: it shows disconnected within the TTL (plus polling), its
    // port stops answering, the others keep serving.
    let killed_at = tokio::time::Instant::now();
    hosts.host_mut(1).kill();
    assert!(
        hosts.host(1).get(ports[1], "/").is_err(),
        "a dead host answered"
    );
    hosts.until_connected(1, false).await;
    let took = killed_at.elapsed();
    assert!(
        took < HEARTBEAT_TTL + Duration::from_secs(5),
        "disconnected after {took:?}"
    );
    for i in [0, 2] {
        until_serving(&hosts, i, ports[i]).await;
        assert_eq!(hosts.instance(i)["agentConnected"], true);
    }

    // Bring it back: same instance id, connected again; its old task died
    // with the machine and is reported STOPPED, never restarted behind the
    // scheduler's back.
    let id1 = hosts.host(1).instance().to_owned();
    hosts.host_mut(1).restart();
    let ci = hosts.until_connected(1, true).await;
    assert!(ci["containerInstanceArn"].as_str().unwrap().ends_with(&id1));
    let v = hosts.ctl_json(&["instance", "ls"]);
    assert_eq!(v["containerInstances"].as_array().unwrap().len(), 3, "{v}");
    hosts.until_task_status(&tasks[1], "STOPPED").await;

    // Cut host 2 off: disconnected, yet its task keeps answering on its
    // address; heal: connected again, the same task still RUNNING.
    hosts.host_mut(2).cut();
    hosts.until_connected(2, false).await;
    // For a few seconds: still cut off, still serving.
    for _ in 0..6 {
        until_serving(&hosts, 2, ports[2]).await;
        assert_eq!(hosts.instance(2)["agentConnected"], false);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    hosts.host_mut(2).heal();
    hosts.until_connected(2, true).await;
    let t2 = hosts.task(&tasks[2]);
    assert_eq!(t2["lastStatus"], "RUNNING", "{t2}");
    assert_eq!(t2["desiredStatus"], "RUNNING", "{t2}");
    assert_eq!(host_port(&t2), ports[2]);
    let page = hosts.get_task(&t2, 80, "/").unwrap();
    assert!(
        page.starts_with("HTTP/1.1 200") || page.starts_with("HTTP/1.0 200"),
        "{page}"
    );
    // Host 0 never noticed any of it.
    assert_eq!(hosts.task(&tasks[0])["lastStatus"], "RUNNING");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drained_instance_takes_no_new_tasks_and_keeps_its_own() {
    let hosts = Hosts::start(1).await;
    let td = hosts.register(HTTPD);
    let running = hosts.start_task(&td, 0);
    let port = host_port(&hosts.until_task_status(&running, "RUNNING").await);
    let id = hosts.host(0).instance().to_owned();

    let out = hosts.sched.ctl(&["instance", "drain", &id, "-o", "json"]);
    let v: Value = serde_json::from_str(&ok_stdout(&out)).unwrap();
    assert_eq!(v["containerInstances"][0]["status"], "DRAINING", "{v}");
    assert_eq!(hosts.instance(0)["status"], "DRAINING");
    let listed = hosts.ctl_json(&["instance", "ls", "--status", "DRAINING"]);
    assert_eq!(listed["containerInstances"].as_array().unwrap().len(), 1);

    // No new placement, with ECS's reason.
    let out = hosts.try_start_task(&td, 0);
    assert!(!out.status.success(), "StartTask on a draining instance");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("DRAINING"), "{err}");
    // The standalone task already there is left alone.
    until_serving(&hosts, 0, port).await;
    assert_eq!(hosts.task(&running)["desiredStatus"], "RUNNING");

    // Unknown instances are failures; the known one still changes.
    let out = hosts
        .sched
        .ctl(&["instance", "activate", &id, "nope", "-o", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["containerInstances"][0]["status"], "ACTIVE", "{v}");
    assert_eq!(v["failures"][0]["reason"], "MISSING", "{v}");

    let second = hosts.start_task(&td, 0);
    hosts.until_task_status(&second, "RUNNING").await;

    // drain names at least one instance.
    let out = hosts.sched.ctl(&["instance", "drain"]);
    assert_eq!(out.status.code(), Some(2), "usage error");
}
