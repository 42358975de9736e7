//! Services against a real scheduler process with fake agents (the real
//! AgentService protocol, no containerd): rolling updates sampled against
//! ECS's minimum/maximum, the circuit breaker and its rollback, events,
//! `kill -9` of the scheduler mid-deployment, draining, a lost instance,
//! and the API's validation.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use berth_proto::v1::service_service_client::ServiceServiceClient;
use berth_proto::v1::{CreateServiceRequest, DeleteServiceRequest, Task, UpdateServiceRequest};
use berth_tests::fake_agent::{Autopilot, FakeAgent, FakeHost};
use berth_tests::service_probe::{
    describe, healthy, messages, occupying, service_tasks, service_wait, steady, until_elsewhere,
    until_exactly, until_inactive, Sampler,
};
use berth_tests::{eventually, json, ok_stdout, AuthedChannel, Scheduler};
use tonic::Code;

fn taskdef(family: &str, memory: u32) -> String {
    format!(
        r#"{{"family":"{family}","containerDefinitions":[{{"name":"app","image":"busybox",
        "memory":{memory},"portMappings":[{{"containerPort":80}}]}}]}}"#
    )
}

fn host(zone: &str) -> FakeHost {
    FakeHost {
        attributes: vec![("ecs.availability-zone".to_owned(), zone.to_owned())],
        ..FakeHost::default()
    }
}

const ZONES: [&str; 3] = ["zone-a", "zone-b", "zone-c"];

struct Cluster {
    s: Scheduler,
    agents: Vec<FakeAgent>,
    pilot: Autopilot,
    _dir: tempfile::TempDir,
}

impl Cluster {
    async fn start(n: usize, pilot: Autopilot, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut all = vec![
            ("BERTH_SERVICE_THROTTLE_BASE", "50ms"),
            ("BERTH_SERVICE_RESYNC", "200ms"),
            ("BERTH_LOST_AFTER", "2s"),
        ];
        all.extend_from_slice(env);
        let s = Scheduler::start_with(&dir.path().join("data"), &all).await;
        let target = s.agent_target().await;
        let mut agents = Vec::new();
        for i in 0..n {
            agents.push(
                FakeAgent::join(&target, "default", host(ZONES[i % 3]))
                    .await
                    .autopilot_with(pilot.clone()),
            );
        }
        for f in ["web", "bad"] {
            for _ in 0..3 {
                ok_stdout(&s.ctl_stdin(&["taskdef", "register", "-f", "-"], &taskdef(f, 64)));
            }
        }
        Cluster {
            s,
            agents,
            pilot,
            _dir: dir,
        }
    }

    async fn ops(&self) -> AuthedChannel {
        self.s.authed_channel().await
    }

    /// berthctl off the async runtime (the fake agents keep answering).
    async fn ctl(&self, args: &[&str]) -> std::process::Output {
        berth_tests::service_probe::ctl(&self.s, args).await
    }

    /// `service create NAME --taskdef TD EXTRA... --wait --timeout 30s`.
    async fn create(&self, name: &str, td: &str, extra: &[&str]) -> std::process::Output {
        service_wait(&self.s, "create", name, td, extra, "30s").await
    }

    /// `service update web --taskdef TD EXTRA... --wait --timeout 60s`.
    async fn update(&self, td: &str, extra: &[&str]) -> std::process::Output {
        service_wait(&self.s, "update", "web", td, extra, "60s").await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_updates_keep_ecs_minimum_and_maximum() {
    let pilot = Autopilot {
        start_delay: Duration::from_millis(300),
        ..Autopilot::default()
    };
    let c = Cluster::start(3, pilot, &[]).await;
    let ops = c.ops().await;
    let out = c
        .create(
            "web",
            "web:1",
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
    let text = ok_stdout(&out);
    assert!(text.contains("4 desired, 4 running"), "{text}");
    let progress = String::from_utf8_lossy(&out.stderr);
    assert!(progress.contains("/4 running"), "{progress}");
    assert!(
        progress.contains("(service web) has reached a steady state."),
        "{progress}"
    );
    // Spread over the three zones: 2/1/1.
    let ts = service_tasks(&ops, "web").await;
    let mut per_instance: HashMap<String, usize> = HashMap::new();
    for t in &ts {
        *per_instance
            .entry(t.container_instance_arn.clone())
            .or_default() += 1;
    }
    assert_eq!(per_instance.len(), 3, "{per_instance:?}");

    // min 50 / max 100: never fewer than 2 healthy nor more than 4 running.
    let sampler = Sampler::start(ops.clone(), "web", 2, 4, Duration::from_millis(50)).await;
    let out = c.update("web:2", &[]).await;
    ok_stdout(&out);
    let (bad, n) = sampler.finish().await;
    assert!(n > 10, "the sampler ran ({n} samples)");
    assert!(bad.is_empty(), "50/100 bounds broken: {bad:?}");
    let s = steady(&ops, "web", Duration::from_secs(10)).await;
    assert!(s.task_definition.ends_with("web:2"));
    let ts = service_tasks(&ops, "web").await;
    let live: Vec<&Task> = ts.iter().filter(|t| t.last_status != "STOPPED").collect();
    assert_eq!(live.len(), 4);
    assert!(live
        .iter()
        .all(|t| t.task_definition_arn.ends_with("web:2")));
    assert!(ts
        .iter()
        .filter(|t| t.last_status == "STOPPED")
        .all(|t| t.stop_code == "ServiceSchedulerInitiated"
            && t.stopped_reason
                .starts_with("Scaling activity initiated by (deployment ecs-svc/")));

    // min 100 / max 150: never fewer than 4 healthy nor more than 6 running.
    let sampler = Sampler::start(ops.clone(), "web", 4, 6, Duration::from_millis(50)).await;
    let out = c
        .update(
            "web:3",
            &["--min-healthy-percent", "100", "--max-percent", "150"],
        )
        .await;
    ok_stdout(&out);
    let (bad, n) = sampler.finish().await;
    assert!(n > 10, "the sampler ran ({n} samples)");
    assert!(bad.is_empty(), "100/150 bounds broken: {bad:?}");
    let s = steady(&ops, "web", Duration::from_secs(10)).await;
    let m = messages(&s);
    assert!(
        m.iter()
            .any(|e| e.starts_with("(service web) has started 2 tasks: (task ")),
        "{m:?}"
    );
    assert!(
        m.iter()
            .any(|e| e.starts_with("(service web) has stopped 2 running tasks: (task ")),
        "{m:?}"
    );
    assert!(
        m.iter().any(|e| e.ends_with("deployment completed.")),
        "{m:?}"
    );
    assert_eq!(m[0], "(service web) has reached a steady state.", "{m:?}");

    // Scale in, then delete: ACTIVE → DRAINING → INACTIVE.
    ok_stdout(
        &c.ctl(&["service", "scale", "web", "1", "--wait", "--timeout", "30s"])
            .await,
    );
    let out = c.ctl(&["service", "delete", "web"]).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("scaled above 0"),
        "{out:?}"
    );
    ok_stdout(&c.ctl(&["service", "delete", "web", "--force"]).await);
    until_inactive(&ops, "web", Duration::from_secs(10)).await;
    let ls = ok_stdout(&c.ctl(&["service", "ls"]).await);
    assert!(!ls.contains("web "), "{ls}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn circuit_breaker_fails_the_deployment_and_rolls_back() {
    let pilot = Autopilot {
        start_delay: Duration::from_millis(50),
        fail: Arc::new(|t| t.family == "bad"),
        ..Autopilot::default()
    };
    let c = Cluster::start(2, pilot, &[]).await;
    let ops = c.ops().await;
    ok_stdout(
        &c.create(
            "web",
            "web:1",
            &["--desired-count", "2", "--circuit-breaker", "--rollback"],
        )
        .await,
    );
    let out = c.update("bad:1", &[]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(err.contains("FAILED"), "{err}");
    assert!(
        err.contains("deployment failed: tasks failed to start."),
        "{err}"
    );
    let s = steady(&ops, "web", Duration::from_secs(20)).await;
    assert!(s.task_definition.ends_with("web:1"), "rolled back: {s:?}");
    let failed = s
        .deployments
        .iter()
        .find(|d| d.rollout_state == "FAILED")
        .expect("the FAILED deployment is shown");
    assert!(failed.task_definition.ends_with("bad:1"));
    assert!(failed.failed_tasks >= 10, "{failed:?}");
    let m = messages(&s);
    assert!(
        m.iter()
            .any(|e| e.contains("rolling back to deployment ecs-svc/")),
        "{m:?}"
    );
    // The service deployments: the first SUCCESSFUL, the second rolled back.
    let text = ok_stdout(&c.ctl(&["service", "deployments", "web"]).await);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[1].contains("ROLLBACK_SUCCESSFUL"), "{text}");
    assert!(lines[2].contains("SUCCESSFUL"), "{text}");
    let text = ok_stdout(&c.ctl(&["service", "describe-deployments", "web"]).await);
    assert!(text.contains("TRIGGERED"), "{text}");
    assert!(text.contains("bad:1"), "{text}");
    // The describe table says it too.
    let text = ok_stdout(&c.ctl(&["service", "describe", "web"]).await);
    assert!(text.contains("FAILED"), "{text}");
    assert!(
        text.contains("deployment failed: tasks failed to start."),
        "{text}"
    );
    // The old tasks never went away (100% minimum healthy).
    let live = service_tasks(&ops, "web")
        .await
        .into_iter()
        .filter(|t| t.last_status != "STOPPED")
        .count();
    assert_eq!(live, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_mid_deployment_resumes_within_maximum() {
    let pilot = Autopilot {
        start_delay: Duration::from_millis(700),
        ..Autopilot::default()
    };
    let mut c = Cluster::start(3, pilot, &[("BERTH_LOST_AFTER", "5s")]).await;
    let ops = c.ops().await;
    ok_stdout(
        &c.create(
            "web",
            "web:1",
            &[
                "--desired-count",
                "4",
                "--min-healthy-percent",
                "100",
                "--max-percent",
                "150",
            ],
        )
        .await,
    );
    ok_stdout(
        &c.ctl(&["service", "update", "web", "--taskdef", "web:2"])
            .await,
    );
    // The first new tasks are placed, not yet RUNNING.
    eventually(Duration::from_secs(10), "new tasks placed", || async {
        let ts = service_tasks(&ops, "web").await;
        let new = ts
            .iter()
            .filter(|t| t.task_definition_arn.ends_with("web:2"))
            .count();
        (new > 0).then_some(()).ok_or(format!("{new}"))
    })
    .await;
    c.s.kill9();
    let certs: Vec<_> = c
        .agents
        .drain(..)
        .map(|a| (a.id.clone(), a.arn.clone(), a.cert.clone()))
        .collect();
    c.s.restart().await;
    let target = c.s.agent_target().await;
    for (i, (id, arn, cert)) in certs.into_iter().enumerate() {
        c.agents.push(
            FakeAgent::reconnect(&target, id, arn, cert, host(ZONES[i % 3]))
                .await
                .autopilot_with(c.pilot.clone()),
        );
    }
    let ops = c.ops().await;
    let sampler = Sampler::start(ops.clone(), "web", 0, 6, Duration::from_millis(50)).await;
    let s = steady(&ops, "web", Duration::from_secs(30)).await;
    let (bad, n) = sampler.finish().await;
    // One sample before steady state, one at it: the window was watched.
    assert!(n >= 2, "the sampler ran ({n} samples)");
    assert!(
        bad.is_empty(),
        "more than 150% running after the restart: {bad:?}"
    );
    assert!(s.task_definition.ends_with("web:2"));
    let ts = service_tasks(&ops, "web").await;
    let live: Vec<&Task> = ts.iter().filter(|t| t.last_status != "STOPPED").collect();
    assert_eq!(live.len(), 4, "exactly the desired count");
    assert!(live
        .iter()
        .all(|t| t.task_definition_arn.ends_with("web:2")));
    // Nothing was started twice: tasks of web:2 ever placed ≤ 4 + 2 spare.
    let placed_new = ts
        .iter()
        .filter(|t| t.task_definition_arn.ends_with("web:2"))
        .count();
    assert!(placed_new <= 6, "{placed_new} web:2 tasks placed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_and_lost_instances_move_service_tasks() {
    let c = Cluster::start(4, Autopilot::default(), &[]).await;
    let ops = c.ops().await;
    ok_stdout(&c.create("web", "web:1", &["--desired-count", "3"]).await);
    let on = |ts: &[Task], id: &str| {
        ts.iter()
            .filter(|t| t.last_status != "STOPPED" && t.desired_status == "RUNNING")
            .filter(|t| t.container_instance_arn.ends_with(id))
            .count()
    };
    let ts = service_tasks(&ops, "web").await;
    let victim = c
        .agents
        .iter()
        .find(|a| on(&ts, &a.id) > 0)
        .unwrap()
        .id
        .clone();

    // Draining: replacements start first (100% minimum), then the old stop.
    let sampler = Sampler::start(ops.clone(), "web", 3, 6, Duration::from_millis(50)).await;
    ok_stdout(&c.ctl(&["instance", "drain", &victim]).await);
    eventually(
        Duration::from_secs(15),
        "tasks moved off the drained instance",
        || async {
            let ts = service_tasks(&ops, "web").await;
            (on(&ts, &victim) == 0 && healthy(&ts) == 3 && occupying(&ts) == 3)
                .then_some(())
                .ok_or(format!(
                    "{} on victim, {} healthy",
                    on(&ts, &victim),
                    healthy(&ts)
                ))
        },
    )
    .await;
    let (bad, n) = sampler.finish().await;
    assert!(n >= 2, "the sampler ran ({n} samples)");
    assert!(bad.is_empty(), "below the minimum while draining: {bad:?}");
    ok_stdout(&c.ctl(&["instance", "activate", &victim]).await);

    // Lost: an agent that goes away for TTL (1 s) + lostAfter (2 s).
    let mut c = c;
    let ts = service_tasks(&ops, "web").await;
    let idx = c.agents.iter().position(|a| on(&ts, &a.id) > 0).unwrap();
    let gone = c.agents.remove(idx);
    let (gone_id, gone_arn, gone_cert) = (gone.id.clone(), gone.arn.clone(), gone.cert.clone());
    let lost_tasks = on(&ts, &gone_id);
    let t0 = tokio::time::Instant::now();
    drop(gone);
    until_elsewhere(&ops, "web", &gone_id, 3, Duration::from_secs(10)).await;
    let took = t0.elapsed();
    assert!(
        took <= Duration::from_secs(8),
        "replaced after {took:?} (TTL 1 s + lostAfter 2 s + 5 s)"
    );
    // Its tasks wait, desired STOPPED, for the agent to come back.
    let ts = service_tasks(&ops, "web").await;
    let stale: Vec<&Task> = ts
        .iter()
        .filter(|t| t.container_instance_arn.ends_with(&gone_id) && t.last_status != "STOPPED")
        .collect();
    assert_eq!(stale.len(), lost_tasks);
    assert!(stale
        .iter()
        .all(|t| t.desired_status == "STOPPED" && t.stopped_reason.contains("was lost")));
    // It returns: the desired set stops the superseded copies.
    let back = FakeAgent::reconnect(
        &c.s.agent_target().await,
        gone_id.clone(),
        gone_arn,
        gone_cert,
        host("zone-a"),
    )
    .await
    .autopilot();
    until_exactly(&ops, "web", 3, Duration::from_secs(10)).await;
    drop(back);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_validates_and_explains() {
    let c = Cluster::start(1, Autopilot::default(), &[]).await;
    let ops = c.ops().await;
    let mut client = ServiceServiceClient::new(ops.clone());
    let create = |f: &dyn Fn(&mut CreateServiceRequest)| {
        let mut r = CreateServiceRequest {
            service_name: "web".into(),
            task_definition: "web:1".into(),
            desired_count: Some(1),
            ..Default::default()
        };
        f(&mut r);
        r
    };
    let err = |st: tonic::Status| (st.code(), st.message().to_owned());
    let (code, msg) = err(client
        .create_service(create(&|r| r.desired_count = Some(-1)))
        .await
        .unwrap_err());
    assert_eq!(code, Code::InvalidArgument);
    assert!(msg.starts_with("desiredCount:"), "{msg}");
    let (code, msg) = err(client
        .create_service(create(&|r| {
            r.deployment_configuration = Some(berth_proto::v1::DeploymentConfiguration {
                minimum_healthy_percent: Some(101),
                ..Default::default()
            })
        }))
        .await
        .unwrap_err());
    assert_eq!(code, Code::InvalidArgument);
    assert!(
        msg.starts_with("deploymentConfiguration.minimumHealthyPercent:"),
        "{msg}"
    );
    let (code, msg) = err(client
        .create_service(create(&|r| {
            r.placement_strategy = vec![
                berth_proto::v1::PlacementStrategy {
                    r#type: "spread".into(),
                    field: "instanceId".into(),
                },
                berth_proto::v1::PlacementStrategy {
                    r#type: "binpack".into(),
                    field: "disk".into(),
                },
            ]
        }))
        .await
        .unwrap_err());
    assert_eq!(code, Code::InvalidArgument);
    assert!(msg.contains("placementStrategy[1]"), "{msg}");
    let (code, _) = err(client
        .create_service(create(&|r| r.task_definition = "nope:1".into()))
        .await
        .unwrap_err());
    assert_eq!(code, Code::NotFound);
    let (code, _) = err(client
        .update_service(UpdateServiceRequest {
            service: "nope".into(),
            desired_count: Some(1),
            ..Default::default()
        })
        .await
        .unwrap_err());
    assert_eq!(code, Code::NotFound);
    client.create_service(create(&|_| {})).await.unwrap();
    let (code, msg) = err(client.create_service(create(&|_| {})).await.unwrap_err());
    assert_eq!(code, Code::InvalidArgument);
    assert!(msg.contains("not idempotent"), "{msg}");
    let (code, _) = err(client
        .delete_service(DeleteServiceRequest {
            service: "web".into(),
            ..Default::default()
        })
        .await
        .unwrap_err());
    assert_eq!(code, Code::FailedPrecondition);

    // A task no instance can hold: ECS's unable-to-place event.
    ok_stdout(&c.s.ctl_stdin(&["taskdef", "register", "-f", "-"], &taskdef("huge", 4096)));
    client
        .create_service(create(&|r| {
            r.service_name = "huge".into();
            r.task_definition = "huge".into();
        }))
        .await
        .unwrap();
    let want = format!(
        "(service huge) was unable to place a task because no container instance met all of \
         its requirements. The closest matching container-instance {} has insufficient memory \
         available.",
        c.agents[0].id
    );
    eventually(
        Duration::from_secs(10),
        "the unable-to-place event",
        || async {
            let s = describe(&ops, "huge").await;
            messages(&s)
                .contains(&want)
                .then_some(())
                .ok_or(format!("{:?}", messages(&s)))
        },
    )
    .await;
    let events = ok_stdout(&c.ctl(&["service", "events", "huge"]).await);
    assert!(events.contains(&want), "{events}");
    let v = json(&c.ctl(&["service", "describe", "huge", "-o", "json"]).await);
    assert_eq!(
        v["services"][0]["deployments"][0]["rolloutState"],
        "IN_PROGRESS"
    );
    assert_eq!(
        v["services"][0]["deploymentConfiguration"]["maximumPercent"],
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_runs_on_every_instance_and_follows_them() {
    let mut c = Cluster::start(3, Autopilot::default(), &[]).await;
    let ops = c.ops().await;
    let out = c.create("agentd", "web:1", &["--daemon"]).await;
    let text = ok_stdout(&out);
    assert!(text.contains("Scheduling:       DAEMON"), "{text}");
    let per_instance = |ts: &[Task]| {
        let mut m: HashMap<String, usize> = HashMap::new();
        for t in ts
            .iter()
            .filter(|t| t.desired_status == "RUNNING" && t.last_status == "RUNNING")
        {
            *m.entry(t.container_instance_arn.clone()).or_default() += 1;
        }
        m
    };
    let ts = service_tasks(&ops, "agentd").await;
    let m = per_instance(&ts);
    assert_eq!(m.len(), 3, "{m:?}");
    assert!(m.values().all(|n| *n == 1), "{m:?}");
    let s = describe(&ops, "agentd").await;
    assert_eq!((s.desired_count, s.running_count), (3, 3));
    let v = json(
        &c.ctl(&["service", "describe", "agentd", "-o", "json"])
            .await,
    );
    let cfg = &v["services"][0]["deploymentConfiguration"];
    assert_eq!(
        (
            cfg["minimumHealthyPercent"].as_i64(),
            cfg["maximumPercent"].as_i64()
        ),
        (Some(0), Some(100))
    );

    // A fourth instance joins and gets its daemon.
    let target = c.s.agent_target().await;
    c.agents.push(
        FakeAgent::join(&target, "default", host("zone-a"))
            .await
            .autopilot(),
    );
    let fourth = c.agents[3].id.clone();
    eventually(
        Duration::from_secs(10),
        "a daemon on the new instance",
        || async {
            let m = per_instance(&service_tasks(&ops, "agentd").await);
            (m.len() == 4 && m.keys().any(|k| k.ends_with(&fourth)))
                .then_some(())
                .ok_or(format!("{m:?}"))
        },
    )
    .await;
    // A drained instance loses it (no replica tasks to wait for).
    ok_stdout(&c.ctl(&["instance", "drain", &fourth]).await);
    eventually(
        Duration::from_secs(10),
        "the drained instance's daemon stopped",
        || async {
            let m = per_instance(&service_tasks(&ops, "agentd").await);
            let s = describe(&ops, "agentd").await;
            (m.len() == 3 && !m.keys().any(|k| k.ends_with(&fourth)) && s.desired_count == 3)
                .then_some(())
                .ok_or(format!("{m:?} desired {}", s.desired_count))
        },
    )
    .await;
    // Validation: no desired count, no strategies for a DAEMON.
    let mut client = ServiceServiceClient::new(ops.clone());
    let st = client
        .create_service(CreateServiceRequest {
            service_name: "d2".into(),
            task_definition: "web:1".into(),
            scheduling_strategy: "DAEMON".into(),
            desired_count: Some(2),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(st.code(), Code::InvalidArgument);
    assert!(
        st.message().starts_with("desiredCount:"),
        "{}",
        st.message()
    );
    // A DAEMON is deleted without scaling first.
    ok_stdout(&c.ctl(&["service", "delete", "agentd"]).await);
    until_inactive(&ops, "agentd", Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_gate_deployments_and_trip_the_breaker() {
    let pilot = Autopilot {
        health: Arc::new(|t| match t.family.as_str() {
            "sick" => "UNHEALTHY".to_owned(),
            _ => "HEALTHY".to_owned(),
        }),
        ..Autopilot::default()
    };
    let c = Cluster::start(2, pilot, &[]).await;
    let ops = c.ops().await;
    for family in ["fine", "sick"] {
        let td = format!(
            r#"{{"family":"{family}","containerDefinitions":[{{"name":"app","image":"busybox",
            "memory":64,"healthCheck":{{"command":["CMD-SHELL","true"]}}}}]}}"#
        );
        ok_stdout(&c.s.ctl_stdin(&["taskdef", "register", "-f", "-"], &td));
    }
    // HEALTHY tasks complete the deployment.
    ok_stdout(
        &c.create(
            "web",
            "fine:1",
            &["--desired-count", "2", "--circuit-breaker", "--rollback"],
        )
        .await,
    );
    // UNHEALTHY ones are replaced, count as failures, and the breaker trips.
    let out = c.update("sick:1", &[]).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let s = steady(&ops, "web", Duration::from_secs(20)).await;
    assert!(s.task_definition.ends_with("fine:1"), "{s:?}");
    let ts = service_tasks(&ops, "web").await;
    assert!(ts.iter().any(|t| t.task_definition_arn.ends_with("sick:1")
        && t.stopped_reason == "Task failed container health checks"));
    assert_eq!(healthy(&ts), 2);
}
