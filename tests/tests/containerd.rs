//! Tasks on real containerd + runc + CNI: a scheduler, an agent with its own
//! containerd, and a local registry serving busybox images built by the
//! testkit. Root is required (network namespaces, cgroups, mounts): run via
//! `scripts/test` as root; without root the tests fail with that message.
//!
//! Each test has its own containerd, registry, bridge, subnet, cgroup parent
//! and host-port range (`berth_tests::Cluster` in `free_slot` block 213), so
//! tests run in parallel without meeting.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)] // tests fail loudly by design; Drop polls with std time

use std::time::Duration;

use berth_tests::cluster::{host_port, http_get, tail};
use berth_tests::{eventually, json, ok_stdout, until_connected, Cluster, ClusterOptions};

/// This file's `free_slot` block.
const BLOCK: u8 = 213;

async fn cluster_with(
    registry_auth: Option<(&str, &str)>,
    extra_env: &[(&str, String)],
) -> Cluster {
    let opts = ClusterOptions {
        registry_auth: registry_auth.map(|(u, p)| (u.to_owned(), p.to_owned())),
        agent_env: extra_env
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        ..ClusterOptions::default()
    };
    Cluster::start_in(BLOCK, opts).await
}

async fn cluster() -> Cluster {
    cluster_with(None, &[]).await
}

const HTTPD: &str = r#"{"family":"httpd","containerDefinitions":[{
    "name":"web","image":"IMAGE","memory":64,"essential":true,
    "entryPoint":["sh","-c"],
    "command":["mkdir -p /www && echo hello-from-berth > /www/index.html && echo started && exec httpd -f -v -p 8080 -h /www"],
    "portMappings":[{"containerPort":8080,"hostPort":0}],
    "dockerLabels":{"traefik.enable":"true","com.amazonaws.ecs.cluster":"spoofed"}}]}"#;

#[tokio::test(flavor = "multi_thread")]
async fn httpd_task_serves_on_its_dynamic_host_port() {
    let c = cluster().await;
    let td = c.register(HTTPD);
    let a = c.start(&td);
    let b = c.start(&td);
    let ta = c.until_status(&a, "RUNNING").await;
    let tb = c.until_status(&b, "RUNNING").await;
    let (pa, pb) = (host_port(&ta, 8080), host_port(&tb, 8080));
    assert_ne!(pa, pb, "two tasks on one agent get different host ports");
    for p in [pa, pb] {
        let body = eventually(Duration::from_secs(10), "the page", || async {
            http_get(p)
        })
        .await;
        assert!(body.contains("hello-from-berth"), "{body}");
    }
    assert!(ta["containers"][0]["runtimeId"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));

    // dockerLabels are the containerd container's labels, as Docker makes
    // them; Berth's and the ECS agent's own labels win.
    let runtime_id = ta["containers"][0]["runtimeId"].as_str().unwrap();
    let info = c.ctd.ctr_in("berth", &["containers", "info", runtime_id]);
    let info: serde_json::Value = serde_json::from_slice(&info.stdout)
        .unwrap_or_else(|e| panic!("ctr containers info: {e}: {info:?}"));
    let labels = &info["Labels"];
    assert_eq!(labels["traefik.enable"], "true", "{info}");
    assert_eq!(labels["com.amazonaws.ecs.cluster"], "default", "{info}");
    assert_eq!(labels["berth.task-arn"], ta["taskArn"], "{info}");

    // Logs come back through the scheduler.
    let logs = ok_stdout(&c.sched.ctl(&["task", "logs", &a]));
    assert!(logs.contains("started"), "{logs}");

    // A static host port already taken is refused by the scheduler.
    let fixed = HTTPD
        .replace(r#""hostPort":0"#, &format!(r#""hostPort":{pa}"#))
        .replace("\"httpd\"", "\"fixed\"");
    let td2 = c.register(&fixed);
    let out = c.sched.ctl(&[
        "task",
        "start",
        "--taskdef",
        &td2,
        "--instance",
        &c.instance,
    ]);
    assert!(!out.status.success());
    let err =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        err.contains("RESOURCE:PORTS") && err.contains(&format!("{pa}/tcp")),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn essential_exit_stops_the_task_and_non_essential_does_not() {
    let c = cluster().await;
    let td = c.register(
        r#"{"family":"exit","containerDefinitions":[
        {"name":"main","image":"IMAGE","memory":32,"entryPoint":["sh","-c"],"command":["echo hello; sleep 4; echo bye; exit 3"]},
        {"name":"side","image":"IMAGE","memory":32,"essential":false,"entryPoint":["sh","-c"],"command":["exit 0"]}]}"#,
    );
    let id = c.start(&td);
    c.until_status(&id, "RUNNING").await;
    // `task logs --follow` streams what comes later and ends when the task has stopped.
    let follow = std::process::Command::new(berth_tests::bin("berthctl"))
        .args(["task", "logs", &id, "--container", "main", "--follow"])
        .env("BERTH_ENDPOINT", c.sched.endpoint())
        .env("BERTH_CA_CERT", c.sched.ca_path())
        .env("BERTH_TOKEN", &c.sched.admin_token)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The sidecar exits at once; the task stays RUNNING.
    let t = eventually(Duration::from_secs(20), "sidecar STOPPED", || async {
        let t = c.describe(&id);
        let side = t["containers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == "side")
            .cloned()
            .unwrap();
        if side["lastStatus"] == "STOPPED" {
            Ok(t)
        } else {
            Err(t.to_string())
        }
    })
    .await;
    assert_eq!(t["lastStatus"], "RUNNING");
    let t = c.until_status(&id, "STOPPED").await;
    assert_eq!(t["stopCode"], "EssentialContainerExited");
    let main = t["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "main")
        .cloned()
        .unwrap();
    assert_eq!(main["exitCode"], 3);
    let out = tokio::task::spawn_blocking(move || follow.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("hello") && text.contains("bye"),
        "followed output: {text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_limits_are_enforced_and_oom_is_reported() {
    let c = cluster().await;
    let td = c.register(
        r#"{"family":"oom","memory":"128","containerDefinitions":[
        {"name":"hog","image":"IMAGE","memory":32,"entryPoint":["sh","-c"],
         "command":["sleep 1; x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived"]}]}"#,
    );
    let id = c.start(&td);
    c.until_status(&id, "RUNNING").await;
    // The task-level limit shows in the task's cgroup (v1 here).
    let limit = std::fs::read_to_string(format!(
        "/sys/fs/cgroup/memory/{}/{id}/memory.limit_in_bytes",
        c.cgroup_parent
    ));
    if let Ok(l) = limit {
        assert_eq!(l.trim(), (128u64 << 20).to_string());
    } else {
        let v2 = std::fs::read_to_string(format!(
            "/sys/fs/cgroup/{}/{id}/memory.max",
            c.cgroup_parent
        ))
        .unwrap();
        assert_eq!(v2.trim(), (128u64 << 20).to_string());
    }
    let t = c.until_status(&id, "STOPPED").await;
    let reason = t["containers"][0]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        reason.starts_with("OutOfMemoryError"),
        "reason {reason:?} in {t}"
    );
    assert_eq!(t["stopCode"], "EssentialContainerExited");
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_sends_sigterm_first_and_cleanup_leaves_nothing() {
    let c = cluster().await;
    let marker_dir = tempfile::tempdir().unwrap();
    let td = c.register(&format!(
        r#"{{"family":"trap","volumes":[{{"name":"out","host":{{"sourcePath":"{}"}}}}],
        "containerDefinitions":[{{"name":"app","image":"IMAGE","memory":32,
         "mountPoints":[{{"sourceVolume":"out","containerPath":"/out"}}],
         "portMappings":[{{"containerPort":9000}}],
         "entryPoint":["sh","-c"],
         "command":["trap 'echo got-sigterm > /out/marker; exit 0' TERM; while true; do sleep 0.2; done"]}}]}}"#,
        marker_dir.path().display()
    ));
    let id = c.start(&td);
    let t = c.until_status(&id, "RUNNING").await;
    let port = host_port(&t, 9000);
    // The task's cgroup, wherever this host keeps it (v1 per controller, v2
    // unified): one must exist now, or the leftover check below checks
    // nothing.
    let cgroups: Vec<String> = ["memory/", "cpu/", "pids/", ""]
        .iter()
        .map(|ctrl| format!("/sys/fs/cgroup/{ctrl}{}/{id}", c.cgroup_parent))
        .collect();
    assert!(
        cgroups.iter().any(|p| std::path::Path::new(p).exists()),
        "no cgroup of the running task among {cgroups:?}"
    );
    ok_stdout(&c.sched.ctl(&["task", "stop", &id, "--reason", "test"]));
    let t = c.until_status(&id, "STOPPED").await;
    assert_eq!(t["stopCode"], "UserInitiated");
    assert_eq!(
        t["containers"][0]["exitCode"], 0,
        "the trap handled SIGTERM: {t}"
    );
    assert_eq!(
        std::fs::read_to_string(marker_dir.path().join("marker"))
            .unwrap()
            .trim(),
        "got-sigterm"
    );

    // After the cleanup wait (2 s): no container, netns, veth, iptables
    // rule or cgroup of the task.
    let runtime_id = t["containers"][0]["runtimeId"].as_str().unwrap().to_owned();
    eventually(Duration::from_secs(30), "cleanup", || async {
        let ctrs =
            String::from_utf8_lossy(&c.ctd.ctr_in("berth", &["containers", "ls", "-q"]).stdout)
                .to_string();
        if ctrs.contains(&runtime_id) {
            return Err(format!("container still there: {ctrs}"));
        }
        Ok(())
    })
    .await;
    let netns = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&netns.stdout).contains(&id[..8]),
        "netns left"
    );
    let rules = std::process::Command::new("iptables-save")
        .output()
        .unwrap();
    let rules = String::from_utf8_lossy(&rules.stdout);
    assert!(
        !rules.contains(&format!("dport {port} ")),
        "iptables rule for port {port} left:\n{rules}"
    );
    let links = std::process::Command::new("ip")
        .args(["-o", "link", "show", "master", &c.bridge])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&links.stdout).trim().is_empty(),
        "veth left on {}",
        c.bridge
    );
    for p in &cgroups {
        assert!(!std::path::Path::new(p).exists(), "cgroup {p} left");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_restart_readopts_running_tasks() {
    let mut c = cluster().await;
    let td = c.register(
        r#"{"family":"tick","containerDefinitions":[{"name":"tick","image":"IMAGE","memory":32,
        "entryPoint":["sh","-c"],"command":["i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.3; done"]}]}"#,
    );
    let id = c.start(&td);
    let t = c.until_status(&id, "RUNNING").await;
    let runtime_id = t["containers"][0]["runtimeId"].as_str().unwrap().to_owned();
    let pid_of = |c: &Cluster| {
        let out = c.ctd.ctr_in("berth", &["tasks", "ls"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find(|l| l.starts_with(&runtime_id))
            .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
            .unwrap_or_default()
    };
    let pid = pid_of(&c);
    assert!(!pid.is_empty());
    c.agent.kill9();
    // The scheduler notices the agent is gone before it comes back.
    until_connected(&c.sched, &c.instance, false, Duration::from_secs(30)).await;
    let log_before = c.agent.log_text().len();
    c.agent.restart();
    until_connected(&c.sched, &c.instance, true, Duration::from_secs(30)).await;
    // Still RUNNING with the same process, logs still growing.
    let t = c.until_status(&id, "RUNNING").await;
    assert_eq!(t["lastStatus"], "RUNNING");
    assert_eq!(pid_of(&c), pid, "the container kept its process");
    let last_tick = |c: &Cluster| {
        ok_stdout(&c.sched.ctl(&["task", "logs", &id]))
            .lines()
            .filter_map(|l| l.rsplit("tick ").next()?.trim().parse::<u64>().ok())
            .max()
            .unwrap_or(0)
    };
    let before = last_tick(&c);
    eventually(
        Duration::from_secs(20),
        "log capture to continue across the agent restart",
        || async {
            let after = last_tick(&c);
            (after > before)
                .then_some(())
                .ok_or(format!("last tick {before} → {after}"))
        },
    )
    .await;
    let log = c.agent.log_text();
    let new_log = log.get(log_before..).unwrap_or_default();
    assert!(new_log.contains("re-adopt"), "{}", tail(new_log, 30));
}

#[tokio::test(flavor = "multi_thread")]
async fn private_registry_pull_needs_credentials() {
    // Without credentials the pull fails clearly.
    let c = cluster_with(Some(("berth", "s3cret")), &[]).await;
    let td = c.register(r#"{"family":"priv","containerDefinitions":[{"name":"p","image":"IMAGE","memory":32,"entryPoint":["sleep","30"]}]}"#);
    let id = c.start(&td);
    let t = c.until_status(&id, "STOPPED").await;
    assert_eq!(t["stopCode"], "TaskFailedToStart");
    let reason = t["stoppedReason"].as_str().unwrap();
    assert!(reason.starts_with("CannotPullContainerError:"), "{reason}");
    drop(c);

    // With a Docker config.json holding them, it works.
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg = cfg_dir.path().join("config.json");
    let c = cluster_with(
        Some(("berth", "s3cret")),
        &[("BERTH_DOCKER_CONFIG", cfg.display().to_string())],
    )
    .await;
    use std::io::Write as _;
    let auth = {
        // base64("berth:s3cret")
        "YmVydGg6czNjcmV0"
    };
    std::fs::File::create(&cfg)
        .unwrap()
        .write_all(
            format!(
                r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#,
                c.registry.addr()
            )
            .as_bytes(),
        )
        .unwrap();
    let td = c.register(r#"{"family":"priv","containerDefinitions":[{"name":"p","image":"IMAGE","memory":32,"entryPoint":["sleep","30"]}]}"#);
    let id = c.start(&td);
    c.until_status(&id, "RUNNING").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_that_died_while_the_agent_was_down_is_reported_stopped() {
    let mut c = cluster().await;
    let td = c.register(
        r#"{"family":"dies","containerDefinitions":[{"name":"main","image":"IMAGE","memory":32,
        "entryPoint":["sleep","3600"]}]}"#,
    );
    let id = c.start(&td);
    let t = c.until_status(&id, "RUNNING").await;
    let runtime_id = t["containers"][0]["runtimeId"].as_str().unwrap().to_owned();
    c.agent.kill9();
    // The container is killed while nobody supervises it.
    let out = c
        .ctd
        .ctr_in("berth", &["tasks", "kill", "-s", "SIGKILL", &runtime_id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eventually(Duration::from_secs(10), "the container to die", || async {
        let ls =
            String::from_utf8_lossy(&c.ctd.ctr_in("berth", &["tasks", "ls"]).stdout).to_string();
        let line = ls
            .lines()
            .find(|l| l.starts_with(&runtime_id))
            .unwrap_or_default()
            .to_owned();
        if line.contains("STOPPED") {
            Ok(())
        } else {
            Err(ls)
        }
    })
    .await;
    c.agent.restart();
    let t = c.until_status(&id, "STOPPED").await;
    assert_eq!(t["stopCode"], "EssentialContainerExited");
    assert_eq!(t["containers"][0]["exitCode"], 137, "{t}");
}

#[tokio::test(flavor = "multi_thread")]
async fn task_run_binpack_waits_for_three_tasks_that_answer() {
    let c = cluster().await;
    let td = c.register(HTTPD);
    let out = c.sched.ctl(&[
        "task",
        "run",
        "--taskdef",
        &td,
        "--count",
        "3",
        "--strategy",
        "binpack:memory",
        "--wait",
        "--timeout",
        "90s",
        "-o",
        "json",
    ]);
    let v = json(&out);
    let tasks = v["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 3, "{v}");
    let mut ports = Vec::new();
    for t in tasks {
        assert_eq!(t["lastStatus"], "RUNNING", "{t}");
        ports.push(host_port(t, 8080));
    }
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 3, "three different host ports");
    for p in ports {
        let body = eventually(Duration::from_secs(10), "the page", || async {
            http_get(p)
        })
        .await;
        assert!(body.contains("hello-from-berth"), "{body}");
    }

    // An impossible request: ECS's reasons, the closest instance, exit 1.
    let out = c.sched.ctl(&[
        "task",
        "run",
        "--taskdef",
        &td,
        "--overrides",
        r#"{"containerOverrides":[{"name":"web","memory":10000000}]}"#,
        "--wait",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("RESOURCE:MEMORY") && err.contains(&c.instance),
        "{err}"
    );
    let out = c.sched.ctl(&[
        "task",
        "run",
        "--taskdef",
        &td,
        "--constraint",
        "memberOf:attribute:ecs.os-type != linux",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("MemberOf placement constraint unsatisfied."),
        "{err}"
    );
}
