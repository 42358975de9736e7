//! The task metadata endpoint v4 and the host-port environment, on real
//! containerd + runc + CNI: busybox containers read
//! `$ECS_CONTAINER_METADATA_URI_V4` with `wget` from inside bridge and
//! awsvpc tasks, a second task is refused another task's metadata, the rate
//! limit answers 429, `$BERTH_HOST_PORT_80` matches what `berthctl task
//! describe` shows, and so does an awsvpc task's address (its ENI
//! attachment, what discovery tools read). Root is required (network namespaces, cgroups, mounts):
//! run via `scripts/test` as root; without root the tests fail with that
//! message.
//!
//! The cluster has its own containerd, registry, bridge, subnet, cgroup
//! parent and host-port range (`free_slot` block 217), so it meets no other
//! test; the endpoint listens on its bridge's gateway address.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)] // tests fail loudly by design; Drop polls with std time

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use berth_tests::cluster::{host_port, tail};
use berth_tests::{eventually, ok_stdout, Cluster, ClusterOptions};
use serde_json::Value;

async fn cluster() -> Cluster {
    let opts = ClusterOptions {
        bridge_prefix: "bm".to_owned(),
        stop_timeout: "2s".to_owned(),
        agent_env: vec![("BERTH_TASK_HOST_IP".to_owned(), "192.0.2.7".to_owned())],
        ..ClusterOptions::default()
    };
    Cluster::start_in(217, opts).await
}

/// Registers `json` and starts it; returns the task id.
fn run(c: &Cluster, json: &str) -> String {
    c.start(&c.register(json))
}

/// The text after `MARKER ` on the first log line of `task` that has it.
async fn logged(c: &Cluster, task: &str, marker: &str) -> String {
    let tag = format!("{marker} ");
    eventually(
        Duration::from_secs(60),
        &format!("{marker} in the logs of {task}"),
        || async {
            let logs = ok_stdout(&c.sched.ctl(&["task", "logs", task]));
            logs.lines()
                .find_map(|l| l.split_once(&tag).map(|(_, v)| v.trim().to_owned()))
                .ok_or_else(|| {
                    format!(
                        "logs: {logs}\ntask: {}\nagent log:\n{}",
                        c.describe(task),
                        tail(&c.agent.log_text(), 30)
                    )
                })
        },
    )
    .await
}

async fn logged_json(c: &Cluster, task: &str, marker: &str) -> Value {
    let text = logged(c, task, marker).await;
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{marker}: {e}: {text}"))
}

/// A shell loop: GET `url` until it answers, printing `MARKER <body>`
/// (newlines removed), or `MARKER ERROR <wget's message>` after 10 tries.
fn fetch(marker: &str, url: &str) -> String {
    format!(
        "i=0; while :; do if out=$(wget -qO- {url} 2>&1); then echo \"{marker} $(echo \"$out\" | tr -d '\\n')\"; break; fi; \
         i=$((i+1)); if [ $i -ge 10 ]; then echo \"{marker} ERROR $out\"; break; fi; sleep 1; done"
    )
}

/// A definition of one busybox container running `script`.
fn one_container(family: &str, mode: &str, ports: &str, script: &str) -> String {
    format!(
        r#"{{"family":"{family}","networkMode":"{mode}","containerDefinitions":[{{
          "name":"web","image":"IMAGE","memory":64,"portMappings":[{ports}],
          "entryPoint":["sh","-c"],"command":[{}]}}]}}"#,
        serde_json::to_string(script).unwrap()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn containers_read_their_own_metadata_and_host_ports() {
    let c = cluster().await;
    let script = format!(
        "echo \"ENV port80=$BERTH_HOST_PORT_80 named=$BERTH_PORT_HTTP_MAIN host=$BERTH_HOST_IP \
         uri=$ECS_CONTAINER_METADATA_URI_V4 v3=$ECS_CONTAINER_METADATA_URI \"; {}; {}; exec sleep 600",
        fetch("TASKJSON", "$ECS_CONTAINER_METADATA_URI_V4/task"),
        fetch("STATSJSON", "$ECS_CONTAINER_METADATA_URI_V4/stats"),
    );
    let def = one_container(
        "meta-bridge",
        "bridge",
        r#"{"containerPort":80,"hostPort":0,"name":"http-main"}"#,
        &script,
    );
    let a = run(&c, &def);

    // Host ports in the environment: what `task describe` shows.
    let env = logged(&c, &a, "ENV").await;
    let t = c.describe(&a);
    let port = host_port(&t, 80);
    assert!(
        env.contains(&format!("port80={port} ")) && env.contains(&format!("named={port} ")),
        "{env} vs hostPort {port}"
    );
    assert!(env.contains("host=192.0.2.7 "), "{env}");
    let uri = env
        .split_whitespace()
        .find_map(|w| w.strip_prefix("uri="))
        .unwrap()
        .to_owned();
    assert!(
        uri.starts_with(&format!("http://{}:51679/v4/", c.gateway)),
        "{uri}"
    );
    let metadata_id = uri.rsplit('/').next().unwrap().to_owned();
    assert_eq!(metadata_id.len(), 32, "a random id, not the name: {uri}");
    assert!(env.contains(&format!("v3=http://{}:51679/v3/{metadata_id}", c.gateway)));

    // The task's JSON, read from inside: its own DockerId and host port.
    let task = logged_json(&c, &a, "TASKJSON").await;
    assert_eq!(task["TaskARN"], t["taskArn"], "{task}");
    assert_eq!(task["Family"], "meta-bridge");
    assert_eq!(task["LaunchType"], "EC2");
    let web = &task["Containers"][0];
    assert_eq!(web["Name"], "web");
    assert_eq!(web["DockerId"], t["containers"][0]["runtimeId"], "{task}");
    assert_eq!(web["Ports"][0]["ContainerPort"], 80);
    assert_eq!(web["Ports"][0]["HostPort"], port, "{task}");
    assert_eq!(web["Networks"][0]["NetworkMode"], "bridge");
    let ip = web["Networks"][0]["IPv4Addresses"][0].as_str().unwrap();
    assert!(
        ip.starts_with(c.gateway.trim_end_matches(".1")),
        "{ip} on the bridge"
    );

    // Stats from the container's cgroup, in Docker's shape.
    let stats = logged_json(&c, &a, "STATSJSON").await;
    assert!(
        stats["memory_stats"]["usage"].as_u64().unwrap() > 0,
        "{stats}"
    );
    assert!(
        stats["cpu_stats"]["cpu_usage"]["total_usage"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert_eq!(stats["id"], t["containers"][0]["runtimeId"]);

    // A second task (bridge) and an awsvpc task, each given the first
    // task's URI: each reads its own metadata and is refused the other's.
    let prying = |family: &str, mode: &str| {
        let script = format!(
            "echo \"ADDR $(ip -4 addr show eth0 | sed -n 's/.*inet \\([0-9.]*\\).*/\\1/p')\"; {}; {}; exec sleep 600",
            fetch("OWN", "$ECS_CONTAINER_METADATA_URI_V4"),
            fetch("OTHER", &format!("{uri}/task")),
        );
        one_container(family, mode, "", &script)
    };
    let b = run(&c, &prying("meta-pry", "bridge"));
    let v = run(&c, &prying("meta-vpc", "awsvpc"));
    for task in [&b, &v] {
        let own = logged_json(&c, task, "OWN").await;
        let d = c.describe(task);
        assert_eq!(own["DockerId"], d["containers"][0]["runtimeId"], "{own}");
        let other = logged(&c, task, "OTHER").await;
        assert!(
            other.starts_with("ERROR") && other.contains("403"),
            "another task's metadata must be refused: {other}"
        );
    }
    let own_vpc = logged_json(&c, &v, "OWN").await;
    assert_eq!(own_vpc["Networks"][0]["NetworkMode"], "awsvpc", "{own_vpc}");

    // What ECS-aware discovery (Traefik, Prometheus) reads: the awsvpc
    // task's ENI attachment and network interface carry the address the
    // task really has on eth0; a bridge task shows neither.
    let vpc_ip = logged(&c, &v, "ADDR").await;
    assert!(
        vpc_ip.parse::<std::net::Ipv4Addr>().is_ok(),
        "eth0's address inside the task: {vpc_ip:?}"
    );
    assert_eq!(own_vpc["Networks"][0]["IPv4Addresses"][0], vpc_ip.as_str());
    let d = c
        .until(&v, Duration::from_secs(30), "an ENI attachment", |t| {
            t["attachments"].as_array().is_some_and(|a| !a.is_empty())
        })
        .await;
    let eni = &d["attachments"][0];
    assert_eq!(eni["type"], "ElasticNetworkInterface", "{d}");
    assert_eq!(eni["status"], "ATTACHED", "{d}");
    let detail = eni["details"]
        .as_array()
        .unwrap()
        .iter()
        .find(|kv| kv["name"] == "privateIPv4Address")
        .unwrap_or_else(|| panic!("no privateIPv4Address in {eni}"));
    assert_eq!(detail["value"], vpc_ip.as_str(), "{d}");
    let nic = &d["containers"][0]["networkInterfaces"][0];
    assert_eq!(nic["privateIpv4Address"], vpc_ip.as_str(), "{d}");
    assert_eq!(nic["attachmentId"], eni["id"], "{d}");
    let bridge_ip = logged(&c, &b, "ADDR").await;
    assert!(
        bridge_ip.parse::<std::net::Ipv4Addr>().is_ok(),
        "{bridge_ip:?}"
    );
    let d = c.describe(&b);
    assert_eq!(d["attachments"], serde_json::json!([]), "{d}");
    assert_eq!(
        d["containers"][0]["networkInterfaces"],
        serde_json::json!([]),
        "{d}"
    );

    // ECS's rate limit: bursts of 60 per source address, then 429 (here
    // from the host's own address on the bridge; unknown ids still count).
    let mut codes = Vec::new();
    for _ in 0..80 {
        codes.push(http_status(&c.gateway, 51679, "/v4/not-an-id"));
    }
    assert_eq!(codes[0], 404, "{codes:?}");
    assert!(codes.contains(&429), "{codes:?}");
    assert!(
        codes.iter().filter(|s| **s == 429).count() >= 10,
        "{codes:?}"
    );
}

fn http_status(host: &str, port: u16, path: &str) -> u16 {
    let mut s = TcpStream::connect((host, port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"))
}
