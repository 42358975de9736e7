//! `berth-bench-tasks`: a benchmark, not a test (`harness = false`, never
//! run by `cargo test`). It measures, on this host, with a private containerd,
//! a local registry and the real release binaries:
//!
//! - StartTask → RUNNING latency for a warm image (gRPC StartTask, then
//!   DescribeTasks polled every 5 ms until `lastStatus` is RUNNING), for a
//!   `sleep 3600` busybox container on `networkMode: none` and on `bridge`
//!   with one dynamic host port, interleaved with `ctr run -d` of the same
//!   image in a namespace of the same containerd, so that the host's noise
//!   hits all three alike;
//! - the same for `none` with the agent on `prefer-cached` (no registry
//!   round trip for a cached image);
//! - where Berth's time goes, from the task's own timestamps (createdAt,
//!   pullStartedAt, pullStoppedAt, startedAt; millisecond precision);
//! - the agent's and the scheduler's RSS idle and with 20 running tasks,
//!   and their CPU time per launch.
//!
//! Run (as root, after `cargo build --release --workspace --bins`):
//! `cargo bench -p berth-tests --bench berth-bench-tasks`. Settings:
//! `BENCH_LAUNCHES` (default 50), `BENCH_BATCH` (default 10: tasks are
//! stopped in batches so the host does not fill up), `BENCH_RSS_TASKS`
//! (default 20). See BENCHMARKS.md.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails loudly by design

use std::path::Path;
use std::time::{Duration, SystemTime};

use berth_proto::v1::container_instance_service_client::ContainerInstanceServiceClient;
use berth_proto::v1::task_definition_service_client::TaskDefinitionServiceClient;
use berth_proto::v1::task_service_client::TaskServiceClient;
use berth_proto::v1::{
    DescribeContainerInstancesRequest, DescribeTasksRequest, RegisterTaskDefinitionRequest,
    StartTaskRequest, StopTaskRequest, Task,
};
use berth_testkit::containerd::Containerd;
use berth_testkit::registry::Registry;
use berth_tests::{Agent, Scheduler};
use tokio::time::Instant;

const CLUSTER: &str = "default";
/// How often DescribeTasks is polled while waiting for RUNNING.
const POLL: Duration = Duration::from_millis(5);

const TD_NONE: &str = r#"{"family":"bench-none","networkMode":"none","containerDefinitions":[{
    "name":"sleep","image":"IMAGE","memory":32,"essential":true,
    "entryPoint":["sh","-c"],"command":["sleep 3600"]}]}"#;
const TD_BRIDGE: &str = r#"{"family":"bench-bridge","networkMode":"bridge","containerDefinitions":[{
    "name":"sleep","image":"IMAGE","memory":32,"essential":true,
    "entryPoint":["sh","-c"],"command":["sleep 3600"],
    "portMappings":[{"containerPort":8080,"hostPort":0}]}]}"#;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))
        })
        .unwrap_or(default)
}

// ------------------------------------------------------------------ cluster

/// A scheduler, an agent on its own containerd, and a registry holding the
/// busybox image, set up as tests/tests/containerd.rs does.
struct Bench {
    sched: Scheduler,
    agent: Agent,
    ctd: Containerd,
    _registry: Registry,
    image: String,
    instance_arn: String,
    agent_env: Vec<(String, String)>,
    tasks: TaskServiceClient<berth_tests::AuthedChannel>,
    /// containerd namespace of the `ctr run` baseline. Unique per run:
    /// runc keeps its state in `/run/containerd/runc/<namespace>/<id>`,
    /// shared by every containerd on the host.
    ctr_ns: String,
    bridge: String,
    cgroup_parent: String,
    /// Round trips of the DescribeTasks polls while waiting for RUNNING (ms).
    describe_rtt: Vec<f64>,
    /// Tasks that failed to start: (family, stopped reason).
    failures: Vec<(String, String)>,
    _dir: tempfile::TempDir,
}

impl Bench {
    async fn start() -> Self {
        berth_testkit::require_root();
        let dir = tempfile::tempdir().unwrap();
        let ctd = Containerd::start();
        let registry = Registry::start(None);
        let opts = berth_testkit::image::ImageOptions {
            stop_signal: None,
            ..Default::default()
        };
        let pushed = registry.push_busybox_with(
            "berth/busybox",
            "latest",
            &opts,
            berth_testkit::image::ImageFormat::Oci,
        );
        let sched = Scheduler::start(&dir.path().join("sched")).await;
        // Its own 50-port range and subnet, clear of other runs' leftovers.
        let (r, port_base, subnet) = berth_tests::free_slot(215);
        let agent_env: Vec<(String, String)> = vec![
            (
                "BERTH_CONTAINERD_SOCKET".into(),
                ctd.socket().display().to_string(),
            ),
            ("BERTH_INSECURE_REGISTRIES".into(), registry.addr()),
            ("BERTH_TASK_CLEANUP_WAIT".into(), "1s".into()),
            // `sleep` as PID 1 ignores SIGTERM: do not wait 30 s per batch.
            ("BERTH_STOP_TIMEOUT".into(), "1s".into()),
            ("BERTH_BRIDGE".into(), format!("bb{r:04x}")),
            ("BERTH_BRIDGE_SUBNET".into(), subnet),
            ("BERTH_CGROUP_PARENT".into(), format!("berth-bench-{r:04x}")),
            (
                "BERTH_PORT_RANGE".into(),
                format!("{port_base}-{}", port_base + 49),
            ),
        ];
        let agent_dir = dir.path().join("agent");
        let agent = Agent::start_with_env(&sched, CLUSTER, &agent_dir, &agent_env);
        let channel = sched.authed_channel().await;
        let mut b = Self {
            tasks: TaskServiceClient::new(channel),
            sched,
            agent,
            ctd,
            image: pushed.reference,
            _registry: registry,
            instance_arn: String::new(),
            agent_env,
            ctr_ns: format!("bench-{r:04x}"),
            bridge: format!("bb{r:04x}"),
            cgroup_parent: format!("berth-bench-{r:04x}"),
            failures: Vec::new(),
            describe_rtt: Vec::new(),
            _dir: dir,
        };
        b.instance_arn = b.wait_connected().await;
        b
    }

    /// Waits until the agent shows as connected; returns its instance ARN.
    async fn wait_connected(&self) -> String {
        let mut client = ContainerInstanceServiceClient::new(self.sched.authed_channel().await);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let resp = client
                .describe_container_instances(DescribeContainerInstancesRequest {
                    cluster: CLUSTER.into(),
                    container_instances: vec![],
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            if let Some(i) = resp.container_instances.iter().find(|i| i.agent_connected) {
                return i.container_instance_arn.clone();
            }
            assert!(
                Instant::now() < deadline,
                "the agent did not connect within 30 s; its log:\n{}",
                self.agent.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Restarts the agent (same identity and state dir) with one more setting.
    /// (Registering again would need a second activation and make a second
    /// instance: the first series' instance must be the one that comes back.)
    async fn restart_agent_with(&mut self, key: &str, value: &str) {
        self.agent.kill9();
        // The scheduler may still show the killed session for a moment: wait
        // until it does not, so the connected session found below is new.
        self.wait_disconnected().await;
        let mut env = self.agent_env.clone();
        env.push((key.into(), value.into()));
        self.agent.restart_with_env(&env);
        let arn = self.wait_connected().await;
        assert_eq!(arn, self.instance_arn, "the same instance came back");
    }

    /// Waits until no instance of the cluster shows its agent as connected.
    async fn wait_disconnected(&self) {
        let mut client = ContainerInstanceServiceClient::new(self.sched.authed_channel().await);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let resp = client
                .describe_container_instances(DescribeContainerInstancesRequest {
                    cluster: CLUSTER.into(),
                    container_instances: vec![],
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            if resp.container_instances.iter().all(|i| !i.agent_connected) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the killed agent still shows as connected after 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn register(&self, json: &str) {
        TaskDefinitionServiceClient::new(self.sched.authed_channel().await)
            .register_task_definition(RegisterTaskDefinitionRequest {
                task_definition_json: json.replace("IMAGE", &self.image),
            })
            .await
            .unwrap();
    }

    fn agent_pid(&self) -> u32 {
        self.agent.child.as_ref().unwrap().id()
    }

    fn sched_pid(&self) -> u32 {
        self.sched.child.as_ref().unwrap().id()
    }

    async fn describe(&mut self, arn: &str) -> Task {
        self.tasks
            .describe_tasks(DescribeTasksRequest {
                cluster: CLUSTER.into(),
                tasks: vec![arn.to_owned()],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .tasks
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("DescribeTasks does not know {arn}"))
    }

    /// [`Self::try_launch`], retried after a task that failed to start
    /// (counted in `failures`, with its reason kept for the report).
    async fn launch(&mut self, family: &str) -> Launch {
        for _ in 0..5 {
            match self.try_launch(family).await {
                Ok(l) => return l,
                Err(reason) => {
                    eprintln!("  {family}: a task failed to start: {reason}");
                    self.failures.push((family.to_owned(), reason));
                }
            }
        }
        panic!(
            "{family}: five launches in a row failed; agent log (tail):\n{}",
            tail(&self.agent.log_text(), 30)
        );
    }

    /// StartTask, then DescribeTasks every 5 ms until RUNNING; Err with the
    /// stopped reason when the task stopped instead.
    async fn try_launch(&mut self, family: &str) -> Result<Launch, String> {
        let t0 = Instant::now();
        let wall0 = SystemTime::now();
        let resp = self
            .tasks
            .start_task(StartTaskRequest {
                cluster: CLUSTER.into(),
                task_definition: family.into(),
                container_instances: vec![self.instance_arn.clone()],
                count: 1,
                started_by: "berth-bench".into(),
                group: String::new(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let rpc = t0.elapsed();
        let arn = match resp.tasks.first() {
            Some(t) => t.task_arn.clone(),
            None => panic!("StartTask placed nothing: {:?}", resp.failures),
        };
        let deadline = t0 + Duration::from_secs(60);
        loop {
            let d0 = Instant::now();
            let t = self.describe(&arn).await;
            self.describe_rtt.push(ms(d0.elapsed()));
            match t.last_status.as_str() {
                "RUNNING" => {
                    let total = t0.elapsed();
                    return Ok(Launch {
                        arn,
                        total,
                        phases: Phases::of(&t, wall0, rpc, total),
                    });
                }
                "STOPPED" => return Err(format!("{}: {}", t.stop_code, t.stopped_reason)),
                _ => {}
            }
            assert!(
                Instant::now() < deadline,
                "task {arn} not RUNNING after 60 s ({}); agent log (tail):\n{}",
                t.last_status,
                tail(&self.agent.log_text(), 30)
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Stops the tasks and waits until they are STOPPED and their containers
    /// are gone from containerd.
    async fn stop_all(&mut self, arns: &mut Vec<String>) {
        for arn in arns.iter() {
            self.tasks
                .stop_task(StopTaskRequest {
                    cluster: CLUSTER.into(),
                    task: arn.clone(),
                    reason: "bench".into(),
                })
                .await
                .unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        for arn in arns.drain(..) {
            while self.describe(&arn).await.last_status != "STOPPED" {
                assert!(Instant::now() < deadline, "task {arn} did not stop");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        loop {
            let out = ctr(self.ctd.socket(), "berth", &["containers", "ls", "-q"]).await;
            if out.trim().is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "containers left after the cleanup wait: {out}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Best-effort cleanup, after a panic too: the containers' processes would
/// outlive the testkit's containerd (which kills only the shims), and runc
/// and the agent leave empty parent cgroups and state dirs behind.
impl Drop for Bench {
    fn drop(&mut self) {
        self.agent.kill9();
        for ns in ["berth", self.ctr_ns.as_str()] {
            let out = self.ctd.ctr_in(ns, &["tasks", "ls", "-q"]);
            for id in String::from_utf8_lossy(&out.stdout).lines() {
                let _ = self.ctd.ctr_in(ns, &["tasks", "rm", "-f", id]);
                if ns == "berth" {
                    let task = id.split('-').next().unwrap_or_default();
                    let _ = std::process::Command::new("ip")
                        .args(["netns", "delete", &format!("berth-{task}")])
                        .output();
                }
            }
        }
        let _ = std::process::Command::new("ip")
            .args(["link", "delete", &self.bridge])
            .output();
        // Empty parents left by runc and the agent: the baseline's namespace
        // cgroup and runc state dir, and the agent's cgroup parent.
        for name in [self.ctr_ns.as_str(), self.cgroup_parent.as_str()] {
            if let Ok(ctrls) = std::fs::read_dir("/sys/fs/cgroup") {
                for c in ctrls.flatten() {
                    let _ = std::fs::remove_dir(c.path().join(name));
                }
            }
            let _ = std::fs::remove_dir(std::path::Path::new("/sys/fs/cgroup").join(name));
        }
        let _ = std::fs::remove_dir(Path::new("/run/containerd/runc").join(&self.ctr_ns));
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<_> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

// ------------------------------------------------------------- measurements

struct Launch {
    arn: String,
    total: Duration,
    phases: Option<Phases>,
}

/// Where one launch's time went, in ms, from the task's own timestamps
/// (the scheduler stores milliseconds; all clocks are this host's).
#[derive(Clone, Copy)]
struct Phases {
    /// StartTask's round trip (placement, durable write, answer); runs
    /// alongside the phases below, which add up to the total.
    rpc: f64,
    /// StartTask called → createdAt: the call reaching the scheduler and
    /// its placement.
    place: f64,
    /// createdAt → pullStartedAt: the desired state reaching the agent and
    /// its runner starting.
    dispatch: f64,
    /// pullStartedAt → pullStoppedAt: the image check (or pull).
    pull: f64,
    /// pullStoppedAt → startedAt: networking, cgroups, snapshot, spec,
    /// container and task creation, runc start.
    start: f64,
    /// startedAt → RUNNING seen by DescribeTasks: the report's way to the
    /// scheduler, its durable write, and the 5 ms poll.
    report: f64,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn ts(t: &Option<prost_types::Timestamp>) -> Option<SystemTime> {
    let t = t.as_ref()?;
    Some(SystemTime::UNIX_EPOCH + Duration::new(t.seconds as u64, t.nanos as u32))
}

fn between(a: SystemTime, b: SystemTime) -> f64 {
    match b.duration_since(a) {
        Ok(d) => ms(d),
        Err(e) => -ms(e.duration()),
    }
}

impl Phases {
    fn of(t: &Task, wall0: SystemTime, rpc: Duration, total: Duration) -> Option<Self> {
        let created = ts(&t.created_at)?;
        let pull0 = ts(&t.pull_started_at)?;
        let pull1 = ts(&t.pull_stopped_at)?;
        let started = ts(&t.started_at)?;
        Some(Self {
            rpc: ms(rpc),
            place: between(wall0, created),
            dispatch: between(created, pull0),
            pull: between(pull0, pull1),
            start: between(pull1, started),
            report: between(started, wall0 + total),
        })
    }
}

/// Nearest-rank percentile of sorted samples.
fn pct(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

struct Summary {
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
    mean: f64,
}

fn summary(samples: &[f64]) -> Summary {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    Summary {
        p50: pct(&s, 50.0),
        p90: pct(&s, 90.0),
        p99: pct(&s, 99.0),
        max: *s.last().unwrap(),
        mean: s.iter().sum::<f64>() / s.len() as f64,
    }
}

fn row(name: &str, samples: &[f64]) -> Summary {
    let s = summary(samples);
    println!(
        "| {name:<38} | {:>4} | {:>7.1} | {:>7.1} | {:>7.1} | {:>7.1} | {:>7.1} |",
        samples.len(),
        s.p50,
        s.p90,
        s.p99,
        s.max,
        s.mean
    );
    s
}

fn table_header(unit: &str) {
    println!(
        "| {:<38} | {:>4} | {:>7} | {:>7} | {:>7} | {:>7} | {:>7} |",
        unit, "n", "p50", "p90", "p99", "max", "mean"
    );
    println!(
        "|{:-<40}|{:->6}|{:->9}|{:->9}|{:->9}|{:->9}|{:->9}|",
        "", "", "", "", "", "", ""
    );
}

/// A field of /proc/<pid>/status in KiB (VmRSS, VmHWM).
fn status_kib(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// utime + stime of a process, in ms.
fn cpu_ms(pid: u32) -> f64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command's closing parenthesis; utime and stime are
    // fields 14 and 15 of the whole line, so 12 and 13 here (0-based 11, 12).
    let rest = &text[text.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    // /proc reports clock ticks in USER_HZ, which is 100 on Linux.
    ticks as f64 * 10.0
}

/// Pids and summed RSS (KiB) of the shims serving `socket`'s containerd.
fn shims_rss(socket: &Path) -> (usize, u64) {
    let needle = socket.to_string_lossy().into_owned();
    let mut n = 0;
    let mut kib = 0;
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmd
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.first().is_some_and(|a| a.contains("containerd-shim"))
            && args.iter().any(|a| a.contains(&needle))
        {
            n += 1;
            kib += status_kib(pid, "VmRSS");
        }
    }
    (n, kib)
}

// ---------------------------------------------------------------- ctr baseline

/// `ctr --address SOCK --namespace NS ARGS…`; panics on failure.
async fn ctr(socket: &Path, ns: &str, args: &[&str]) -> String {
    let out = tokio::process::Command::new("ctr")
        .arg("--address")
        .arg(socket)
        .arg("--namespace")
        .arg(ns)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("run ctr");
    assert!(
        out.status.success(),
        "ctr {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ctr run -d`: returns once the task started (runc start done).
async fn ctr_launch(socket: &Path, ns: &str, image: &str, id: &str) -> Duration {
    let t0 = Instant::now();
    ctr(
        socket,
        ns,
        &[
            "run",
            "-d",
            "--null-io",
            image,
            id,
            "sh",
            "-c",
            "sleep 3600",
        ],
    )
    .await;
    let took = t0.elapsed();
    let ls = ctr(socket, ns, &["tasks", "ls"]).await;
    assert!(
        ls.lines()
            .any(|l| l.starts_with(id) && l.contains("RUNNING")),
        "ctr task {id} is not RUNNING:\n{ls}"
    );
    took
}

async fn ctr_remove(socket: &Path, ns: &str, ids: &mut Vec<String>) {
    for id in ids.drain(..) {
        ctr(socket, ns, &["tasks", "rm", "-f", &id]).await;
        ctr(socket, ns, &["containers", "rm", &id]).await;
    }
}

// ---------------------------------------------------------------------- main

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs bench
    // targets without it, and this must not run as part of the tests.
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!(
            "berth-bench-tasks is a benchmark: run it with \
             `cargo bench -p berth-tests --bench berth-bench-tasks` (nothing measured)"
        );
        return;
    }
    let launches = env_usize("BENCH_LAUNCHES", 50);
    let batch = env_usize("BENCH_BATCH", 10).max(1);
    let rss_tasks = env_usize("BENCH_RSS_TASKS", 20);
    let bins = berth_tests::bin_dir();
    eprintln!(
        "berth-bench-tasks: binaries from {} ({} launches per scenario, batches of {batch})",
        bins.display(),
        launches
    );

    let mut b = Bench::start().await;
    let (agent_pid, sched_pid) = (b.agent_pid(), b.sched_pid());
    let rss_connected = (
        status_kib(agent_pid, "VmRSS"),
        status_kib(sched_pid, "VmRSS"),
    );

    b.register(TD_NONE).await;
    b.register(TD_BRIDGE).await;
    // Warm: the first task pulls the image into Berth's namespace (and sets
    // the bridge up); ctr pulls it into its own.
    let t0 = Instant::now();
    let first = b.launch("bench-none").await;
    let cold_ms = ms(t0.elapsed());
    let t0 = Instant::now();
    let first_bridge = b.launch("bench-bridge").await;
    let cold_bridge_ms = ms(t0.elapsed());
    b.stop_all(&mut vec![first.arn, first_bridge.arn]).await;
    let sock = b.ctd.socket().to_owned();
    let ns = b.ctr_ns.clone();
    ctr(&sock, &ns, &["images", "pull", "--plain-http", &b.image]).await;
    let warm_ctr = ctr_launch(&sock, &ns, &b.image, "bench-warm").await;
    ctr_remove(&sock, &ns, &mut vec!["bench-warm".into()]).await;
    eprintln!(
        "warm-up: first none task {cold_ms:.0} ms (pull), first bridge task {cold_bridge_ms:.0} ms, first ctr run {:.0} ms",
        ms(warm_ctr)
    );
    let rss_idle = (
        status_kib(agent_pid, "VmRSS"),
        status_kib(sched_pid, "VmRSS"),
    );

    // Interleaved: none, bridge, ctr; stopped every `batch` rounds.
    let (mut none, mut bridge, mut ctr_run) = (Vec::new(), Vec::new(), Vec::new());
    let (mut none_ph, mut bridge_ph) = (Vec::new(), Vec::new());
    let (mut live, mut ctr_live) = (Vec::new(), Vec::new());
    let cpu0 = (cpu_ms(agent_pid), cpu_ms(sched_pid));
    for i in 0..launches {
        let l = b.launch("bench-none").await;
        none.push(ms(l.total));
        none_ph.extend(l.phases);
        live.push(l.arn);
        let l = b.launch("bench-bridge").await;
        bridge.push(ms(l.total));
        bridge_ph.extend(l.phases);
        live.push(l.arn);
        let id = format!("bench-{i}");
        ctr_run.push(ms(ctr_launch(&sock, &ns, &b.image, &id).await));
        ctr_live.push(id);
        if (i + 1) % batch == 0 || i + 1 == launches {
            b.stop_all(&mut live).await;
            ctr_remove(&sock, &ns, &mut ctr_live).await;
            eprintln!("  {} of {launches} rounds", i + 1);
        }
    }
    let cpu1 = (cpu_ms(agent_pid), cpu_ms(sched_pid));
    let rss_after = (
        status_kib(agent_pid, "VmRSS"),
        status_kib(sched_pid, "VmRSS"),
    );

    // 20 running tasks (bridge, one port each).
    for _ in 0..rss_tasks {
        let l = b.launch("bench-bridge").await;
        live.push(l.arn);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_loaded = (
        status_kib(agent_pid, "VmRSS"),
        status_kib(sched_pid, "VmRSS"),
    );
    let shims = shims_rss(&sock);
    b.stop_all(&mut live).await;

    let agent_hwm = status_kib(agent_pid, "VmHWM");

    // The agent on prefer-cached: no registry round trip for a cached image.
    b.restart_agent_with("BERTH_IMAGE_PULL_BEHAVIOR", "prefer-cached")
        .await;
    let w = b.launch("bench-none").await;
    b.stop_all(&mut vec![w.arn]).await;
    let (mut cached, mut cached_ph, mut ctr_run2) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..launches {
        let l = b.launch("bench-none").await;
        cached.push(ms(l.total));
        cached_ph.extend(l.phases);
        live.push(l.arn);
        let id = format!("bench-pc-{i}");
        ctr_run2.push(ms(ctr_launch(&sock, &ns, &b.image, &id).await));
        ctr_live.push(id);
        if (i + 1) % batch == 0 || i + 1 == launches {
            b.stop_all(&mut live).await;
            ctr_remove(&sock, &ns, &mut ctr_live).await;
        }
    }

    // ------------------------------------------------------------- report
    println!();
    println!("## Launch latency, warm image (ms): StartTask → DescribeTasks RUNNING; ctr run -d → return");
    println!();
    table_header("scenario (run 1: interleaved)");
    let s_none = row("berth, networkMode none", &none);
    let s_bridge = row("berth, bridge + 1 dynamic port", &bridge);
    let s_ctr = row("ctr run -d (same containerd)", &ctr_run);
    println!();
    table_header("scenario (run 2: interleaved)");
    let s_cached = row("berth, none, agent on prefer-cached", &cached);
    let s_ctr2 = row("ctr run -d (same containerd)", &ctr_run2);
    println!();
    println!("Ratios Berth / ctr (p50, p99):");
    for (name, s, base) in [
        ("none", &s_none, &s_ctr),
        ("bridge + port", &s_bridge, &s_ctr),
        ("none, prefer-cached", &s_cached, &s_ctr2),
    ] {
        println!(
            "  {name:<20} {:>5.2}x  {:>5.2}x",
            s.p50 / base.p50,
            s.p99 / base.p99
        );
    }

    println!();
    println!("## Where Berth's time goes (ms; p50 / p90 of each phase)");
    println!();
    println!(
        "| {:<20} | {:>13} | {:>13} | {:>13} | {:>13} | {:>13} | {:>13} |",
        "scenario", "StartTask rpc", "placement", "dispatch", "pull check", "start", "report+poll"
    );
    println!(
        "|{:-<22}|{:->15}|{:->15}|{:->15}|{:->15}|{:->15}|{:->15}|",
        "", "", "", "", "", "", ""
    );
    for (name, ph) in [
        ("none", &none_ph),
        ("bridge + port", &bridge_ph),
        ("none, prefer-cached", &cached_ph),
    ] {
        let col = |f: fn(&Phases) -> f64| {
            let v: Vec<f64> = ph.iter().map(f).collect();
            let s = summary(&v);
            format!("{:>5.0} / {:>5.0}", s.p50, s.p90)
        };
        println!(
            "| {name:<20} | {} | {} | {} | {} | {} | {} |",
            col(|p| p.rpc),
            col(|p| p.place),
            col(|p| p.dispatch),
            col(|p| p.pull),
            col(|p| p.start),
            col(|p| p.report)
        );
    }

    println!();
    println!("## Memory (VmRSS, MiB) and CPU");
    println!();
    println!("| {:<44} | {:>8} | {:>9} |", "moment", "agent", "scheduler");
    println!("|{:-<46}|{:->10}|{:->11}|", "", "", "");
    for (name, (a, s)) in [
        ("connected, no task yet", rss_connected),
        ("idle after the warm-up (image pulled)", rss_idle),
        (
            &*format!("idle after {} launches", 2 * launches + 2),
            rss_after,
        ),
        (
            &*format!("{rss_tasks} running tasks (bridge + port)"),
            rss_loaded,
        ),
    ] {
        println!("| {name:<44} | {:>8.1} | {:>9.1} |", mib(a), mib(s));
    }
    println!(
        "| {:<44} | {:>8.1} | {:>9.1} |",
        "peak (VmHWM), agent up to here; scheduler",
        mib(agent_hwm),
        mib(status_kib(sched_pid, "VmHWM"))
    );
    println!();
    println!(
        "containerd shims with {rss_tasks} tasks: {} processes, {:.1} MiB RSS in all (not Berth's, for scale)",
        shims.0,
        mib(shims.1)
    );
    println!(
        "CPU time per launch (run 1, start + stop, {} launches): agent {:.1} ms, scheduler {:.1} ms (incl. 5 ms DescribeTasks polling)",
        2 * launches,
        (cpu1.0 - cpu0.0) / (2 * launches) as f64,
        (cpu1.1 - cpu0.1) / (2 * launches) as f64
    );
    let rtt = summary(&b.describe_rtt);
    println!(
        "DescribeTasks round trip while polling ({} calls): p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        b.describe_rtt.len(),
        rtt.p50,
        rtt.p90,
        rtt.p99,
        rtt.max
    );
    println!();
    println!(
        "Berth tasks that failed to start (retried, not in the figures): {}",
        b.failures.len()
    );
    for (family, reason) in &b.failures {
        println!("  {family}: {reason}");
    }
    // The temp dirs go with the cluster: keep the logs.
    let keep = std::env::temp_dir().join("berth-bench-logs");
    std::fs::create_dir_all(&keep).unwrap();
    std::fs::write(keep.join("agent.log"), b.agent.log_text()).unwrap();
    std::fs::write(keep.join("scheduler.log"), b.sched.log_text()).unwrap();
    let _ = std::fs::copy(
        b.ctd.dir().join("containerd.log"),
        keep.join("containerd.log"),
    );
    eprintln!("logs kept in {}", keep.display());
}
