//! RunTask against a real scheduler process with fake agents (the real
//! AgentService protocol, no containerd): strategies and constraints through
//! `berthctl task run`, ECS's failure reasons, `--wait`, `clientToken`,
//! overrides, and a concurrency property: eight clients running and
//! stopping tasks at once never over-commit an instance nor give a host port
//! twice.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use berth_proto::v1 as pb;
use berth_proto::v1::task_service_client::TaskServiceClient;
use berth_tests::fake_agent::{FakeAgent, FakeHost};
use berth_tests::{eventually, json, ok_stdout, Scheduler};
use tonic::Code;

const WEB: &str = r#"{"family":"web","containerDefinitions":[
    {"name":"web","image":"nginx","memory":128,"cpu":256,
     "environment":[{"name":"MODE","value":"plain"}],
     "portMappings":[{"containerPort":80}]}]}"#;
const FIXED: &str = r#"{"family":"fixed","containerDefinitions":[{"name":"app","image":"nginx",
    "memory":64,"portMappings":[{"containerPort":80,"hostPort":8080}]}]}"#;
const PINNED: &str = r#"{"family":"pinned","placementConstraints":[
    {"type":"memberOf","expression":"attribute:zone == c"}],
    "containerDefinitions":[{"name":"app","image":"nginx","memory":16}]}"#;

fn zone_host(zone: &str) -> FakeHost {
    FakeHost {
        attributes: vec![("zone".into(), zone.into())],
        ..FakeHost::default()
    }
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `berthctl task run ARGS` exits 1 and says `needle` on stderr.
fn run_fails_with(s: &Scheduler, args: &[&str], needle: &str) {
    let mut all = vec!["task", "run"];
    all.extend_from_slice(args);
    let out = s.ctl(&all);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains(needle), "{}", stderr(&out));
}

/// task id → instance id, from `task describe -o json`.
fn placements(s: &Scheduler, ids: &[String]) -> Vec<(String, String)> {
    let mut args = vec!["task", "describe", "-o", "json"];
    args.extend(ids.iter().map(String::as_str));
    let d = json(&s.ctl(&args));
    d["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let inst = t["containerInstanceArn"].as_str().unwrap();
            (
                t["taskArn"]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_owned(),
                inst.rsplit('/').next().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_run_places_by_strategy_and_constraint() {
    let dir = tempfile::tempdir().unwrap();
    let s = Scheduler::start(&dir.path().join("data")).await;
    for def in [WEB, FIXED, PINNED] {
        ok_stdout(&s.ctl_stdin(&["taskdef", "register", "-f", "-"], def));
    }
    let target = s.agent_target().await;
    let mut agents = Vec::new();
    for zone in ["a", "b", "c"] {
        agents.push(
            FakeAgent::join(&target, "default", zone_host(zone))
                .await
                .autopilot(),
        );
    }
    let zone_of: HashMap<String, &str> = agents
        .iter()
        .zip(["a", "b", "c"])
        .map(|(a, z)| (a.id.clone(), z))
        .collect();
    eventually(
        Duration::from_secs(10),
        "three agents connected",
        || async {
            let d = json(&s.ctl(&["instance", "ls", "-o", "json"]));
            let n = d["containerInstances"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|i| i["agentConnected"] == true)
                .count();
            if n == 3 {
                Ok(())
            } else {
                Err(d.to_string())
            }
        },
    )
    .await;

    // spread over zones: one task per zone; --wait sees them RUNNING.
    let out = s.ctl(&[
        "task",
        "run",
        "--taskdef",
        "web",
        "--count",
        "3",
        "--strategy",
        "spread:attribute:zone",
        "--wait",
        "--timeout",
        "20s",
    ]);
    let table = ok_stdout(&out);
    assert_eq!(table.matches("RUNNING").count(), 6, "{table}"); // LAST and DESIRED columns
    assert!(
        stderr(&out).contains("3/3 tasks RUNNING"),
        "{}",
        stderr(&out)
    );
    let ids: Vec<String> = table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap().to_owned())
        .collect();
    let zones: HashSet<&str> = placements(&s, &ids)
        .iter()
        .map(|(_, i)| zone_of[i])
        .collect();
    assert_eq!(zones.len(), 3, "{ids:?}");

    // binpack:memory fills one instance before the next.
    let out = ok_stdout(&s.ctl(&[
        "task",
        "run",
        "--taskdef",
        "web",
        "--count",
        "4",
        "--strategy",
        "binpack:memory",
        "--group",
        "packed",
    ]));
    let ids: Vec<String> = out.lines().map(str::to_owned).collect();
    let instances: HashSet<String> = placements(&s, &ids).into_iter().map(|(_, i)| i).collect();
    assert_eq!(
        instances.len(),
        1,
        "four 128 MiB tasks fit on one host: {out}"
    );

    // memberOf (the request's) and the definition's own constraint.
    let out = ok_stdout(&s.ctl(&[
        "task",
        "run",
        "--taskdef",
        "web",
        "--count",
        "2",
        "--constraint",
        "memberOf:attribute:zone == b",
    ]));
    let ids: Vec<String> = out.lines().map(str::to_owned).collect();
    assert!(placements(&s, &ids).iter().all(|(_, i)| zone_of[i] == "b"));
    let out = ok_stdout(&s.ctl(&["task", "run", "--taskdef", "pinned", "--count", "2"]));
    let ids: Vec<String> = out.lines().map(str::to_owned).collect();
    assert!(placements(&s, &ids).iter().all(|(_, i)| zone_of[i] == "c"));

    // distinctInstance: three hosts, four tasks: three placed, one reason.
    let out = s.ctl(&[
        "task",
        "run",
        "--taskdef",
        "fixed",
        "--count",
        "4",
        "--constraint",
        "distinctInstance",
        "--group",
        "distinct",
    ]);
    assert_eq!(ok_stdout(&out).lines().count(), 3);
    assert!(
        stderr(&out).contains("DistinctInstance placement constraint unsatisfied.")
            && stderr(&out).contains("(1 of 4 tasks not placed)"),
        "{}",
        stderr(&out)
    );
    // Static port 8080 is now taken everywhere: RESOURCE:PORTS, exit 1,
    // naming the closest instance.
    let out = s.ctl(&["task", "run", "--taskdef", "fixed"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("RESOURCE:PORTS"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("container-instance/"),
        "{}",
        stderr(&out)
    );

    // Impossible requests: ECS's reasons, closest instance, exit 1.
    let huge = r#"{"containerOverrides":[{"name":"web","memory":100000}]}"#;
    run_fails_with(
        &s,
        &["--taskdef", "web", "--overrides", huge, "--wait"],
        "RESOURCE:MEMORY",
    );
    run_fails_with(
        &s,
        &[
            "--taskdef",
            "web",
            "--constraint",
            "memberOf:attribute:zone == z",
        ],
        "MemberOf placement constraint unsatisfied.",
    );
    // Bad input names the path.
    run_fails_with(
        &s,
        &[
            "--taskdef",
            "web",
            "--constraint",
            "memberOf:attribute:zone ==",
        ],
        "placementConstraints[0].expression: at column",
    );
    run_fails_with(
        &s,
        &["--taskdef", "web", "--strategy", "binpack:disk"],
        "placementStrategy[0].field",
    );
    run_fails_with(
        &s,
        &[
            "--taskdef",
            "web",
            "--overrides",
            r#"{"containerOverrides":[{"name":"nope"}]}"#,
        ],
        "overrides.containerOverrides[0].name",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_token_overrides_and_inactive_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let s = Scheduler::start(&dir.path().join("data")).await;
    ok_stdout(&s.ctl_stdin(&["taskdef", "register", "-f", "-"], WEB));
    let agent = FakeAgent::join(&s.agent_target().await, "default", FakeHost::default()).await;
    let mut tasks = TaskServiceClient::new(s.authed_channel().await);
    let req = |token: &str, count: i32| pb::RunTaskRequest {
        task_definition: "web".into(),
        count,
        client_token: token.into(),
        overrides: Some(pb::TaskOverride {
            container_overrides: vec![pb::ContainerOverride {
                name: "web".into(),
                command: vec!["httpd".into(), "-f".into()],
                environment: vec![pb::KeyValuePair {
                    name: "MODE".into(),
                    value: "override".into(),
                }],
                memory: Some(200),
                ..Default::default()
            }],
        }),
        ..Default::default()
    };
    let first = tasks
        .run_task(req("retry-1", 2))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.tasks.len(), 2);
    assert_eq!(
        first.tasks[0].memory, "200",
        "the override sizes the reservation"
    );
    let again = tasks
        .run_task(req("retry-1", 2))
        .await
        .unwrap()
        .into_inner();
    let arns = |r: &pb::RunTaskResponse| {
        r.tasks
            .iter()
            .map(|t| t.task_arn.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(arns(&first), arns(&again), "a retry returns the same tasks");
    let err = tasks.run_task(req("retry-1", 3)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("clientToken"), "{}", err.message());

    // The agent runs the definition as overridden.
    let d = agent.desired_where(|d| d.tasks.len() == 2).await;
    let def: serde_json::Value = serde_json::from_str(&d.tasks[0].task_definition_json).unwrap();
    let c = &def["containerDefinitions"][0];
    assert_eq!(c["command"], serde_json::json!(["httpd", "-f"]));
    assert_eq!(
        c["environment"],
        serde_json::json!([{"name":"MODE","value":"override"}])
    );
    assert_eq!(c["memory"], 200);

    // A deregistered revision cannot run.
    ok_stdout(&s.ctl(&["taskdef", "deregister", "web:1"]));
    let err = tasks.run_task(req("", 1)).await.unwrap_err();
    assert!(
        matches!(err.code(), Code::InvalidArgument | Code::NotFound),
        "{err:?}"
    );
    let err = tasks
        .run_task(pb::RunTaskRequest {
            task_definition: "web:1".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("inactive"), "{}", err.message());
}

/// A small xorshift generator: each client's choices are reproducible from
/// its seed, which a failure prints.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_clients_never_over_commit() {
    const HOST_MEMORY: i64 = 1024;
    const HOST_CPU: i64 = 2048;
    let dir = tempfile::tempdir().unwrap();
    let s = Scheduler::start(&dir.path().join("data")).await;
    let defs = [
        r#"{"family":"dyn","containerDefinitions":[{"name":"a","image":"x","memory":96,"cpu":128,
            "portMappings":[{"containerPort":80},{"containerPort":81}]}]}"#,
        r#"{"family":"static","containerDefinitions":[{"name":"a","image":"x","memory":64,
            "portMappings":[{"containerPort":80,"hostPort":20005}]}]}"#,
        r#"{"family":"big","cpu":"512","memory":"300","containerDefinitions":[{"name":"a","image":"x"}]}"#,
    ];
    for d in defs {
        ok_stdout(&s.ctl_stdin(&["taskdef", "register", "-f", "-"], d));
    }
    let target = s.agent_target().await;
    let mut agents = Vec::new();
    for i in 0..4 {
        let host = FakeHost {
            cpu_units: HOST_CPU,
            memory_mib: HOST_MEMORY,
            // 16 ports per host: dynamic ports run out too.
            port_range: (20000, 20015),
            reserved_tcp_ports: vec![],
            attributes: vec![("zone".into(), ["a", "b"][i % 2].into())],
        };
        agents.push(FakeAgent::join(&target, "default", host).await.autopilot());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let strategies = [
        "binpack:memory",
        "binpack:cpu",
        "spread:instanceId",
        "spread:attribute:zone",
        "random",
    ];
    let mut clients = Vec::new();
    for c in 0..8u64 {
        let channel = s.authed_channel().await;
        clients.push(tokio::spawn(async move {
            let seed = 0x9E37_79B9_7F4A_7C15 ^ (c + 1);
            let mut rng = Rng(seed);
            let mut tasks = TaskServiceClient::new(channel);
            let mut mine: Vec<String> = Vec::new();
            let mut placed = 0usize;
            for _ in 0..25 {
                if !mine.is_empty() && rng.below(4) == 0 {
                    let i = rng.below(mine.len() as u64) as usize;
                    let id = mine.swap_remove(i);
                    tasks
                        .stop_task(pb::StopTaskRequest {
                            task: id,
                            ..Default::default()
                        })
                        .await
                        .unwrap_or_else(|e| panic!("seed {seed:#x}: stop: {e}"));
                    continue;
                }
                let family = ["dyn", "static", "big"][rng.below(3) as usize];
                let strategy = strategies[rng.below(5) as usize];
                let (kind, field) = strategy.split_once(':').unwrap_or((strategy, ""));
                let r = tasks
                    .run_task(pb::RunTaskRequest {
                        task_definition: family.into(),
                        count: 1 + rng.below(4) as i32,
                        placement_strategy: vec![pb::PlacementStrategy {
                            r#type: kind.into(),
                            field: field.into(),
                        }],
                        ..Default::default()
                    })
                    .await
                    .unwrap_or_else(|e| panic!("seed {seed:#x}: run: {e}"))
                    .into_inner();
                placed += r.tasks.len();
                mine.extend(
                    r.tasks
                        .iter()
                        .map(|t| t.task_arn.rsplit('/').next().unwrap().to_owned()),
                );
            }
            placed
        }));
    }
    let mut placed = 0;
    for c in clients {
        placed += c.await.unwrap();
    }
    assert!(placed > 40, "the clients placed only {placed} tasks");

    // Every task that holds a reservation (not STOPPED), per instance.
    let mut tasks = TaskServiceClient::new(s.authed_channel().await);
    let mut arns = Vec::new();
    for desired in ["RUNNING", "STOPPED"] {
        let mut next_token = String::new();
        loop {
            let page = tasks
                .list_tasks(pb::ListTasksRequest {
                    desired_status: desired.into(),
                    next_token: next_token.clone(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            arns.extend(page.task_arns);
            if page.next_token.is_empty() {
                break;
            }
            next_token = page.next_token;
        }
    }
    let mut held: BTreeMap<String, (i64, i64, Vec<u32>)> = BTreeMap::new();
    for chunk in arns.chunks(100) {
        let d = tasks
            .describe_tasks(pb::DescribeTasksRequest {
                tasks: chunk.to_vec(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        for t in d.tasks.iter().filter(|t| t.last_status != "STOPPED") {
            let e = held.entry(t.container_instance_arn.clone()).or_default();
            e.0 += t.cpu.parse::<i64>().unwrap_or(0);
            e.1 += t.memory.parse::<i64>().unwrap();
            for c in &t.containers {
                e.2.extend(c.network_bindings.iter().map(|b| b.host_port));
            }
        }
    }
    assert!(!held.is_empty());
    for (instance, (cpu, memory, mut ports)) in held {
        assert!(
            cpu <= HOST_CPU,
            "{instance}: {cpu} CPU units over {HOST_CPU}"
        );
        assert!(
            memory <= HOST_MEMORY,
            "{instance}: {memory} MiB over {HOST_MEMORY}"
        );
        let n = ports.len();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), n, "{instance}: a host port given twice");
        assert!(
            ports.iter().all(|p| (20000..=20015).contains(p)),
            "{ports:?}"
        );
    }
    drop(agents);
}
