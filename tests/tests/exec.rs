//! ECS Exec end to end on real containerd + runc: `berthctl task exec`
//! through the scheduler and the agent's own `Connect` stream into a busybox
//! task started with `--enable-execute-command`: both output streams and
//! the exit code, an interactive `sh` under a pseudo-terminal (berthctl runs
//! on the slave side of a pty this test holds), the refusal of a task
//! without the flag and of a read-only token, the audit record, and an exec
//! that ends when its task stops. Root is required: run via `scripts/test`
//! as root; without root the test fails with that message.
//!
//! The cluster is `berth_tests::Cluster` in free_slot block 231.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)] // tests fail loudly by design

use std::io::{Read, Write};
use std::process::{Output, Stdio};
use std::time::Duration;

use berth_tests::{bin, ok_stdout, Cluster, ClusterOptions};

/// Every berthctl run here is bounded by this.
const LIMIT: Duration = Duration::from_secs(60);

const SLEEPER: &str = r#"{"family":"exec-sleeper","containerDefinitions":[
    {"name":"app","image":"IMAGE","memory":32,
     "entryPoint":["sh","-c"],"command":["exec sleep 3600"]}]}"#;

async fn cluster() -> Cluster {
    Cluster::start_in(
        231,
        ClusterOptions {
            bridge_prefix: "ex".to_owned(),
            ..ClusterOptions::default()
        },
    )
    .await
}

/// `berthctl task start` of `taskdef`, with `extra` flags; the task id.
fn start(c: &Cluster, taskdef: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "task",
        "start",
        "--taskdef",
        taskdef,
        "--instance",
        &c.instance,
    ];
    args.extend_from_slice(extra);
    let text = ok_stdout(&c.sched.ctl(&args));
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

/// berthctl against the cluster's scheduler with `token`.
fn ctl(c: &Cluster, token: &str, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(bin("berthctl"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", c.dir.path())
        .env("BERTH_ENDPOINT", c.sched.endpoint())
        .env("BERTH_CA_CERT", c.sched.ca_path())
        .env("BERTH_TOKEN", token)
        .kill_on_drop(true);
    cmd
}

/// Runs berthctl with no stdin, bounded by [`LIMIT`].
async fn run(c: &Cluster, token: &str, args: &[&str]) -> Output {
    let mut cmd = ctl(c, token, args);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    tokio::time::timeout(LIMIT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("berthctl {args:?} did not end within {LIMIT:?}"))
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `berthctl task exec -i -t TASK -- sh` on the slave of a pseudo-terminal;
/// types `input` into the master and returns what the terminal showed and
/// how berthctl ended.
async fn on_a_pty(c: &Cluster, task: &str, input: &[u8]) -> (String, std::process::ExitStatus) {
    use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let name = ptsname(&master, Vec::new()).unwrap();
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(name.to_str().unwrap())
        .unwrap();
    let mut cmd = ctl(
        c,
        &c.sched.admin_token,
        &["task", "exec", "-i", "-t", task, "--", "sh"],
    );
    cmd.stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave);
    let mut child = cmd.spawn().unwrap();
    let mut master = std::fs::File::from(master);
    let mut reader = master.try_clone().unwrap();
    // What the terminal shows, read on a thread (reads block).
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 || tx.blocking_send(buf[..n].to_vec()).is_err() {
                return;
            }
        }
    });
    master.write_all(input).unwrap();
    let status = tokio::time::timeout(LIMIT, child.wait())
        .await
        .expect("berthctl under a pty did not end")
        .unwrap();
    let mut shown = Vec::new();
    while let Ok(Some(b)) = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await {
        shown.extend(b);
    }
    (text(&shown), status)
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_runs_commands_in_tasks_that_allow_it() {
    let c = cluster().await;
    let td = c.register(SLEEPER);
    let task = start(&c, &td, &["--enable-execute-command"]);
    let t = c.until_status(&task, "RUNNING").await;
    assert_eq!(t["enableExecuteCommand"], true, "{t:#}");
    let admin = c.sched.admin_token.clone();

    // Both streams, and berthctl exits with the command's code.
    let out = run(
        &c,
        &admin,
        &[
            "task",
            "exec",
            &task,
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ],
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(3),
        "stdout: {}\nstderr: {}\nagent log: {}",
        text(&out.stdout),
        text(&out.stderr),
        berth_tests::cluster::tail(&c.agent.log_text(), 40)
    );
    assert_eq!(text(&out.stdout), "out\n");
    assert_eq!(text(&out.stderr), "err\n");

    // The container's own environment and working directory; exit 0.
    let out = run(
        &c,
        &admin,
        &["task", "exec", &task, "-c", "app", "--", "pwd"],
    )
    .await;
    assert_eq!(ok_stdout(&out), "/\n");

    // An interactive shell under a terminal.
    let (shown, status) = on_a_pty(&c, &task, b"echo $((6*7))\nexit\n").await;
    assert!(status.success(), "{status}: {shown:?}");
    assert!(shown.contains("42"), "{shown:?}");

    // A task started without the flag is refused, saying why.
    let plain = start(&c, &td, &[]);
    let t = c.until_status(&plain, "RUNNING").await;
    assert_eq!(t["enableExecuteCommand"], false, "{t:#}");
    let out = run(&c, &admin, &["task", "exec", &plain, "--", "true"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("enableExecuteCommand"),
        "{}",
        text(&out.stderr)
    );

    // A read-only token is refused.
    let created = ok_stdout(
        &c.sched
            .ctl(&["token", "create", "viewer", "--role", "read-only"]),
    );
    let ro = created.lines().next().unwrap().to_owned();
    let out = run(&c, &ro, &["task", "exec", &task, "--", "true"]).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("permission denied"),
        "{}",
        text(&out.stderr)
    );

    // Each session is audited: who, the task, the container, the command.
    let audit = ok_stdout(&c.sched.ctl(&["audit", "ls", "-o", "json"]));
    assert!(
        audit.contains("/berth.v1.ExecService/ExecuteCommand"),
        "{audit}"
    );
    assert!(
        audit.contains(&format!("task/{task} container/app")),
        "{audit}"
    );
    assert!(audit.contains("FailedPrecondition"), "{audit}");

    // A session ends when its task stops: the caller does not hang.
    let mut long = ctl(&c, &admin, &["task", "exec", &task, "--", "sleep", "300"]);
    long.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let long = long.spawn().unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    ok_stdout(&c.sched.ctl(&["task", "stop", &task]));
    let out = tokio::time::timeout(LIMIT, long.wait_with_output())
        .await
        .expect("an exec outlived its task")
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out.stderr));
}
