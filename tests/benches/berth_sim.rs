//! `berth-sim`: the scale simulator. One real scheduler process (release
//! build) and N simulated agents in this process, each a real mutual-TLS
//! gRPC `Connect` session that registered with an activation code, reports
//! realistic resources and attributes (three zones, three instance types),
//! answers every desired state by reporting its new tasks RUNNING, and
//! heartbeats. Clients then drive RunTask calls concurrently and the
//! simulator prints placements/s, RunTask latency, the time until the
//! scheduler records every task RUNNING (not merely until the simulator
//! queued the reports), the scheduler's RSS and the store's size.
//!
//! ```text
//! cargo build --release --workspace --bins
//! SIM_INSTANCES=10000 SIM_TASKS=100000 cargo bench -p berth-tests --bench berth-sim
//! ```
//!
//! Settings (environment): `SIM_INSTANCES` (1000), `SIM_TASKS` (10000),
//! `SIM_COUNT` tasks per RunTask (10, ECS's maximum), `SIM_CLIENTS`
//! concurrent RunTask callers (32), `SIM_STRATEGY` (`spread:attribute:ecs.availability-zone`,
//! or `binpack:memory`, `random`, ...).
//!
//! `SIM_SCENARIO=service` runs the service scenario instead: one REPLICA
//! service of `SIM_TASKS` tasks (default placement), the time until it is
//! at steady state, then a rolling deployment of a new revision with
//! `SIM_MIN`/`SIM_MAX` percent (100/200) and the time until it completes.
//! The simulated agents report every desired STOPPED task STOPPED.
//!
//! `SIM_SCENARIO=churn` measures retention: clients call RunTask (a unique
//! `clientToken` each, so tokens and audit records accumulate too) until
//! `SIM_LIFETIMES` (100000) tasks have run; each simulated task exits
//! (STOPPED, EssentialContainerExited) `SIM_LIFETIME_MS` (1000) after its
//! RUNNING report. The scheduler keeps stopped tasks and client tokens
//! `SIM_RETENTION` (30s) and at most `SIM_AUDIT_MAX` (5000) audit records.
//! Every `SIM_SAMPLE_SECS` (15) it prints the lifetimes so far, the
//! store's records per table (`berth_store_records` on `/metrics`), the
//! store's size on disk and the scheduler's RSS, then goes on sampling for
//! `SIM_TAIL_SECS` (90) after the last task stopped.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails loudly

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use berth_proto::v1 as pb;
use berth_proto::v1::agent_service_client::AgentServiceClient;
use berth_proto::v1::task_service_client::TaskServiceClient;
use berth_proto::v1::{agent_message, scheduler_message, AgentMessage};
use berth_tests::fake_agent::{report_for, AgentCert, AgentTarget};
use berth_tests::Scheduler;
use tokio::sync::{mpsc, Semaphore};
use tokio_stream::wrappers::ReceiverStream;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))
        })
        .unwrap_or(default)
}

const TASK_DEF: &str = r#"{"family":"sim","containerDefinitions":[{"name":"app","image":"sim/app:1",
    "cpu":10,"memory":64,"portMappings":[{"containerPort":8080}]}]}"#;

/// (type, cpu units, memory MiB), as EC2 reports them.
const TYPES: [(&str, i64, i64); 3] = [
    ("m5.large", 2048, 7680),
    ("m5.xlarge", 4096, 15616),
    ("c5.2xlarge", 8192, 15616),
];
const ZONES: [&str; 3] = ["us-east-1a", "us-east-1b", "us-east-1c"];

/// Counters shared by the simulated agents.
#[derive(Default)]
struct Counters {
    connected: AtomicUsize,
    /// RUNNING reports queued on the agents' uplinks (not yet seen by the
    /// scheduler).
    running_reported: AtomicU64,
    desired_messages: AtomicU64,
    /// Encoded bytes of those messages.
    desired_bytes: AtomicU64,
    /// Churn: STOPPED reports queued after a task's lifetime.
    stopped_reported: AtomicU64,
    /// Churn: a task exits this long after its RUNNING report (0: never).
    lifetime_ms: AtomicU64,
    /// Per simulated agent, the last task it queued a RUNNING report for.
    /// The scheduler handles one stream's reports in order: once this task
    /// reads RUNNING, so do all that agent's earlier ones.
    last_running: Mutex<HashMap<usize, String>>,
}

/// Whether the simulated agents take desired-state deltas (`SIM_DELTAS`,
/// default 1; 0 plays agents from before deltas, sent every whole set).
fn deltas() -> bool {
    std::env::var("SIM_DELTAS").map_or(true, |v| v != "0")
}

/// One simulated host: registers, connects, answers desired states.
async fn sim_agent(
    i: usize,
    target: AgentTarget,
    cert: AgentCert,
    counters: Arc<Counters>,
) -> Result<(), String> {
    let channel = target.channel(Some(&cert)).await?;
    let mut client = AgentServiceClient::new(channel);
    let (tx, rx) = mpsc::channel::<AgentMessage>(1024);
    let (kind, cpu, memory) = TYPES[i % TYPES.len()];
    tx.send(AgentMessage {
        msg: Some(agent_message::Msg::Hello(pb::Hello {
            resources: Some(pb::HostResources {
                cpu_units: cpu,
                memory_mib: memory,
                port_range_start: 20000,
                port_range_end: 32767,
                reserved_tcp_ports: vec![22],
                reserved_udp_ports: vec![],
            }),
            attributes: vec![
                pb::Attribute {
                    name: "ecs.availability-zone".into(),
                    value: ZONES[(i / TYPES.len()) % ZONES.len()].into(),
                },
                pb::Attribute {
                    name: "ecs.instance-type".into(),
                    value: kind.into(),
                },
            ],
            agent_version: "0.1.0-sim".into(),
            hostname: format!("sim-{i}"),
            address: String::new(),
            desired_deltas: deltas(),
        })),
    })
    .await
    .map_err(|e| e.to_string())?;
    let mut down = client
        .connect(tonic::Request::new(ReceiverStream::new(rx)))
        .await
        .map_err(|e| e.to_string())?
        .into_inner();
    counters.connected.fetch_add(1, Ordering::Relaxed);
    let beat = tokio::spawn({
        let tx = tx.clone();
        async move {
            for seq in 0.. {
                tokio::time::sleep(Duration::from_secs(5)).await;
                let hb = AgentMessage {
                    msg: Some(agent_message::Msg::Heartbeat(pb::Heartbeat {
                        seq,
                        sent_at: None,
                    })),
                };
                if tx.send(hb).await.is_err() {
                    return;
                }
            }
        }
    });
    let mut reported: HashSet<String> = HashSet::new();
    while let Ok(Some(m)) = down.message().await {
        let Some(scheduler_message::Msg::DesiredState(d)) = m.msg else {
            continue;
        };
        counters.desired_messages.fetch_add(1, Ordering::Relaxed);
        counters
            .desired_bytes
            .fetch_add(prost::Message::encoded_len(&d) as u64, Ordering::Relaxed);
        if deltas() {
            // A delta's tasks are the ones that changed; every task is
            // looked at once either way. The scheduler's bookkeeping wants
            // the acknowledgement.
            let ack = pb::DesiredAck {
                generation: d.generation,
                resync: false,
            };
            let ack = AgentMessage {
                msg: Some(agent_message::Msg::DesiredAck(ack)),
            };
            if tx.send(ack).await.is_err() {
                break;
            }
        }
        for t in &d.tasks {
            if t.desired_status == "STOPPED" && reported.insert(format!("{}/stopped", t.task_arn)) {
                let r = report_for(t, "STOPPED");
                if tx
                    .send(AgentMessage {
                        msg: Some(agent_message::Msg::TaskStatus(r)),
                    })
                    .await
                    .is_err()
                {
                    break;
                }
                continue;
            }
            if t.desired_status == "RUNNING" && reported.insert(t.task_arn.clone()) {
                let r = report_for(t, "RUNNING");
                if tx
                    .send(AgentMessage {
                        msg: Some(agent_message::Msg::TaskStatus(r)),
                    })
                    .await
                    .is_err()
                {
                    break;
                }
                counters.running_reported.fetch_add(1, Ordering::Relaxed);
                counters
                    .last_running
                    .lock()
                    .unwrap()
                    .insert(i, t.task_arn.clone());
                let lifetime = counters.lifetime_ms.load(Ordering::Relaxed);
                if lifetime > 0 {
                    let (tx, counters, t) = (tx.clone(), counters.clone(), t.clone());
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(lifetime)).await;
                        let r = report_for(&t, "STOPPED");
                        let msg = AgentMessage {
                            msg: Some(agent_message::Msg::TaskStatus(r)),
                        };
                        if tx.send(msg).await.is_ok() {
                            counters.stopped_reported.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                }
            }
        }
    }
    beat.abort();
    Ok(())
}

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
                .and_then(|r| r.split_whitespace().next())
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU seconds (user + system) of process `pid` so far.
fn cpu_secs(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command's closing parenthesis; utime and stime are
    // the 14th and 15th fields of the whole line.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn dir_bytes(p: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(p) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Bytes the files under `p` occupy on the file system (allocated blocks:
/// what `du` shows; sled's files may be larger than what they hold).
fn dir_allocated(p: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(p) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_allocated(&e.path()),
            Ok(m) => m.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

#[tokio::main]
async fn main() {
    // `cargo test --all-targets` builds bench targets; only `cargo bench`
    // (which passes --bench) measures.
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!(
            "berth-sim is a benchmark: run it with `cargo bench -p berth-tests --bench berth-sim`"
        );
        return;
    }
    raise_fd_limit();
    let instances = env_usize("SIM_INSTANCES", 1000);
    let tasks = env_usize("SIM_TASKS", 10_000);
    let count = env_usize("SIM_COUNT", 10).clamp(1, 1000);
    let clients = env_usize("SIM_CLIENTS", 32).max(1);
    let strategy = std::env::var("SIM_STRATEGY")
        .unwrap_or_else(|_| "spread:attribute:ecs.availability-zone".to_owned());
    eprintln!(
        "berth-sim: {instances} instances, {tasks} tasks, {count} per RunTask, {clients} clients, \
         strategy {strategy}; binaries from {}",
        berth_tests::bin_dir().display()
    );

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("sched");
    let churn = std::env::var("SIM_SCENARIO").as_deref() == Ok("churn");
    let retention = std::env::var("SIM_RETENTION").unwrap_or_else(|_| "30s".to_owned());
    let audit_max = env_usize("SIM_AUDIT_MAX", 5000).to_string();
    let metrics_addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let mut env = vec![
        ("BERTH_HEARTBEAT_INTERVAL", "5s"),
        ("BERTH_HEARTBEAT_TTL", "60s"),
        ("RUST_LOG", "warn"),
    ];
    if churn {
        env.extend([
            ("BERTH_RETENTION_STOPPED_TASKS", retention.as_str()),
            ("BERTH_RETENTION_CLIENT_TOKENS", retention.as_str()),
            ("BERTH_RETENTION_AUDIT_MAX_RECORDS", audit_max.as_str()),
            ("BERTH_RETENTION_INTERVAL", "5s"),
            ("BERTH_METRICS_LISTEN", metrics_addr.as_str()),
        ]);
    }
    let sched = Scheduler::start_with(&data, &env).await;
    let pid = sched.pid();
    let ok = sched.ctl_stdin(&["taskdef", "register", "-f", "-"], TASK_DEF);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let target = sched.agent_target().await;
    // An activation admits at most 1000 hosts (as SSM's do).
    let mut activations = Vec::new();
    for _ in 0..instances.div_ceil(1000) {
        activations.push(target.activation("default", 1000, 0).await);
    }

    // Join: register (key, CSR, certificate) and connect, 64 at a time.
    let t0 = Instant::now();
    let counters = Arc::new(Counters::default());
    if churn {
        counters.lifetime_ms.store(
            env_usize("SIM_LIFETIME_MS", 1000).max(1) as u64,
            Ordering::Relaxed,
        );
    }
    let gate = Arc::new(Semaphore::new(64));
    let mut joins = Vec::with_capacity(instances);
    for i in 0..instances {
        let target = target.clone();
        let (activation, code) = activations[i / 1000].clone();
        let counters = counters.clone();
        let gate = gate.clone();
        joins.push(tokio::spawn(async move {
            let permit = gate.acquire_owned().await.unwrap();
            let (_, cert) = target
                .register(&activation, &code)
                .await
                .unwrap_or_else(|e| panic!("register {i}: {e}"));
            drop(permit);
            if let Err(e) = sim_agent(i, target, cert, counters).await {
                eprintln!("sim agent {i}: {e}");
            }
        }));
    }
    while counters.connected.load(Ordering::Relaxed) < instances {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every agent has had its first (empty) desired state.
    while (counters.desired_messages.load(Ordering::Relaxed) as usize) < instances {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let join_time = t0.elapsed();
    let rss_joined = status_kib(pid, "VmRSS");
    eprintln!("joined {instances} agents in {join_time:.1?}");
    if churn {
        let metrics = metrics_addr.parse().unwrap();
        churn_scenario(&sched, &data, metrics, &counters, &retention).await;
        for j in joins {
            j.abort();
        }
        return;
    }
    if std::env::var("SIM_SCENARIO").as_deref() == Ok("service") {
        service_scenario(&sched, instances, tasks, join_time, rss_joined).await;
        for j in joins {
            j.abort();
        }
        return;
    }

    // Drive RunTask.
    let calls = tasks.div_ceil(count);
    let next = Arc::new(AtomicUsize::new(0));
    let placed = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let (kind, field) = strategy.split_once(':').unwrap_or((strategy.as_str(), ""));
    let strategy_pb = pb::PlacementStrategy {
        r#type: kind.into(),
        field: field.into(),
    };
    let cpu0 = (cpu_secs(pid), cpu_secs(std::process::id()));
    let t1 = Instant::now();
    let mut drivers = Vec::new();
    for _ in 0..clients {
        let channel = sched.authed_channel().await;
        let (next, placed, failures) = (next.clone(), placed.clone(), failures.clone());
        let strategy = strategy_pb.clone();
        drivers.push(tokio::spawn(async move {
            let mut client = TaskServiceClient::new(channel);
            let mut latencies = Vec::new();
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= calls {
                    return latencies;
                }
                let n = count.min(tasks - k * count);
                let started = Instant::now();
                let r = client
                    .run_task(pb::RunTaskRequest {
                        task_definition: "sim".into(),
                        count: n as i32,
                        placement_strategy: vec![strategy.clone()],
                        ..Default::default()
                    })
                    .await
                    .expect("RunTask")
                    .into_inner();
                latencies.push(started.elapsed());
                placed.fetch_add(r.tasks.len() as u64, Ordering::Relaxed);
                if !r.failures.is_empty() {
                    failures.fetch_add((n - r.tasks.len()) as u64, Ordering::Relaxed);
                }
            }
        }));
    }
    let mut latencies = Vec::new();
    for d in drivers {
        latencies.extend(d.await.unwrap());
    }
    let place_time = t1.elapsed();
    let placed = placed.load(Ordering::Relaxed);
    eprintln!("placed {placed} tasks in {place_time:.1?}; waiting for RUNNING reports");
    let deadline = Instant::now() + Duration::from_secs(1800);
    while counters.running_reported.load(Ordering::Relaxed) < placed {
        assert!(
            Instant::now() < deadline,
            "the simulated agents queued only {} of {placed} RUNNING reports in 30 min",
            counters.running_reported.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let running_reported = counters.running_reported.load(Ordering::Relaxed);
    let all_reported = t1.elapsed();
    // Queued is not recorded: wait until the scheduler shows each agent's
    // last reported task RUNNING (reports on one stream are handled in
    // order, so all earlier ones are recorded too).
    let mut waiting: Vec<String> = counters
        .last_running
        .lock()
        .unwrap()
        .values()
        .cloned()
        .collect();
    let mut client = TaskServiceClient::new(sched.authed_channel().await);
    while !waiting.is_empty() {
        let mut still = Vec::new();
        for chunk in waiting.chunks(100) {
            let r = client
                .describe_tasks(pb::DescribeTasksRequest {
                    cluster: String::new(),
                    tasks: chunk.to_vec(),
                    ..Default::default()
                })
                .await
                .expect("DescribeTasks")
                .into_inner();
            assert!(r.failures.is_empty(), "{:?}", r.failures);
            still.extend(
                r.tasks
                    .into_iter()
                    .filter(|t| t.last_status != "RUNNING")
                    .map(|t| t.task_arn),
            );
        }
        waiting = still;
        if !waiting.is_empty() {
            assert!(
                Instant::now() < deadline,
                "after 30 min the scheduler still shows {} agents' last task not RUNNING",
                waiting.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let all_running = t1.elapsed();
    let cpu = (
        cpu_secs(pid) - cpu0.0,
        cpu_secs(std::process::id()) - cpu0.1,
    );
    // Outside the timing: the scheduler's own count of RUNNING tasks.
    let cluster =
        pb::cluster_service_client::ClusterServiceClient::new(sched.authed_channel().await)
            .describe_clusters(pb::DescribeClustersRequest {
                clusters: vec![],
                ..Default::default()
            })
            .await
            .expect("DescribeClusters")
            .into_inner()
            .clusters
            .remove(0);
    assert_eq!(
        cluster.running_tasks_count as u64, placed,
        "the scheduler's RUNNING count is every placed task"
    );
    latencies.sort_unstable();
    let rss = status_kib(pid, "VmRSS");
    let hwm = status_kib(pid, "VmHWM");
    let store = dir_bytes(&data.join("sled"));

    println!("berth-sim results");
    println!("  instances                  {instances}");
    println!("  tasks requested            {tasks} ({calls} RunTask calls of {count}, {clients} clients, {strategy})");
    println!(
        "  join (register + connect)  {:.1} s",
        join_time.as_secs_f64()
    );
    println!(
        "  placed (durable, acked)    {placed} in {:.2} s = {:.0} placements/s",
        place_time.as_secs_f64(),
        placed as f64 / place_time.as_secs_f64()
    );
    println!(
        "  not placed                 {}",
        failures.load(Ordering::Relaxed)
    );
    println!(
        "  RunTask latency p50/p99    {:.1?} / {:.1?}",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99)
    );
    println!(
        "  RUNNING reports queued     {running_reported} after {:.2} s (simulator side)",
        all_reported.as_secs_f64()
    );
    println!(
        "  all RUNNING (scheduler)    {} after {:.2} s",
        cluster.running_tasks_count,
        all_running.as_secs_f64()
    );
    println!(
        "  desired-state messages     {} ({} MiB encoded, deltas {})",
        counters.desired_messages.load(Ordering::Relaxed),
        counters.desired_bytes.load(Ordering::Relaxed) / (1 << 20),
        deltas()
    );
    println!(
        "  CPU until all RUNNING      scheduler {:.1} s, simulator {:.1} s (of {:.1} s on 2 cores)",
        cpu.0,
        cpu.1,
        2.0 * all_running.as_secs_f64()
    );
    println!(
        "  scheduler RSS              {:.0} MiB joined, {:.0} MiB at end (peak {:.0} MiB)",
        rss_joined as f64 / 1024.0,
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    println!(
        "  store size                 {:.0} MiB",
        store as f64 / (1024.0 * 1024.0)
    );
    for j in joins {
        j.abort();
    }
    drop(sched);
}

/// The service scenario: a REPLICA service of `tasks` tasks to steady state,
/// then a rolling deployment of a second revision.
async fn service_scenario(
    sched: &Scheduler,
    instances: usize,
    tasks: usize,
    join_time: Duration,
    rss_joined: u64,
) {
    use berth_proto::v1::service_service_client::ServiceServiceClient;
    use berth_tests::service_probe::describe;
    let min = env_usize("SIM_MIN", 100) as i32;
    let max = env_usize("SIM_MAX", 200) as i32;
    let pid = sched.pid();
    let ops = sched.authed_channel().await;
    let mut client = ServiceServiceClient::new(ops.clone());
    let steady = |deployment: String| {
        let ops = ops.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(3600);
            loop {
                let s = describe(&ops, "sim").await;
                let p = &s.deployments[0];
                let others = s
                    .deployments
                    .iter()
                    .filter(|d| d.status == "ACTIVE")
                    .count();
                if p.id == deployment
                    && p.rollout_state == "COMPLETED"
                    && others == 0
                    && s.running_count == s.desired_count
                {
                    return s;
                }
                assert!(
                    Instant::now() < deadline,
                    "no steady state: {:?}",
                    s.deployments
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let cpu0 = cpu_secs(pid);
    let t0 = Instant::now();
    let created = client
        .create_service(pb::CreateServiceRequest {
            service_name: "sim".into(),
            task_definition: "sim:1".into(),
            desired_count: Some(tasks as i32),
            deployment_configuration: Some(pb::DeploymentConfiguration {
                minimum_healthy_percent: Some(min),
                maximum_percent: Some(max),
                deployment_circuit_breaker: None,
            }),
            ..Default::default()
        })
        .await
        .expect("CreateService")
        .into_inner()
        .service
        .unwrap();
    steady(created.deployments[0].id.clone()).await;
    let create_time = t0.elapsed();
    let cpu_create = cpu_secs(pid) - cpu0;
    eprintln!("service of {tasks} at steady state after {create_time:.1?}");
    let ok = sched.ctl_stdin(&["taskdef", "register", "-f", "-"], TASK_DEF);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let cpu1 = cpu_secs(pid);
    let t1 = Instant::now();
    let updated = client
        .update_service(pb::UpdateServiceRequest {
            service: "sim".into(),
            task_definition: "sim:2".into(),
            ..Default::default()
        })
        .await
        .expect("UpdateService")
        .into_inner()
        .service
        .unwrap();
    let s = steady(updated.deployments[0].id.clone()).await;
    let deploy_time = t1.elapsed();
    let cpu_deploy = cpu_secs(pid) - cpu1;
    let rss = status_kib(pid, "VmRSS");
    let hwm = status_kib(pid, "VmHWM");
    println!("berth-sim service results");
    println!("  instances                  {instances}");
    println!(
        "  join (register + connect)  {:.1} s",
        join_time.as_secs_f64()
    );
    println!(
        "  service of {tasks} to steady  {:.2} s (scheduler CPU {:.1} s)",
        create_time.as_secs_f64(),
        cpu_create
    );
    println!(
        "  rolling deployment {min}/{max}  {:.2} s (scheduler CPU {:.1} s), {} events",
        deploy_time.as_secs_f64(),
        cpu_deploy,
        s.events.len()
    );
    println!(
        "  scheduler RSS              {:.0} MiB joined, {:.0} MiB at end (peak {:.0} MiB)",
        rss_joined as f64 / 1024.0,
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
}

/// `berth_store_records` from the scheduler's `/metrics`: table → records.
async fn store_records(addr: std::net::SocketAddr) -> HashMap<String, u64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut out = HashMap::new();
    let Ok(mut conn) = tokio::net::TcpStream::connect(addr).await else {
        return out;
    };
    if conn
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: berth-sim\r\n\r\n")
        .await
        .is_err()
    {
        return out;
    }
    let mut text = String::new();
    let _ = conn.read_to_string(&mut text).await;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("berth_store_records{table=\"") else {
            continue;
        };
        if let Some((table, n)) = rest.split_once("\"} ") {
            out.insert(table.to_owned(), n.trim().parse().unwrap_or(0));
        }
    }
    out
}

/// The churn scenario (see the module doc): RunTask until `SIM_LIFETIMES`
/// tasks have run and exited, sampling the store and the RSS.
async fn churn_scenario(
    sched: &Scheduler,
    data: &std::path::Path,
    metrics: std::net::SocketAddr,
    counters: &Arc<Counters>,
    retention: &str,
) {
    let lifetimes = env_usize("SIM_LIFETIMES", 100_000) as u64;
    let count = env_usize("SIM_COUNT", 10).clamp(1, 10);
    let clients = env_usize("SIM_CLIENTS", 8).max(1);
    let sample = Duration::from_secs(env_usize("SIM_SAMPLE_SECS", 15) as u64);
    let tail = Duration::from_secs(env_usize("SIM_TAIL_SECS", 90) as u64);
    let pid = sched.pid();
    let placed = Arc::new(AtomicU64::new(0));
    let calls = Arc::new(AtomicU64::new(0));
    println!(
        "berth-sim churn: {lifetimes} task lifetimes of {} ms, retention {retention}, \
         {clients} clients × RunTask of {count}",
        counters.lifetime_ms.load(Ordering::Relaxed)
    );
    let t0 = Instant::now();
    let cpu0 = cpu_secs(pid);
    let mut drivers = Vec::new();
    for c in 0..clients {
        let channel = sched.authed_channel().await;
        let (placed, calls) = (placed.clone(), calls.clone());
        drivers.push(tokio::spawn(async move {
            let mut client = TaskServiceClient::new(channel);
            while placed.load(Ordering::Relaxed) < lifetimes {
                let k = calls.fetch_add(1, Ordering::Relaxed);
                let r = client
                    .run_task(pb::RunTaskRequest {
                        task_definition: "sim".into(),
                        count: count as i32,
                        client_token: format!("churn-{c}-{k}"),
                        ..Default::default()
                    })
                    .await
                    .expect("RunTask")
                    .into_inner();
                placed.fetch_add(r.tasks.len() as u64, Ordering::Relaxed);
                if r.tasks.is_empty() {
                    // Every instance is full: wait for exits.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }));
    }
    let tables = [
        "tasks",
        "instance_tasks",
        "retention",
        "run_tokens",
        "audit",
    ];
    println!(
        "| elapsed | lifetimes | {} | store files (allocated) | scheduler RSS |",
        tables.join(" | ")
    );
    println!("|---|---|{}---|---|", "---|".repeat(tables.len()));
    let mut finished: Option<Instant> = None;
    let mut next = Instant::now();
    loop {
        tokio::time::sleep_until(next).await;
        next += sample;
        let stopped = counters.stopped_reported.load(Ordering::Relaxed);
        let records = store_records(metrics).await;
        println!(
            "| {:.0} s | {stopped} | {} | {:.1} MiB ({:.1} MiB) | {:.0} MiB |",
            t0.elapsed().as_secs_f64(),
            tables
                .iter()
                .map(|t| records.get(*t).copied().unwrap_or(0).to_string())
                .collect::<Vec<_>>()
                .join(" | "),
            dir_bytes(&data.join("sled")) as f64 / (1024.0 * 1024.0),
            dir_allocated(&data.join("sled")) as f64 / (1024.0 * 1024.0),
            status_kib(pid, "VmRSS") as f64 / 1024.0,
        );
        if finished.is_none() && stopped >= lifetimes {
            finished = Some(Instant::now());
            println!(
                "all {stopped} lifetimes after {:.1} s ({:.0}/s), scheduler CPU {:.1} s",
                t0.elapsed().as_secs_f64(),
                stopped as f64 / t0.elapsed().as_secs_f64(),
                cpu_secs(pid) - cpu0
            );
        }
        if finished.is_some_and(|f| f.elapsed() >= tail) {
            break;
        }
    }
    for d in drivers {
        d.await.unwrap();
    }
    println!(
        "  scheduler RSS peak          {:.0} MiB",
        status_kib(pid, "VmHWM") as f64 / 1024.0
    );
}
