//! `/metrics` of the scheduler and the agent, scraped by Debian's real
//! Prometheus (2.42, `scripts/install-deps`): a busybox task burns CPU in a
//! bounded loop and then sleeps, and Prometheus's HTTP API must show both
//! targets up, the task's CPU seconds with its labels within a tolerance
//! of what its container's cgroup says (read here directly:
//! `cpuacct.usage` on v1, `cpu.stat` `usage_usec` on v2), and its memory
//! within a tolerance of `memory.usage_in_bytes` / `memory.current`. The
//! scheduler's own series (task calls, tasks by status) are checked too.
//!
//! Root and real containerd (the single-host harness, `free_slot` block
//! 226); everything listens on 127.0.0.1 and every wait is bounded.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)] // tests fail loudly by design; Drop polls with std time

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use berth_tests::cluster::tail;
use berth_tests::{eventually, free_port, Cluster, ClusterOptions};
use serde_json::Value;

const BLOCK: u8 = 226;

/// A Prometheus process, killed on drop.
struct Prometheus {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(targets: &[(&str, u16)]) -> Self {
        let bin = berth_testkit::require_binary("prometheus", "prometheus");
        let dir = tempfile::tempdir().unwrap();
        let mut config = String::from(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n",
        );
        for (job, port) in targets {
            config.push_str(&format!(
                "  - job_name: {job}\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
            ));
        }
        let config_file = dir.path().join("prometheus.yml");
        std::fs::write(&config_file, config).unwrap();
        let port = free_port();
        let log = dir.path().join("prometheus.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        Self {
            child,
            port,
            log,
            _dir: dir,
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `GET /api/v1/query?query=q`: the result vector, or why not.
    fn query(&self, q: &str) -> Result<Vec<Value>, String> {
        let body = http_get(
            self.port,
            &format!("/api/v1/query?query={}", percent_encode(q)),
        )?;
        let v: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
        if v["status"] != "success" {
            return Err(format!("query {q}: {v}"));
        }
        Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every byte but the unreserved ones as `%XX`.
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `GET path` over HTTP/1.0 from 127.0.0.1:port: the body of a 200, else
/// an error with the whole answer.
fn http_get(port: u16, path: &str) -> Result<String, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut text = String::new();
    s.read_to_string(&mut text).map_err(|e| e.to_string())?;
    let (head, body) = text.split_once("\r\n\r\n").ok_or(text.clone())?;
    if head.split_whitespace().nth(1) != Some("200") {
        return Err(text);
    }
    Ok(body.to_owned())
}

/// The value of the one sample in `result`.
fn value(result: &[Value]) -> Result<f64, String> {
    match result {
        [one] => one["value"][1]
            .as_str()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("no value in {one}")),
        other => Err(format!("want one series, got {other:?}")),
    }
}

/// Whether this host runs cgroup v2 (unified).
fn cgroup_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// The container's cgroup directory for `controller` (v2: the one tree).
fn cgroup_dir(controller: &str, rel: &str) -> PathBuf {
    if cgroup_v2() {
        Path::new("/sys/fs/cgroup").join(rel)
    } else {
        Path::new("/sys/fs/cgroup").join(controller).join(rel)
    }
}

fn read(file: &Path) -> String {
    std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// The container's CPU seconds, as its cgroup says.
fn cgroup_cpu_seconds(rel: &str) -> f64 {
    if cgroup_v2() {
        let file = cgroup_dir("cpu", rel).join("cpu.stat");
        let text = read(&file);
        let usec: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("usage_usec "))
            .unwrap_or_else(|| panic!("no usage_usec in {}: {text}", file.display()))
            .trim()
            .parse()
            .unwrap();
        usec / 1e6
    } else {
        let ns: f64 = read(&cgroup_dir("cpuacct", rel).join("cpuacct.usage"))
            .trim()
            .parse()
            .unwrap();
        ns / 1e9
    }
}

/// The container's memory use, as its cgroup says.
fn cgroup_memory_bytes(rel: &str) -> f64 {
    let file = if cgroup_v2() {
        cgroup_dir("memory", rel).join("memory.current")
    } else {
        cgroup_dir("memory", rel).join("memory.usage_in_bytes")
    };
    read(&file).trim().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_scrapes_the_scheduler_and_the_agent() {
    let (sched_port, agent_port) = (free_port(), free_port());
    let opts = ClusterOptions {
        bridge_prefix: "bp".to_owned(),
        scheduler_env: vec![(
            "BERTH_METRICS_LISTEN".to_owned(),
            format!("127.0.0.1:{sched_port}"),
        )],
        agent_env: vec![(
            "BERTH_METRICS_LISTEN".to_owned(),
            format!("127.0.0.1:{agent_port}"),
        )],
        ..ClusterOptions::default()
    };
    let c = Cluster::start_in(BLOCK, opts).await;
    let prom = Prometheus::start(&[("scheduler", sched_port), ("agent", agent_port)]);

    // Only /metrics is served.
    let other = http_get(agent_port, "/").unwrap_err();
    assert!(other.starts_with("HTTP/1.0 404"), "{other}");

    // A bounded busy loop (a few CPU seconds), then sleep: the container's
    // CPU time stops moving, so Prometheus and the cgroup can agree.
    let def = r#"{"family":"burn","containerDefinitions":[{"name":"burn","image":"IMAGE","memory":64,
        "entryPoint":["sh","-c"],
        "command":["i=0; while [ $i -lt 2000000 ]; do i=$((i+1)); done; echo BURNT; exec sleep 600"]}]}"#;
    let taskdef = c.register(def);
    let task = c.start(&taskdef);
    c.until_status(&task, "RUNNING").await;
    let rel = format!("{}/{task}/burn", c.cgroup_parent);

    // (a) Both targets up.
    eventually(Duration::from_secs(60), "both targets up", || async {
        let up = prom.query("up")?;
        let ups: Vec<(String, String)> = up
            .iter()
            .map(|s| {
                (
                    s["metric"]["job"].as_str().unwrap_or("").to_owned(),
                    s["value"][1].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        let is_up = |job: &str| ups.iter().any(|(j, v)| j == job && v == "1");
        if is_up("scheduler") && is_up("agent") {
            Ok(())
        } else {
            Err(format!(
                "up: {ups:?}\nprometheus log:\n{}",
                tail(&prom.log_text(), 20)
            ))
        }
    })
    .await;

    // The loop is over when the cgroup's CPU time stops moving.
    let burnt = eventually(Duration::from_secs(90), "the busy loop to end", || async {
        let a = cgroup_cpu_seconds(&rel);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let b = cgroup_cpu_seconds(&rel);
        if b > 0.05 && b - a < 0.01 {
            Ok(b)
        } else {
            Err(format!("CPU seconds {a} then {b}"))
        }
    })
    .await;

    // (b) The task's CPU seconds, with its labels, as the cgroup says.
    let cpu_query =
        format!("berth_container_cpu_seconds_total{{task=\"{task}\",container=\"burn\"}}");
    let series = eventually(
        Duration::from_secs(30),
        "Prometheus's CPU seconds to match the cgroup's",
        || async {
            let result = prom.query(&cpu_query)?;
            let v = value(&result)?;
            let want = cgroup_cpu_seconds(&rel);
            if (v - want).abs() <= 0.02 + want * 0.02 {
                eprintln!("CPU seconds: Prometheus {v}, cgroup {want}");
                Ok(result[0].clone())
            } else {
                Err(format!(
                    "Prometheus {v} s, cgroup {want} s\n{:#?}\nagent log:\n{}",
                    result,
                    tail(&c.agent.log_text(), 20)
                ))
            }
        },
    )
    .await;
    let labels = &series["metric"];
    assert_eq!(labels["cluster"], "default", "{series}");
    assert_eq!(labels["family"], "burn", "{series}");
    assert_eq!(labels["revision"], "1", "{series}");
    assert_eq!(labels["task"], task.as_str(), "{series}");
    assert_eq!(labels["container"], "burn", "{series}");
    assert_eq!(labels["job"], "agent", "{series}");
    assert!(burnt > 0.05, "the loop burnt {burnt} s");
    // The task-level series covers the container.
    let task_cpu = value(
        &prom
            .query(&format!("berth_task_cpu_seconds_total{{task=\"{task}\"}}"))
            .unwrap(),
    )
    .unwrap();
    assert!(
        task_cpu >= burnt * 0.98,
        "task {task_cpu} s < container {burnt} s"
    );

    // (c) Memory as the cgroup says (a sleeping shell: it hardly moves).
    let mem_query =
        format!("berth_container_memory_usage_bytes{{task=\"{task}\",container=\"burn\"}}");
    eventually(
        Duration::from_secs(30),
        "Prometheus's memory to match the cgroup's",
        || async {
            let v = value(&prom.query(&mem_query)?)?;
            let want = cgroup_memory_bytes(&rel);
            if v > 0.0 && (v - want).abs() <= 1_048_576.0 + want * 0.10 {
                eprintln!("memory bytes: Prometheus {v}, cgroup {want}");
                Ok(())
            } else {
                Err(format!("Prometheus {v} bytes, cgroup {want} bytes"))
            }
        },
    )
    .await;
    let limit = value(
        &prom
            .query(&format!(
                "berth_container_memory_limit_bytes{{task=\"{task}\",container=\"burn\"}}"
            ))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        limit,
        64.0 * 1024.0 * 1024.0,
        "the container's memory hard limit"
    );

    // The agent's containerd calls, timed by method: the task's start among them.
    eventually(Duration::from_secs(30), "containerd call latency", || async {
        let starts = value(&prom.query(
            "berth_agent_containerd_call_duration_seconds_count{method=\"Tasks/Start\",job=\"agent\"}",
        )?)?;
        let creates = value(&prom.query(
            "berth_agent_containerd_call_duration_seconds_count{method=\"Containers/Create\",job=\"agent\"}",
        )?)?;
        if starts >= 1.0 && creates >= 1.0 {
            Ok(())
        } else {
            Err(format!("Tasks/Start {starts}, Containers/Create {creates}"))
        }
    })
    .await;

    // The scheduler's own series.
    eventually(Duration::from_secs(30), "the scheduler's series", || async {
        let starts = value(&prom.query("berth_task_calls_total{call=\"StartTask\",job=\"scheduler\"}")?)?;
        let running = value(&prom.query(
            "berth_tasks{cluster=\"default\",status=\"RUNNING\",job=\"scheduler\"}",
        )?)?;
        let connected = value(&prom.query("berth_agents_connected{cluster=\"default\"}")?)?;
        let grpc = prom.query("berth_grpc_requests_total{method=\"/berth.v1.TaskService/StartTask\",code=\"Ok\"}")?;
        if starts >= 1.0 && running >= 1.0 && connected == 1.0 && !grpc.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "StartTask calls {starts}, RUNNING tasks {running}, connected {connected}, grpc {grpc:?}"
            ))
        }
    })
    .await;

    // A stopped task's series go (bounded cardinality).
    let out = c.sched.ctl(&["task", "stop", &task]);
    assert!(out.status.success(), "{out:?}");
    c.until_status(&task, "STOPPED").await;
    eventually(
        Duration::from_secs(30),
        "the stopped task's series to go",
        || async {
            let body = http_get(agent_port, "/metrics")?;
            if body.contains(&task) {
                Err(format!("still exported:\n{}", tail(&body, 30)))
            } else {
                Ok(())
            }
        },
    )
    .await;
}
