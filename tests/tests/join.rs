//! `berth-agent join`, the one command that joins a host, with the real
//! scheduler, the real agent binary and a private containerd (testkit):
//! it registers, writes the config file keeping its other settings, and,
//! run again, reuses the registration, starts the agent through systemctl
//! (a script named by `BERTH_SYSTEMCTL` that starts the real agent in the
//! background) and waits until the scheduler shows it connected. Every
//! refusal has its message and exit code: not root, containerd missing,
//! wrong fingerprint, wrong/used/expired/revoked code, another cluster,
//! another registration, systemctl missing, and an agent that never
//! connects.
//!
//! The agent's bridge, subnet, cgroup parent and ports come from
//! `free_slot` block 220, so it meets no other test's.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use berth_testkit::Containerd;
use berth_tests::{bin, free_slot, json, ok_stdout, Scheduler};

const BLOCK: u8 = 220;

/// The agent settings a test host needs, as an existing config file with
/// a comment and an old scheduler, which join must keep (all but the
/// scheduler).
fn existing_config(socket: &Path) -> String {
    let (r, port_base, subnet) = free_slot(BLOCK);
    format!(
        "# set up by hand before join\n\
         scheduler = \"https://old.example:7400\" # replaced by join\n\
         containerd_socket = \"{}\"\n\
         bridge = \"bjoin{r:04x}\"\n\
         bridge_subnet = \"{subnet}\"\n\
         cgroup_parent = \"berth-test-{r:04x}\"\n\
         port_range = \"{port_base}-{}\"\n\
         task_metadata = false\n\
         reserved_memory_mib = 300\n",
        socket.display(),
        port_base + 49
    )
}

/// `berth-agent join` with `args` (and `--scheduler`, `--config`, …
/// as the caller gives them) and `env`.
fn join(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(bin("berth-agent"))
        .arg("join")
        .args(args)
        .env("BERTH_LOG", "info")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts a refusal: exit code `code` and `needle` in stderr.
fn refused(out: &Output, code: i32, needle: &str) {
    let err = stderr(out);
    assert_eq!(
        out.status.code(),
        Some(code),
        "expected exit {code}; stdout: {}\nstderr: {err}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
    eprintln!("refused as expected, exit {code}: {err}");
}

/// A host's paths: its config file and state dir.
struct Host {
    config: PathBuf,
    state: PathBuf,
    /// The config file as it was before join.
    original: String,
}

impl Host {
    fn new(dir: &Path, name: &str, ctd: &Containerd) -> Self {
        let config = dir.join(name).join("etc/agent.toml");
        std::fs::create_dir_all(config.parent().unwrap()).unwrap();
        let original = existing_config(ctd.socket());
        std::fs::write(&config, &original).unwrap();
        Host {
            config,
            state: dir.join(name).join("state"),
            original,
        }
    }

    /// join's arguments for `s` and this host, plus `extra`.
    fn args(&self, s: &Scheduler, act: &(String, String, String), extra: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = [
            "--scheduler",
            &s.endpoint(),
            "--activation-id",
            &act.0,
            "--activation-code",
            &act.1,
            "--ca-fingerprint",
            &act.2,
            "--config",
            &self.config.to_string_lossy(),
            "--state-dir",
            &self.state.to_string_lossy(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    }
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Kills the agent the fake systemctl started (its pid file) on drop.
struct StartedAgent(PathBuf);

impl Drop for StartedAgent {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(&self.0) {
            if let Ok(pid) = pid.trim().parse::<i32>() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

/// A systemctl stand-in: records its arguments in `calls`; `enable --now
/// berth-agent.service` starts the real agent with `config` in the
/// background (log in `log`, pid in `pid`).
fn fake_systemctl(dir: &Path, config: &Path) -> (PathBuf, PathBuf, PathBuf, StartedAgent) {
    let script = dir.join("systemctl");
    let calls = dir.join("systemctl.calls");
    let log = dir.join("agent.log");
    let pid = dir.join("agent.pid");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n\
             echo \"$*\" >> '{calls}'\n\
             if [ \"$*\" = 'enable --now berth-agent.service' ]; then\n\
             BERTH_LOG=info '{agent}' --config '{config}' > '{log}' 2>&1 &\n\
             echo $! > '{pid}'\n\
             fi\n",
            calls = calls.display(),
            agent = bin("berth-agent").display(),
            config = config.display(),
            log = log.display(),
            pid = pid.display(),
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script, calls, log, StartedAgent(pid))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_registers_writes_the_config_and_a_rerun_starts_the_agent_and_waits() {
    berth_testkit::require_root();
    let dir = tempfile::tempdir().unwrap();
    let ctd = Containerd::start();
    let s = Scheduler::start(&dir.path().join("data")).await;
    let host = Host::new(dir.path(), "h1", &ctd);

    // The command berthctl prints is the one to run.
    let created = ok_stdout(&s.ctl(&["activation", "create", "--cluster", "default"]));
    let v = json(&s.ctl(&["activation", "create", "-o", "json"]));
    let act = (
        v["activationId"].as_str().unwrap().to_owned(),
        v["activationCode"].as_str().unwrap().to_owned(),
        v["caFingerprint"].as_str().unwrap().to_owned(),
    );
    assert_eq!(
        v["joinCommand"].as_str().unwrap(),
        format!(
            "berth-agent join --scheduler {} --activation-id {} --activation-code {} \
             --ca-fingerprint {}",
            s.endpoint(),
            act.0,
            act.1,
            act.2
        )
    );
    assert!(
        created.contains(&format!(
            "berth-agent join --scheduler {} \\\n",
            s.endpoint()
        )),
        "{created}"
    );

    // 1. --no-start: register and write the config only.
    let out = join(&strs(&host.args(&s, &act, &["--no-start"])), &[]);
    let text = ok_stdout(&out);
    let v = json(&s.ctl(&["instance", "ls", "-o", "json"]));
    let arn = v["containerInstances"][0]["containerInstanceArn"]
        .as_str()
        .unwrap()
        .to_owned();
    let id = berth_proto::arn::short_id(&arn).to_owned();
    assert!(
        text.contains(&format!(
            "registered as container instance {id} in cluster default\n{arn}\n"
        )),
        "{text}"
    );
    assert!(text.contains("start the agent with"), "{text}");
    let config = std::fs::read_to_string(&host.config).unwrap();
    // Only the scheduler changed; cluster and state_dir were added; the
    // rest, comments included, is as it was.
    assert!(
        config.contains(&format!(
            "scheduler = \"{}\" # replaced by join\n",
            s.endpoint()
        )),
        "{config}"
    );
    for line in host
        .original
        .lines()
        .filter(|l| !l.starts_with("scheduler"))
    {
        assert!(config.contains(line), "{line:?} missing from:\n{config}");
    }
    assert!(config.contains("cluster = \"default\"\n"), "{config}");
    assert!(
        config.contains(&format!("state_dir = \"{}\"\n", host.state.display())),
        "{config}"
    );
    let mode = std::fs::metadata(&host.config)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o644);
    assert!(host.state.join("identity.json").exists());

    // 2. Run again, starting the agent: the registration is kept (the code
    //    is not spent twice), systemctl reloads and starts the unit, and
    //    join returns once the scheduler shows the instance connected.
    let (systemctl, calls, agent_log, _agent) = fake_systemctl(dir.path(), &host.config);
    let out = join(
        &strs(&host.args(&s, &act, &["--timeout", "60s"])),
        &[("BERTH_SYSTEMCTL", &systemctl.to_string_lossy())],
    );
    let agent_log_text = std::fs::read_to_string(&agent_log).unwrap_or_default();
    assert!(
        out.status.success(),
        "join failed: {}\nagent log:\n{agent_log_text}",
        stderr(&out)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "already registered as container instance {id} in cluster default\n{arn}\n\
             the agent is connected\n"
        )),
        "{text}"
    );
    assert_eq!(
        std::fs::read_to_string(&calls).unwrap(),
        "daemon-reload\nenable --now berth-agent.service\n"
    );
    let v = json(&s.ctl(&["instance", "ls", "-o", "json"]));
    assert_eq!(v["containerInstances"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["containerInstances"][0]["agentConnected"], true, "{v}");
    // The agent runs with the file join wrote (its reserved memory).
    let memory = v["containerInstances"][0]["registeredResources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "MEMORY")
        .and_then(|r| r["integerValue"].as_i64())
        .unwrap();
    assert_eq!(memory, berth_tests::host_memory_mib() - 300, "{v}");
    let ls = ok_stdout(&s.ctl(&["activation", "ls"]));
    assert!(ls.contains("1/1"), "{ls}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_refuses_with_a_clear_message_and_its_own_exit_code() {
    berth_testkit::require_root();
    let dir = tempfile::tempdir().unwrap();
    let ctd = Containerd::start();
    let s = Scheduler::start(&dir.path().join("data")).await;
    let host = Host::new(dir.path(), "h", &ctd);
    let act = s.activation("default", &[]);

    // Not root (65): checked first.
    let nobody = Command::new(bin("berth-agent"))
        .arg("join")
        .args(host.args(&s, &act, &[]))
        .uid(65534)
        .gid(65534)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    refused(&nobody, 65, "berth-agent join must run as root");

    // containerd missing (66): nothing listens on the configured socket.
    let lonely = Host::new(dir.path(), "lonely", &ctd);
    let text = std::fs::read_to_string(&lonely.config).unwrap().replace(
        &ctd.socket().display().to_string(),
        "/run/berth-test-no/containerd.sock",
    );
    std::fs::write(&lonely.config, text).unwrap();
    refused(
        &join(&strs(&lonely.args(&s, &act, &["--no-start"])), &[]),
        66,
        "containerd is not running at /run/berth-test-no/containerd.sock: install and start it \
         (apt-get install containerd; systemctl enable --now containerd)",
    );

    // A wrong fingerprint (68) never reaches Register.
    let wrong = (
        act.0.clone(),
        act.1.clone(),
        format!("sha256:{}", "ab".repeat(32)),
    );
    refused(
        &join(&strs(&host.args(&s, &wrong, &["--no-start"])), &[]),
        68,
        "refusing to trust it",
    );
    // A malformed one is a usage error (64).
    let malformed = (act.0.clone(), act.1.clone(), "sha256:xyz".to_owned());
    refused(
        &join(&strs(&host.args(&s, &malformed, &["--no-start"])), &[]),
        64,
        "is not a CA fingerprint",
    );

    // The scheduler's refusals (70), each saying which.
    let wrong_code = (act.0.clone(), "not-the-code".to_owned(), act.2.clone());
    refused(
        &join(&strs(&host.args(&s, &wrong_code, &["--no-start"])), &[]),
        70,
        "does not exist or its code is wrong",
    );
    refused(
        &join(
            &strs(&host.args(&s, &act, &["--no-start", "--cluster", "other"])),
            &[],
        ),
        70,
        "is for cluster default, not other; the code was not used",
    );
    let expiring = s.activation("default", &["--expires", "1s"]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    refused(
        &join(&strs(&host.args(&s, &expiring, &["--no-start"])), &[]),
        70,
        "expired at",
    );
    let revoked = s.activation("default", &[]);
    ok_stdout(&s.ctl(&["activation", "revoke", &revoked.0]));
    refused(
        &join(&strs(&host.args(&s, &revoked, &["--no-start"])), &[]),
        70,
        "was revoked",
    );
    assert!(!host.state.join("identity.json").exists());

    // The code still works after all that; used once, it is used up.
    ok_stdout(&join(&strs(&host.args(&s, &act, &["--no-start"])), &[]));
    let other = Host::new(dir.path(), "h2", &ctd);
    refused(
        &join(&strs(&other.args(&s, &act, &["--no-start"])), &[]),
        70,
        "has reached its registration limit",
    );

    // Registered with another cluster's CA (67), unless --force.
    let s2 = Scheduler::start(&dir.path().join("data2")).await;
    let act2 = s2.activation("default", &[]);
    refused(
        &join(&strs(&host.args(&s2, &act2, &["--no-start"])), &[]),
        67,
        "this host is already registered as container instance",
    );
    let out = join(
        &strs(&host.args(&s2, &act2, &["--no-start", "--force"])),
        &[],
    );
    assert!(
        ok_stdout(&out).starts_with("registered as container instance"),
        "{}",
        stderr(&out)
    );
    assert!(host.state.join("identity.json.replaced").exists());

    // systemctl missing (71) says how to run the agent by hand.
    refused(
        &join(
            &strs(&host.args(&s2, &act2, &[])),
            &[("BERTH_SYSTEMCTL", "/nonexistent/systemctl")],
        ),
        71,
        &format!(
            "without systemd, run the agent by hand: berth-agent --config {}",
            host.config.display()
        ),
    );
    // A unit that never brings the agent up (72) names journalctl.
    let started = tokio::time::Instant::now();
    refused(
        &join(
            &strs(&host.args(&s2, &act2, &["--timeout", "2s"])),
            &[("BERTH_SYSTEMCTL", "/bin/true")],
        ),
        72,
        "did not connect within 2s: the scheduler shows it ACTIVE but not connected; see \
         `journalctl -u berth-agent`",
    );
    assert!(started.elapsed() < Duration::from_secs(10));

    // A deregistered instance (73) is refused at once, before systemctl.
    let v = json(&s2.ctl(&["instance", "ls", "-o", "json"]));
    let arn = v["containerInstances"][0]["containerInstanceArn"]
        .as_str()
        .unwrap()
        .to_owned();
    ok_stdout(&s2.ctl(&["instance", "deregister", berth_proto::arn::short_id(&arn)]));
    refused(
        &join(
            &strs(&host.args(&s2, &act2, &["--timeout", "30s"])),
            &[("BERTH_SYSTEMCTL", "/nonexistent/systemctl")],
        ),
        73,
        "the scheduler refuses this host's certificate",
    );
    // ... and joins anew with a new activation and --force.
    let act3 = s2.activation("default", &[]);
    let out = join(
        &strs(&host.args(&s2, &act3, &["--no-start", "--force"])),
        &[],
    );
    assert!(
        ok_stdout(&out).starts_with("registered as container instance"),
        "{}",
        stderr(&out)
    );
}
