//! The single-host harness of the real-containerd tests (`tests/containerd.rs`,
//! `lifecycle.rs`, `metadata.rs`, `secrets.rs`): a scheduler, one agent with
//! its own testkit containerd, and a testkit registry on 127.0.0.1 holding a
//! busybox image, joined to cluster `default`.
//!
//! [`Cluster::start_in`] takes a [`free_slot`] block, one per test file, so the
//! cluster's bridge, subnet (`10.<block>.x.0/24`), cgroup parent and
//! host-port range meet no other test's, and [`ClusterOptions`] for what the
//! files set differently (registry auth, image name, bridge prefix, the
//! agent's stop timeout, extra scheduler and agent settings). Root is
//! required: without it `start_in` fails with that message.
//!
//! Drop stops the remaining tasks through Berth (so the agent tears their
//! networks and cgroups down before containerd goes), then removes the
//! bridge (the CNI bridge plugin never does) and the empty cgroup parents,
//! also after a failed assertion.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Output;
use std::time::Duration;

use berth_testkit::containerd::Containerd;
use berth_testkit::registry::Registry;
use serde_json::Value;

use crate::{connected_instance, eventually, free_slot, json, ok_stdout, Agent, Scheduler};

/// How long Drop waits for the remaining tasks to report STOPPED.
const DRAIN: Duration = Duration::from_secs(30);

/// What varies between the test files' clusters.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Basic-auth user and password the registry demands.
    pub registry_auth: Option<(String, String)>,
    /// The repository the busybox image is pushed to (tag `latest`).
    pub image_name: String,
    /// The task bridge is `<prefix><rrrr>`.
    pub bridge_prefix: String,
    /// The agent's `BERTH_STOP_TIMEOUT`.
    pub stop_timeout: String,
    /// Extra scheduler settings (`BERTH_*`).
    pub scheduler_env: Vec<(String, String)>,
    /// Extra agent settings, after the harness's own.
    pub agent_env: Vec<(String, String)>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            registry_auth: None,
            image_name: "berth/busybox".to_owned(),
            bridge_prefix: "bt".to_owned(),
            stop_timeout: "3s".to_owned(),
            scheduler_env: Vec::new(),
            agent_env: Vec::new(),
        }
    }
}

/// A scheduler, an agent with its own containerd, and a registry holding
/// busybox.
pub struct Cluster {
    // Fields drop in this order after `Drop::drop`: the scheduler and the
    // agent before containerd and the registry, the data dir last.
    pub sched: Scheduler,
    pub agent: Agent,
    pub registry: Registry,
    pub ctd: Containerd,
    /// The busybox image in [`registry`](Self::registry), as tasks name it
    /// (task definitions say `IMAGE`; [`register`](Self::register) fills it in).
    pub image: String,
    /// The agent's container instance id.
    pub instance: String,
    /// The task bridge.
    pub bridge: String,
    /// The bridge subnet's first address (where the metadata endpoint listens).
    pub gateway: String,
    pub cgroup_parent: String,
    /// Holds `sched/` (the scheduler's data dir) and `agent/` (the agent's
    /// state dir).
    pub dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts a cluster in `free_slot(block)` and waits for its agent to
    /// connect. `DEBUG_CLEANUP` (e.g. `10m`) overrides the agent's task
    /// cleanup wait of 2 s, to look at a task's leftovers.
    pub async fn start_in(block: u8, opts: ClusterOptions) -> Self {
        berth_testkit::require_root();
        let dir = tempfile::tempdir().unwrap();
        let ctd = Containerd::start();
        let registry = Registry::start(
            opts.registry_auth
                .as_ref()
                .map(|(u, p)| (u.as_str(), p.as_str())),
        );
        let pushed = registry.push_busybox(&opts.image_name, "latest");
        let sched_env: Vec<(&str, &str)> = opts
            .scheduler_env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let sched = Scheduler::start_with(&dir.path().join("sched"), &sched_env).await;
        let (r, port_base, subnet) = free_slot(block);
        let gateway = subnet.replace(".0/24", ".1");
        let bridge = format!("{}{r:04x}", opts.bridge_prefix);
        let cgroup_parent = format!("berth-test-{r:04x}");
        let mut env: Vec<(String, String)> = vec![
            (
                "BERTH_CONTAINERD_SOCKET".into(),
                ctd.socket().display().to_string(),
            ),
            ("BERTH_INSECURE_REGISTRIES".into(), registry.addr()),
            (
                "BERTH_TASK_CLEANUP_WAIT".into(),
                std::env::var("DEBUG_CLEANUP").unwrap_or_else(|_| "2s".into()),
            ),
            ("BERTH_STOP_TIMEOUT".into(), opts.stop_timeout),
            ("BERTH_BRIDGE".into(), bridge.clone()),
            ("BERTH_BRIDGE_SUBNET".into(), subnet),
            ("BERTH_CGROUP_PARENT".into(), cgroup_parent.clone()),
            (
                "BERTH_PORT_RANGE".into(),
                format!("{port_base}-{}", port_base + 49),
            ),
        ];
        env.extend(opts.agent_env);
        let agent = Agent::start_with_env(&sched, "default", &dir.path().join("agent"), &env);
        let instance = connected_instance(&sched, &agent).await;
        Cluster {
            sched,
            agent,
            registry,
            ctd,
            image: pushed.reference,
            instance,
            bridge,
            gateway,
            cgroup_parent,
            dir,
        }
    }

    /// Registers `json` (with `IMAGE` replaced by the cluster's image);
    /// returns the task definition's `family:revision`.
    pub fn register(&self, json: &str) -> String {
        let json = json.replace("IMAGE", &self.image);
        let out = self
            .sched
            .ctl_stdin(&["taskdef", "register", "-f", "-"], &json);
        ok_stdout(&out).lines().next().unwrap().to_owned()
    }

    /// `berthctl task start` of `taskdef` on the cluster's instance, as it
    /// ran (it may have been refused).
    pub fn try_start(&self, taskdef: &str) -> Output {
        self.sched.ctl(&[
            "task",
            "start",
            "--taskdef",
            taskdef,
            "--instance",
            &self.instance,
        ])
    }

    /// Starts `taskdef` on the cluster's instance; returns the task id.
    pub fn start(&self, taskdef: &str) -> String {
        let text = ok_stdout(&self.try_start(taskdef));
        text.split_whitespace()
            .find(|w| w.len() == 32 && w.chars().all(|c| c.is_ascii_hexdigit()))
            .or_else(|| {
                text.lines()
                    .next()
                    .map(|l| berth_proto::arn::short_id(l.trim()))
            })
            .unwrap_or_else(|| panic!("no task id in {text:?}"))
            .to_owned()
    }

    /// The task as `berthctl task describe -o json` shows it.
    pub fn describe(&self, task: &str) -> Value {
        json(&self.sched.ctl(&["task", "describe", task, "-o", "json"]))["tasks"][0].clone()
    }

    /// Polls `task describe` until `check` accepts it (for up to `limit`);
    /// a timeout shows the task and the tail of the agent's log.
    pub async fn until(
        &self,
        task: &str,
        limit: Duration,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        eventually(limit, &format!("task {task}: {what}"), || async {
            let t = self.describe(task);
            if check(&t) {
                Ok(t)
            } else {
                Err(format!(
                    "{t:#}\nagent log (tail):\n{}",
                    tail(&self.agent.log_text(), 40)
                ))
            }
        })
        .await
    }

    /// Polls `task describe` for all of `window` and panics at the first
    /// observation `check` refuses: for "this does not happen", the window
    /// must cover the time by which it would have happened (and been
    /// reported). Returns the last observation.
    pub async fn holds(
        &self,
        task: &str,
        window: Duration,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let end = tokio::time::Instant::now() + window;
        let mut seen = 0;
        loop {
            let t = self.describe(task);
            assert!(
                check(&t),
                "task {task}: {what} broken after {seen} good observations: {t:#}\n\
                 agent log (tail):\n{}",
                tail(&self.agent.log_text(), 40)
            );
            seen += 1;
            if tokio::time::Instant::now() >= end && seen >= 2 {
                return t;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits (up to 60 s) until the task's lastStatus is `status`.
    pub async fn until_status(&self, task: &str, status: &str) -> Value {
        self.until(task, Duration::from_secs(60), status, |t| {
            t["lastStatus"] == status
        })
        .await
    }
}

impl Drop for Cluster {
    /// Stops the test's remaining tasks through Berth, so the agent tears
    /// their networks and cgroups down before containerd goes away; then
    /// removes the (now unused) bridge and the empty cgroup parents.
    fn drop(&mut self) {
        self.sched.stop_all_tasks(DRAIN);
        let _ = std::process::Command::new("ip")
            .args(["link", "delete", &self.bridge])
            .output();
        if let Ok(controllers) = std::fs::read_dir("/sys/fs/cgroup") {
            for ctrl in controllers.flatten() {
                let _ = std::fs::remove_dir(ctrl.path().join(&self.cgroup_parent));
            }
        }
    }
}

/// The host port bound to `container_port` in a described task.
pub fn host_port(t: &Value, container_port: u64) -> u16 {
    t["containers"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["networkBindings"].as_array().cloned().unwrap_or_default())
        .find(|b| b["containerPort"] == container_port)
        .unwrap_or_else(|| panic!("no binding for {container_port} in {t}"))["hostPort"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or_else(|| panic!("hostPort of {container_port} is no port in {t}"))
}

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<_> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `GET /` over HTTP/1.0 from `127.0.0.1:port`: the whole response.
pub fn http_get(port: u16) -> Result<String, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut body = String::new();
    s.read_to_string(&mut body).map_err(|e| e.to_string())?;
    Ok(body)
}
