//! Services on several real hosts (the `berth_tests::multihost` harness:
//! each host its own network namespace, containerd and agent; real runc,
//! CNI and registry): rolling updates with min 50 / max 100 and with
//! min 100 / max 150 sampled throughout, every new task answering on its
//! host port; a killed host's tasks replaced within TTL + lostAfter + 5 s
//! and the count exact after it returns; a 60 s cut; draining; an image
//! that cannot start tripping the circuit breaker and rolling back;
//! `kill -9` of the scheduler mid-deployment; a DAEMON joined by a fourth
//! host. Root is required: run
//! via `scripts/test` as root; without root the tests fail with that
//! message.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::time::Duration;

use berth_tests::multihost::{Hosts, HostsOptions, HEARTBEAT_TTL};
use berth_tests::service_probe::{
    describe, messages, service_tasks, service_wait, steady, until_elsewhere, until_exactly,
    Sampler,
};
use berth_tests::{eventually, ok_stdout};
use serde_json::Value;

/// `lostAfter` of these clusters.
const LOST_AFTER: Duration = Duration::from_secs(3);

/// busybox httpd answering `VERSION <hostname>` on a dynamic host port.
fn httpd(version: &str) -> String {
    format!(
        r#"{{"family":"svc-httpd","networkMode":"bridge","containerDefinitions":[{{
        "name":"web","image":"IMAGE","memory":32,"essential":true,
        "entryPoint":["sh","-c"],
        "command":["mkdir -p /www && echo {version} $(hostname) > /www/index.html && exec httpd -f -p 80 -h /www"],
        "portMappings":[{{"containerPort":80,"hostPort":0}}]}}]}}"#
    )
}

async fn hosts(n: usize) -> Hosts {
    Hosts::start_with(
        n,
        HostsOptions {
            scheduler_env: vec![
                (
                    "BERTH_LOST_AFTER".to_owned(),
                    format!("{}ms", LOST_AFTER.as_millis()),
                ),
                ("BERTH_SERVICE_THROTTLE_BASE".to_owned(), "200ms".to_owned()),
                ("BERTH_SERVICE_RESYNC".to_owned(), "500ms".to_owned()),
            ],
            ..Default::default()
        },
    )
    .await
}

/// berthctl off the async runtime.
async fn ctl(hosts: &Hosts, args: &[&str]) -> std::process::Output {
    berth_tests::service_probe::ctl(&hosts.sched, args).await
}

/// `service create web --taskdef TD EXTRA... --wait`, which succeeds.
async fn create(hosts: &Hosts, td: &str, extra: &[&str]) {
    ok_stdout(&service_wait(&hosts.sched, "create", "web", td, extra, "120s").await);
}

/// `service update web --taskdef TD EXTRA... --wait`.
async fn update(hosts: &Hosts, td: &str, extra: &[&str], timeout: &str) -> std::process::Output {
    service_wait(&hosts.sched, "update", "web", td, extra, timeout).await
}

/// The host a task (as `task ls` shows it) runs on.
fn host_of_task(hosts: &Hosts, t: &Value) -> usize {
    hosts
        .host_of(t["containerInstanceArn"].as_str().unwrap())
        .unwrap()
}

/// The hosts the service's live tasks run on.
fn on_hosts(hosts: &Hosts) -> std::collections::BTreeSet<usize> {
    live_tasks(hosts)
        .iter()
        .map(|t| host_of_task(hosts, t))
        .collect()
}

/// The service's live tasks as `task describe` shows them.
fn live_tasks(hosts: &Hosts) -> Vec<Value> {
    let v = hosts.ctl_json(&["task", "ls"]);
    v["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["group"] == "service:web" && t["lastStatus"] != "STOPPED")
        .cloned()
        .collect()
}

/// Every live task of the service answers `VERSION ...` on its host port.
async fn all_answer(hosts: &Hosts, version: &str, count: usize) {
    eventually(
        Duration::from_secs(20),
        &format!("{count} tasks answering {version}"),
        || async {
            let ts = live_tasks(hosts);
            if ts.len() != count {
                return Err(format!("{} live tasks", ts.len()));
            }
            for t in &ts {
                let r = hosts.get_task(t, 80, "/")?;
                if !r.contains(&format!("\r\n\r\n{version} "))
                    && !r.contains(&format!("\n{version} "))
                {
                    return Err(format!("{}: {r}", t["taskArn"]));
                }
            }
            Ok(())
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn rolling_updates_across_three_hosts_stay_within_bounds() {
    let hosts = hosts(3).await;
    let ops = hosts.sched.authed_channel().await;
    let v1 = hosts.register(&httpd("v1"));
    let v2 = hosts.register(&httpd("v2"));
    let v3 = hosts.register(&httpd("v3"));
    create(
        &hosts,
        &v1,
        &[
            "--desired-count",
            "4",
            "--min-healthy-percent",
            "50",
            "--max-percent",
            "100",
        ],
    )
    .await;
    all_answer(&hosts, "v1", 4).await;
    assert_eq!(on_hosts(&hosts).len(), 3, "spread over the hosts");

    // min 50 / max 100: at least 2 healthy, at most 4 running.
    let sampler = Sampler::start(ops.clone(), "web", 2, 4, Duration::from_millis(200)).await;
    let out = update(&hosts, &v2, &[], "120s").await;
    let (bad, n) = sampler.finish().await;
    ok_stdout(&out);
    assert!(n >= 5, "the sampler ran ({n} samples)");
    assert!(bad.is_empty(), "min 50 / max 100 broken: {bad:?}");
    all_answer(&hosts, "v2", 4).await;

    // min 100 / max 150: at least 4 healthy, at most 6 running.
    let sampler = Sampler::start(ops.clone(), "web", 4, 6, Duration::from_millis(200)).await;
    let out = update(
        &hosts,
        &v3,
        &["--min-healthy-percent", "100", "--max-percent", "150"],
        "120s",
    )
    .await;
    let (bad, n) = sampler.finish().await;
    ok_stdout(&out);
    assert!(n >= 5, "the sampler ran ({n} samples)");
    assert!(bad.is_empty(), "min 100 / max 150 broken: {bad:?}");
    all_answer(&hosts, "v3", 4).await;
    let s = steady(&ops, "web", Duration::from_secs(10)).await;
    let m = messages(&s);
    assert_eq!(m[0], "(service web) has reached a steady state.", "{m:?}");
    assert!(
        m.iter()
            .any(|e| e.starts_with("(service web) has started 2 tasks:")),
        "{m:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_host_is_replaced_and_its_return_ends_at_the_desired_count() {
    let mut hosts = hosts(3).await;
    let ops = hosts.sched.authed_channel().await;
    let v1 = hosts.register(&httpd("v1"));
    create(&hosts, &v1, &["--desired-count", "4"]).await;
    all_answer(&hosts, "v1", 4).await;
    let victim = host_of_task(&hosts, &live_tasks(&hosts)[0]);
    let victim_instance = hosts.host(victim).instance().to_owned();
    let killed_at = tokio::time::Instant::now();
    hosts.host_mut(victim).kill();
    let limit = HEARTBEAT_TTL + LOST_AFTER + Duration::from_secs(5);
    until_elsewhere(
        &ops,
        "web",
        &victim_instance,
        4,
        limit + Duration::from_secs(20),
    )
    .await;
    let took = killed_at.elapsed();
    assert!(
        took <= limit,
        "replaced after {took:?}; the bound is {limit:?}"
    );
    // The replacements answer on their hosts.
    eventually(
        Duration::from_secs(20),
        "replacements answering",
        || async {
            for t in live_tasks(&hosts)
                .iter()
                .filter(|t| t["desiredStatus"] == "RUNNING")
            {
                hosts.get_task(t, 80, "/")?;
            }
            Ok(())
        },
    )
    .await;

    // The host returns: the superseded copies stop, exactly 4 remain.
    hosts.host_mut(victim).restart();
    hosts.until_connected(victim, true).await;
    until_exactly(&ops, "web", 4, Duration::from_secs(30)).await;
    let s = describe(&ops, "web").await;
    assert_eq!((s.desired_count, s.running_count), (4, 4));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_image_that_cannot_start_trips_the_circuit_breaker_and_rolls_back() {
    let hosts = hosts(2).await;
    let ops = hosts.sched.authed_channel().await;
    let good = hosts.register(&httpd("good"));
    let missing = hosts.image.replace("busybox", "does-not-exist");
    let bad = hosts.register(&httpd("bad").replace("IMAGE", &missing));
    create(
        &hosts,
        &good,
        &["--desired-count", "2", "--circuit-breaker", "--rollback"],
    )
    .await;
    all_answer(&hosts, "good", 2).await;
    let out = update(&hosts, &bad, &[], "180s").await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("FAILED"), "{err}");
    let s = steady(&ops, "web", Duration::from_secs(60)).await;
    assert!(s.task_definition.ends_with(&good), "rolled back: {s:?}");
    let failed = s
        .deployments
        .iter()
        .find(|d| d.rollout_state == "FAILED")
        .expect("describe shows the FAILED deployment");
    assert!(failed.failed_tasks >= 10, "{failed:?}");
    let text = ok_stdout(&ctl(&hosts, &["service", "describe", "web"]).await);
    assert!(text.contains("FAILED"), "{text}");
    assert!(
        text.contains("deployment failed: tasks failed to start."),
        "{text}"
    );
    assert!(text.contains("rolling back to deployment"), "{text}");
    // The failed tasks say why.
    let ts = service_tasks(&ops, "web").await;
    let why = ts
        .iter()
        .find(|t| t.task_definition_arn.ends_with(&bad) && t.last_status == "STOPPED")
        .unwrap();
    assert_eq!(why.stop_code, "TaskFailedToStart", "{why:?}");
    assert!(
        why.stopped_reason.contains("CannotPullContainerError"),
        "{why:?}"
    );
    all_answer(&hosts, "good", 2).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_daemon_runs_on_three_hosts_and_a_fourth_gets_its_own() {
    let mut hosts = hosts(3).await;
    let ops = hosts.sched.authed_channel().await;
    let td = hosts.register(&httpd("daemon"));
    create(&hosts, &td, &["--daemon"]).await;
    all_answer(&hosts, "daemon", 3).await;
    assert_eq!(on_hosts(&hosts).len(), 3);
    let fourth = hosts.add_host().await;
    all_answer(&hosts, "daemon", 4).await;
    assert!(
        on_hosts(&hosts).contains(&fourth),
        "the new host runs its daemon"
    );
    let s = describe(&ops, "web").await;
    assert_eq!((s.desired_count, s.running_count), (4, 4));
}

#[tokio::test(flavor = "multi_thread")]
async fn draining_a_host_moves_its_tasks_without_dropping_below_the_minimum() {
    let hosts = hosts(3).await;
    let ops = hosts.sched.authed_channel().await;
    let td = hosts.register(&httpd("v1"));
    create(&hosts, &td, &["--desired-count", "3"]).await;
    all_answer(&hosts, "v1", 3).await;
    let victim = host_of_task(&hosts, &live_tasks(&hosts)[0]);
    let instance = hosts.host(victim).instance().to_owned();
    let sampler = Sampler::start(ops.clone(), "web", 3, 6, Duration::from_millis(50)).await;
    ok_stdout(&ctl(&hosts, &["instance", "drain", &instance]).await);
    eventually(
        Duration::from_secs(60),
        "tasks moved off the drained host",
        || async {
            let ts = live_tasks(&hosts);
            let there = ts
                .iter()
                .filter(|t| {
                    t["containerInstanceArn"]
                        .as_str()
                        .unwrap()
                        .ends_with(&instance)
                })
                .count();
            (there == 0 && ts.len() == 3)
                .then_some(())
                .ok_or(format!("{there} left there"))
        },
    )
    .await;
    let (bad, n) = sampler.finish().await;
    // The move can take well under a second: at least two samples.
    assert!(n >= 2, "the sampler ran ({n} samples)");
    assert!(
        bad.is_empty(),
        "below the 100% minimum while draining: {bad:?}"
    );
    all_answer(&hosts, "v1", 3).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_cut_off_for_60s_keeps_serving_and_the_service_converges() {
    let mut hosts = hosts(3).await;
    let ops = hosts.sched.authed_channel().await;
    let td = hosts.register(&httpd("v1"));
    create(&hosts, &td, &["--desired-count", "3"]).await;
    all_answer(&hosts, "v1", 3).await;
    let task = live_tasks(&hosts)[0].clone();
    let victim = host_of_task(&hosts, &task);
    let instance = hosts.host(victim).instance().to_owned();
    hosts.host_mut(victim).cut();
    let cut_at = tokio::time::Instant::now();
    // Replaced elsewhere once lost...
    until_elsewhere(&ops, "web", &instance, 3, Duration::from_secs(30)).await;
    // ...while the cut host's copy keeps serving on its address.
    while cut_at.elapsed() < Duration::from_secs(60) {
        let r = hosts.get_task(&task, 80, "/");
        assert!(
            r.as_ref().is_ok_and(|r| r.contains(" 200 ")),
            "the cut host stopped serving: {r:?}"
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    hosts.host_mut(victim).heal();
    hosts.until_connected(victim, true).await;
    until_exactly(&ops, "web", 3, Duration::from_secs(30)).await;
    assert!(
        hosts.get_task(&task, 80, "/").is_err(),
        "the superseded copy stopped"
    );
    all_answer(&hosts, "v1", 3).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill9_of_the_scheduler_mid_deployment_finishes_within_maximum() {
    let mut hosts = hosts(3).await;
    let ops = hosts.sched.authed_channel().await;
    let v1 = hosts.register(&httpd("v1"));
    let v2 = hosts.register(&httpd("v2"));
    create(
        &hosts,
        &v1,
        &[
            "--desired-count",
            "4",
            "--min-healthy-percent",
            "100",
            "--max-percent",
            "150",
        ],
    )
    .await;
    all_answer(&hosts, "v1", 4).await;
    ok_stdout(&ctl(&hosts, &["service", "update", "web", "--taskdef", &v2]).await);
    eventually(
        Duration::from_secs(30),
        "the first new tasks placed",
        || async {
            let n = service_tasks(&ops, "web")
                .await
                .iter()
                .filter(|t| t.task_definition_arn.ends_with(&v2))
                .count();
            (n > 0).then_some(()).ok_or(format!("{n}"))
        },
    )
    .await;
    hosts.sched.restart().await;
    let ops = hosts.sched.authed_channel().await;
    let sampler = Sampler::start(ops.clone(), "web", 0, 6, Duration::from_millis(200)).await;
    let s = steady(&ops, "web", Duration::from_secs(120)).await;
    let (bad, n) = sampler.finish().await;
    // One sample before steady state, one at it: the window was watched.
    assert!(n >= 2, "the sampler ran ({n} samples)");
    assert!(
        bad.is_empty(),
        "more than 150% running after the restart: {bad:?}"
    );
    assert!(s.task_definition.ends_with(&v2), "{s:?}");
    all_answer(&hosts, "v2", 4).await;
    let placed = service_tasks(&ops, "web")
        .await
        .iter()
        .filter(|t| t.task_definition_arn.ends_with(&v2))
        .count();
    assert!(
        placed <= 6,
        "{placed} v2 tasks placed: nothing placed twice"
    );
}
