//! A real agent joins a real scheduler: it shows up as a container instance
//! with the host's real CPU and memory, goes `agentConnected: false` within
//! the TTL after a SIGKILL, and comes back as the same instance.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::time::Duration;

use berth_proto::v1::container_instance_service_client::ContainerInstanceServiceClient;
use berth_proto::v1::{ContainerInstance, DescribeContainerInstancesRequest};
use berth_tests::{eventually, host_cpus, host_memory_mib, json, ok_stdout, Agent, Scheduler};

async fn instances(s: &Scheduler) -> Vec<ContainerInstance> {
    ContainerInstanceServiceClient::new(s.authed_channel().await)
        .describe_container_instances(DescribeContainerInstancesRequest {
            cluster: "default".into(),
            container_instances: vec![],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .container_instances
}

fn resource(i: &ContainerInstance, name: &str) -> i64 {
    i.registered_resources
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no {name} resource"))
        .integer_value
}

#[tokio::test]
async fn agent_registers_real_resources_and_disconnects_within_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let s = Scheduler::start(&dir.path().join("data")).await;
    let mut agent = Agent::start(&s, "default", &dir.path().join("agent"));

    let first = eventually(Duration::from_secs(15), "the agent to connect", || async {
        let list = instances(&s).await;
        match list.as_slice() {
            [i] if i.agent_connected && resource(i, "CPU") > 0 => Ok(i.clone()),
            other => Err(format!("{other:?}\nagent log:\n{}", agent.log_text())),
        }
    })
    .await;

    // The host's real resources: 1024 CPU units per core, MemTotal minus the
    // agent's default 256 MiB reservation.
    assert_eq!(resource(&first, "CPU"), host_cpus() * 1024);
    let mem = resource(&first, "MEMORY");
    let expected = host_memory_mib() - 256;
    assert!(
        (mem - expected).abs() <= 1,
        "memory {mem} MiB, expected about {expected}"
    );
    assert_eq!(first.status, "ACTIVE");
    assert!(first.agent_version.starts_with(berth_proto::VERSION));
    let attrs: Vec<_> = first.attributes.iter().map(|a| a.name.as_str()).collect();
    for want in ["ecs.os-type", "ecs.cpu-architecture"] {
        assert!(
            attrs.contains(&want),
            "attribute {want} missing from {attrs:?}"
        );
    }
    let ports = first
        .registered_resources
        .iter()
        .find(|r| r.name == "PORTS")
        .unwrap();
    assert!(
        ports.string_set_value.contains(&"22".to_string()),
        "{ports:?}"
    );

    // SIGKILL: the scheduler notices within its TTL (1 s in tests).
    agent.kill9();
    let killed_at = tokio::time::Instant::now();
    eventually(Duration::from_secs(3), "agentConnected: false", || async {
        let list = instances(&s).await;
        if list[0].agent_connected {
            Err("still connected".into())
        } else {
            Ok(())
        }
    })
    .await;
    assert!(
        killed_at.elapsed() <= Duration::from_secs(2),
        "TTL 1 s (+ polling)"
    );

    // Restart: same instance id (kept in the agent's state dir), connected again.
    agent.restart();
    eventually(
        Duration::from_secs(15),
        "the agent to reconnect",
        || async {
            let list = instances(&s).await;
            match list.as_slice() {
                [i] if i.agent_connected => {
                    assert_eq!(i.id, first.id, "the instance keeps its id across restarts");
                    Ok(())
                }
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
}

#[tokio::test]
async fn agent_reconnects_after_scheduler_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Scheduler::start(&dir.path().join("data")).await;
    let agent = Agent::start(&s, "default", &dir.path().join("agent"));
    async fn connected_id(s: &Scheduler, agent: &Agent) -> Result<String, String> {
        let list = instances(s).await;
        match list.as_slice() {
            [i] if i.agent_connected => Ok(i.id.clone()),
            other => Err(format!("{other:?}\nagent log:\n{}", agent.log_text())),
        }
    }
    let id = eventually(Duration::from_secs(15), "connect", || {
        connected_id(&s, &agent)
    })
    .await;
    s.kill9();
    s.restart().await;
    let id2 = eventually(
        Duration::from_secs(40),
        "reconnect after scheduler kill -9",
        || connected_id(&s, &agent),
    )
    .await;
    assert_eq!(id, id2);
}

#[tokio::test]
async fn scheduler_shuts_down_gracefully_with_agents_attached() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Scheduler::start(&dir.path().join("data")).await;
    let agent = Agent::start(&s, "default", &dir.path().join("agent"));
    eventually(Duration::from_secs(15), "connect", || async {
        match instances(&s).await.as_slice() {
            [i] if i.agent_connected => Ok(()),
            other => Err(format!("{other:?}\n{}", agent.log_text())),
        }
    })
    .await;
    // SIGTERM ends the agent streams and exits 0 promptly; a long-lived
    // stream must not hold shutdown hostage.
    let started = tokio::time::Instant::now();
    let status = s.terminate();
    assert!(
        status.success(),
        "exit status {status}; log:\n{}",
        s.log_text()
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(s.log_text().contains("berth-scheduler stopped"));
}

/// The real binaries: a host joins with an activation and connects; a
/// second `register` with the same code after its limit fails with a clear
/// message; a wrong fingerprint is refused; deregistration disconnects the
/// agent for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_join_with_activations_and_deregistration_shuts_them_out() {
    let dir = tempfile::tempdir().unwrap();
    let s = Scheduler::start(&dir.path().join("data")).await;
    // The fingerprint the scheduler printed is the one activations carry.
    let (id, code, fingerprint) = s.activation("default", &["--registration-limit", "1"]);
    assert!(s.log_text().contains(&fingerprint), "{}", s.log_text());

    let mut first = Agent::start_registered(
        &s,
        "default",
        &dir.path().join("a1"),
        &id,
        &code,
        &fingerprint,
    );
    let instance = eventually(Duration::from_secs(20), "the agent to connect", || async {
        let v = json(&s.ctl(&["instance", "ls", "-o", "json"]));
        match v["containerInstances"][0]["agentConnected"].as_bool() {
            Some(true) => Ok(v["containerInstances"][0]["containerInstanceArn"]
                .as_str()
                .unwrap()
                .to_owned()),
            _ => Err(format!("{v}\n{}", first.log_text())),
        }
    })
    .await;

    // Same code, second host: past the limit.
    let second = Agent::unregistered(&s, &dir.path().join("a2"));
    let out = second.register(&id, &code, &fingerprint);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("registration limit"), "{err}");
    // A wrong fingerprint never reaches Register.
    let out = second.register(&id, &code, &format!("sha256:{}", "ab".repeat(32)));
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to trust it"));
    let ls = ok_stdout(&s.ctl(&["activation", "ls"]));
    assert!(ls.contains("EXHAUSTED") && ls.contains("1/1"), "{ls}");

    // Deregistration: INACTIVE, certificate revoked, the agent is refused.
    ok_stdout(&s.ctl(&["instance", "deregister", &instance]));
    eventually(
        Duration::from_secs(10),
        "the agent to be refused",
        || async {
            let log = first.log_text();
            if log.contains("refused this host's certificate") {
                Ok(())
            } else {
                Err(log)
            }
        },
    )
    .await;
    // For good: the restarted agent (same identity) tries again and is
    // refused again. Its log is appended to, so only what it wrote after the
    // restart counts.
    let before = first.log_text().len();
    first.restart();
    eventually(
        Duration::from_secs(20),
        "the restarted agent to be refused",
        || async {
            let log = first.log_text();
            let new = log.get(before..).unwrap_or_default();
            if new.contains("refused this host's certificate") {
                Ok(())
            } else {
                Err(new.to_owned())
            }
        },
    )
    .await;
    let v = json(&s.ctl(&["instance", "describe", &instance, "-o", "json"]));
    assert_eq!(v["containerInstances"][0]["status"], "INACTIVE", "{v}");
    assert_eq!(v["containerInstances"][0]["agentConnected"], false, "{v}");
}
