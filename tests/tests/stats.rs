//! Task stats for real (`berthctl task stats`, `berthctl top`): a busybox
//! task that holds 32 MiB in a shell variable and burns CPU in a busy loop
//! (a task-level `cpu` of 1024: one core), and an idle one. The real agent
//! samples the cgroups every 10 s (the default); the test checks that
//! `task stats -o json` reports CPU over a real fraction of a core and the
//! container's memory within a tolerance of its cgroup's `memory.current`
//! (`memory.usage_in_bytes` on v1, read here directly), that `top --once`
//! lists the burner first by CPU and the idle task first by memory, that
//! `task stats` prints `docker stats`' columns, and that `--follow` makes
//! the agent sample every second.
//!
//! Root and real containerd (the single-host harness, `free_slot` block
//! 233); everything listens on 127.0.0.1 and every wait is bounded.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)] // tests fail loudly by design

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use berth_tests::cluster::tail;
use berth_tests::{bin, eventually, json, ok_stdout, Cluster, ClusterOptions};
use serde_json::Value;

const BLOCK: u8 = 233;
const MIB: f64 = 1024.0 * 1024.0;

const BURN: &str = r#"{"family":"burn","cpu":"1024","memory":"256","containerDefinitions":[
    {"name":"burn","image":"IMAGE","essential":true,"entryPoint":["sh","-c"],
     "command":["a=$(head -c 33554432 /dev/zero | tr '\\0' x); echo HELD; while :; do :; done"]}]}"#;
const IDLE: &str = r#"{"family":"idle","cpu":"256","memory":"512","containerDefinitions":[
    {"name":"idle","image":"IMAGE","essential":true,"entryPoint":["sh","-c"],
     "command":["a=$(head -c 67108864 /dev/zero | tr '\\0' x); echo HELD; while :; do sleep 5; done"]}]}"#;

/// The container's memory use, as its cgroup says.
fn cgroup_memory_bytes(rel: &str) -> f64 {
    let file = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        PathBuf::from("/sys/fs/cgroup")
            .join(rel)
            .join("memory.current")
    } else {
        PathBuf::from("/sys/fs/cgroup/memory")
            .join(rel)
            .join("memory.usage_in_bytes")
    };
    std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        .trim()
        .parse()
        .unwrap()
}

/// `…THH:MM:SS(.fff)Z` → seconds since midnight.
fn seconds_of_day(rfc3339: &str) -> f64 {
    let clock = rfc3339
        .split_once('T')
        .map(|(_, c)| c.trim_end_matches('Z'))
        .unwrap_or_else(|| panic!("not RFC 3339: {rfc3339}"));
    clock
        .split(':')
        .map(|p| p.parse::<f64>().unwrap())
        .fold(0.0, |acc, p| acc * 60.0 + p)
}

fn f(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("no number {key} in {v}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn task_stats_and_top_show_a_cpu_burner_and_its_memory() {
    let c = Cluster::start_in(
        BLOCK,
        ClusterOptions {
            bridge_prefix: "bs".to_owned(),
            ..ClusterOptions::default()
        },
    )
    .await;
    let burn = c.start(&c.register(BURN));
    let idle = c.start(&c.register(IDLE));
    c.until_status(&burn, "RUNNING").await;
    c.until_status(&idle, "RUNNING").await;
    let rel = format!("{}/{burn}/burn", c.cgroup_parent);

    // Two samples (10 s apart) give a rate; the memory is held by then.
    let stats = eventually(
        Duration::from_secs(60),
        "a reading with CPU and memory",
        || async {
            let out = c.sched.ctl(&["task", "stats", &burn, "-o", "json"]);
            if !out.status.success() {
                return Err(format!(
                    "{}\nagent log:\n{}",
                    String::from_utf8_lossy(&out.stderr),
                    tail(&c.agent.log_text(), 10)
                ));
            }
            let v = json(&out);
            let cont = &v["containers"][0];
            if v["preread"].is_string() && f(cont, "memoryUsageBytes") > 32.0 * MIB {
                Ok(v)
            } else {
                Err(format!("{v:#}"))
            }
        },
    )
    .await;
    eprintln!("task stats: {stats:#}");
    let cont = &stats["containers"][0];
    assert_eq!(cont["name"], "burn");
    // A busy loop under a one-core quota, on a shared machine: more than a
    // fifth of a core, never much above the quota.
    let cpu = f(cont, "cpuPercent");
    assert!(cpu > 20.0 && cpu < 115.0, "CPU {cpu}%");
    let units = f(&stats, "cpuUnits");
    assert!(units > 200.0 && units < 1024.0 * 1.15, "{units} units");
    assert_eq!(stats["cpuReservedUnits"], 1024);
    let util = f(&stats, "cpuUtilization");
    assert!((util - units / 1024.0 * 100.0).abs() < 0.01, "{util}");
    assert!(f(cont, "pids") >= 1.0);
    assert_eq!(f(cont, "memoryLimitBytes"), 256.0 * MIB, "the task's limit");
    assert!(stats["memoryUtilization"].as_f64().unwrap() > 12.5);

    // The memory as the cgroup says: the shell holds still, so the next
    // reading and the file agree within a tolerance.
    eventually(
        Duration::from_secs(40),
        "memory to match the cgroup's",
        || async {
            let v = json(&c.sched.ctl(&["task", "stats", &burn, "-o", "json"]));
            let reported = f(&v["containers"][0], "memoryRawUsageBytes");
            let want = cgroup_memory_bytes(&rel);
            if (reported - want).abs() <= (2.0 * MIB).max(want * 0.05) {
                eprintln!("memory: reported {reported}, cgroup {want}");
                Ok(())
            } else {
                tokio::time::sleep(Duration::from_secs(2)).await;
                Err(format!("reported {reported}, cgroup {want}"))
            }
        },
    )
    .await;

    // docker stats' columns.
    let table = ok_stdout(&c.sched.ctl(&["task", "stats", &burn]));
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    for col in [
        "CONTAINER",
        "CPU %",
        "MEM USAGE / LIMIT",
        "MEM %",
        "NET I/O",
        "BLOCK I/O",
        "PIDS",
    ] {
        assert!(header.contains(col), "{table}");
    }
    let row = lines.next().unwrap();
    assert!(
        row.starts_with("burn ") && row.contains("/ 256MiB"),
        "{table}"
    );

    // top: the burner first by CPU, the idle task (64 MiB) first by memory.
    let by_id = |arn: &Value| berth_proto::arn::short_id(arn.as_str().unwrap()).to_owned();
    eventually(Duration::from_secs(40), "top's order", || async {
        let cpu = json(&c.sched.ctl(&["top", "--once", "-o", "json"]));
        let mem = json(
            &c.sched
                .ctl(&["top", "--once", "--sort", "memory", "-o", "json"]),
        );
        let ids = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| a.iter().map(|t| by_id(&t["taskArn"])).collect())
                .unwrap_or_default()
        };
        if ids(&cpu) == [burn.clone(), idle.clone()] && ids(&mem) == [idle.clone(), burn.clone()] {
            Ok(())
        } else {
            Err(format!("by cpu {:?}, by memory {:?}", ids(&cpu), ids(&mem)))
        }
    })
    .await;
    let top = ok_stdout(&c.sched.ctl(&["top", "--once"]));
    let first = top.lines().nth(1).unwrap_or_default();
    assert!(first.starts_with(&burn), "{top}");
    let limited = json(&c.sched.ctl(&["top", "--once", "-n", "1", "-o", "json"]));
    assert_eq!(limited.as_array().unwrap().len(), 1);

    // --follow: the agent samples every second while someone follows.
    let mut follow = Command::new(bin("berthctl"))
        .args(["task", "stats", &burn, "--follow", "-o", "json"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", c.dir.path())
        .env("BERTH_ENDPOINT", c.sched.endpoint())
        .env("BERTH_CA_CERT", c.sched.ca_path())
        .env("BERTH_TOKEN", &c.sched.admin_token)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = follow.stdout.take().unwrap();
    let reads = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || {
            let mut reads = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let v: Value = serde_json::from_str(&line.unwrap()).unwrap();
                reads.push(v["read"].as_str().unwrap().to_owned());
                if reads.len() == 5 {
                    break;
                }
            }
            reads
        }),
    )
    .await;
    let _ = follow.kill();
    let _ = follow.wait();
    let reads = reads
        .expect("five readings within 30 s of --follow")
        .unwrap();
    let secs: Vec<f64> = reads.iter().map(|r| seconds_of_day(r)).collect();
    // The first is the latest 10 s sample; the last three came at 1 s.
    let gaps: Vec<f64> = secs.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps[2..].iter().all(|g| *g > 0.5 && *g < 3.0),
        "gaps between readings: {gaps:?}"
    );
}
