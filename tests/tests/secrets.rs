//! Secrets end to end on real containerd + runc + CNI: `berthctl secret put`,
//! a task definition that refers to the secrets, a real scheduler and agent,
//! and a container that sees the values in its environment. Then everything
//! the run produced (both daemons' logs, describe outputs, `secret ls`, the
//! audit log where the command exists, the container's own log and every
//! file the agent and the scheduler keep) is searched for the values.
//!
//! The second test pulls a private image from a registry behind basic auth
//! with `repositoryCredentials` resolved from a secret.
//!
//! Root is required, as for `containerd.rs`; without it the tests fail with
//! that message.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use berth_tests::{eventually, ok_stdout, Cluster, ClusterOptions};

/// The set-up of `containerd.rs` (in `free_slot` block 214), with debug
/// logging on both daemons: more text in which a value could leak.
async fn cluster(registry_auth: Option<(&str, &str)>) -> Cluster {
    let debug = vec![("BERTH_LOG".to_owned(), "debug".to_owned())];
    let opts = ClusterOptions {
        registry_auth: registry_auth.map(|(u, p)| (u.to_owned(), p.to_owned())),
        image_name: "berth/private".to_owned(),
        bridge_prefix: "bs".to_owned(),
        stop_timeout: "10s".to_owned(),
        scheduler_env: debug.clone(),
        agent_env: debug,
    };
    Cluster::start_in(214, opts).await
}

fn put_secret(c: &Cluster, name: &str, value: &str) {
    ok_stdout(&c.sched.ctl_stdin(&["secret", "put", name], value));
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => out.extend(files_under(&p)),
            Ok(t) if t.is_file() => out.push(p),
            _ => {}
        }
    }
    out
}

/// Panics naming every place in `sources` or under `dirs` that holds one
/// of `values`.
fn assert_nowhere(values: &[&str], sources: &[(String, String)], dirs: &[&Path]) {
    let mut found = Vec::new();
    for (what, text) in sources {
        for v in values {
            if text.contains(v) {
                found.push(format!("{what} contains {v:?}"));
            }
        }
    }
    for dir in dirs {
        for f in files_under(dir) {
            let bytes = std::fs::read(&f).unwrap_or_default();
            for v in values {
                if bytes.windows(v.len()).any(|w| w == v.as_bytes()) {
                    found.push(format!("{} contains {v:?}", f.display()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "secret values leaked:\n{}",
        found.join("\n")
    );
}

const DB_PASSWORD: &str = "db-pw-3f9a61c2e8";
const API_KEY: &str = "api-key-b7d40e15";

#[tokio::test(flavor = "multi_thread")]
async fn secrets_reach_the_container_environment_and_nothing_else() {
    let c = cluster(None).await;
    let out_dir = tempfile::tempdir().unwrap();
    // Stored from standard input, as an operator would pipe it in.
    put_secret(&c, "app/db-password", &format!("{DB_PASSWORD}\n"));
    put_secret(&c, "app/api-key", API_KEY);

    let def = format!(
        r#"{{"family":"envcheck","volumes":[{{"name":"out","host":{{"sourcePath":"{}"}}}}],
        "containerDefinitions":[{{"name":"app","image":"IMAGE","memory":32,
         "mountPoints":[{{"sourceVolume":"out","containerPath":"/out"}}],
         "environment":[{{"name":"PLAIN","value":"visible"}}],
         "secrets":[{{"name":"DB_PASSWORD","valueFrom":"app/db-password"}},
                    {{"name":"API_KEY","valueFrom":"arn:aws:ssm:eu-west-1:123456789012:parameter/app/api-key"}},
                    {{"name":"LATER","valueFrom":"app/later"}}],
         "entryPoint":["sh","-c"],
         "command":["env > /out/env.tmp && mv /out/env.tmp /out/env; echo env-written; while true; do sleep 1; done"]}}]}}"#,
        out_dir.path().display()
    );
    let td = c.register(&def);

    // A secret that does not exist: StartTask names the path and the secret.
    let refused = c.try_start(&td);
    assert!(!refused.status.success());
    let why = text(&refused);
    assert!(
        why.contains("containerDefinitions[0].secrets[2].valueFrom")
            && why.contains("\"app/later\" does not exist"),
        "{why}"
    );
    put_secret(&c, "app/later", "later-value");

    let id = c.start(&td);
    c.until_status(&id, "RUNNING").await;
    let env_file = out_dir.path().join("env");
    let env = eventually(
        Duration::from_secs(20),
        "the container's env file",
        || async { std::fs::read_to_string(&env_file).map_err(|e| e.to_string()) },
    )
    .await;
    let lines: Vec<&str> = env.lines().collect();
    for want in [
        format!("DB_PASSWORD={DB_PASSWORD}").as_str(),
        &format!("API_KEY={API_KEY}"),
        "LATER=later-value",
        "PLAIN=visible",
    ] {
        assert!(
            lines.contains(&want),
            "{want} not in the container's env:\n{env}"
        );
    }

    // What the task printed, read through the scheduler, while it runs.
    let logs = eventually(Duration::from_secs(10), "the container's log", || async {
        let l = ok_stdout(&c.sched.ctl(&["task", "logs", &id]));
        if l.contains("env-written") {
            Ok(l)
        } else {
            Err(l)
        }
    })
    .await;
    let running_describe = text(&c.sched.ctl(&["task", "describe", &id, "-o", "json"]));
    let agent_dir = c.dir.path().join("agent");
    let sched_dir = c.dir.path().join("sched");
    let values = [DB_PASSWORD, API_KEY, "later-value"];
    // The agent's state dir holds the task's files and the container's
    // json-file log while the task runs (the search does read that log).
    assert!(
        files_under(&agent_dir)
            .iter()
            .any(|f| std::fs::read_to_string(f)
                .unwrap_or_default()
                .contains("env-written")),
        "the container's log file is under {}",
        agent_dir.display()
    );
    assert_nowhere(&values, &[("task logs".into(), logs)], &[&agent_dir]);
    // ... and the search finds a value where there is one.
    let env_copy = env.clone();
    assert!(std::panic::catch_unwind(move || {
        assert_nowhere(&[DB_PASSWORD], &[("env file".into(), env_copy)], &[])
    })
    .is_err());

    // Deleting a secret in use is allowed; the running task keeps its env.
    ok_stdout(&c.sched.ctl(&["secret", "rm", "app/later"]));
    assert_eq!(c.describe(&id)["lastStatus"], "RUNNING");

    ok_stdout(&c.sched.ctl(&["task", "stop", &id]));
    let stopped = c.until_status(&id, "STOPPED").await;
    assert_eq!(stopped["stopCode"], "UserInitiated");

    // Everything the run produced.
    let mut sources = vec![
        ("scheduler log".to_owned(), c.sched.log_text()),
        ("agent log".to_owned(), c.agent.log_text()),
        ("task describe (running)".to_owned(), running_describe),
        (
            "task describe".to_owned(),
            text(&c.sched.ctl(&["task", "describe", &id, "-o", "json"])),
        ),
        (
            "task ls".to_owned(),
            text(
                &c.sched
                    .ctl(&["task", "ls", "--desired-status", "stopped", "-o", "json"]),
            ),
        ),
        (
            "taskdef describe".to_owned(),
            text(&c.sched.ctl(&["taskdef", "describe", &td, "-o", "json"])),
        ),
        (
            "secret ls".to_owned(),
            text(&c.sched.ctl(&["secret", "ls"])),
        ),
        (
            "secret ls json".to_owned(),
            text(&c.sched.ctl(&["secret", "ls", "-o", "json"])),
        ),
        ("refused start".to_owned(), why),
    ];
    let secret_ls = ok_stdout(&c.sched.ctl(&["secret", "ls"]));
    assert!(
        secret_ls.contains("app/db-password") && secret_ls.contains("app/api-key"),
        "{secret_ls}"
    );
    // The audit log names the secrets put and deleted, never their values.
    let audit = ok_stdout(&c.sched.ctl(&["audit", "ls", "-o", "json"]));
    for name in [
        "secret/app/db-password",
        "secret/app/api-key",
        "secret/app/later",
    ] {
        assert!(
            audit.contains(name),
            "{name} not in the audit log:\n{audit}"
        );
    }
    assert!(audit.contains("DeleteSecret"), "{audit}");
    sources.push(("audit ls json".to_owned(), audit));
    sources.push(("audit ls".to_owned(), text(&c.sched.ctl(&["audit", "ls"]))));
    assert_nowhere(&values, &sources, &[&agent_dir, &sched_dir]);
}

const REG_USER: &str = "berth";
const REG_PASSWORD: &str = "reg-pw-9d2e71aa";
const WRONG_PASSWORD: &str = "wrong-pw-5c11d0";

#[tokio::test(flavor = "multi_thread")]
async fn private_image_pulls_with_repository_credentials() {
    let c = cluster(Some((REG_USER, REG_PASSWORD))).await;
    let def = |family: &str, creds: Option<&str>| {
        let rc = creds
            .map(|p| format!(r#","repositoryCredentials":{{"credentialsParameter":"{p}"}}"#))
            .unwrap_or_default();
        format!(
            r#"{{"family":"{family}","containerDefinitions":[{{"name":"p","image":"IMAGE",
            "memory":32,"entryPoint":["sleep","60"]{rc}}}]}}"#
        )
    };

    // Without credentials, and with a wrong password: the pull fails, and
    // the reason names the cause but not the password.
    let anon = c.register(&def("anon", None));
    let id = c.start(&anon);
    let t = c.until_status(&id, "STOPPED").await;
    assert_eq!(t["stopCode"], "TaskFailedToStart");
    let reason = t["stoppedReason"].as_str().unwrap().to_owned();
    assert!(reason.starts_with("CannotPullContainerError:"), "{reason}");

    put_secret(
        &c,
        "registry/wrong",
        &format!(r#"{{"username":"{REG_USER}","password":"{WRONG_PASSWORD}"}}"#),
    );
    let wrong = c.register(&def("wrong", Some("registry/wrong")));
    let id = c.start(&wrong);
    let t = c.until_status(&id, "STOPPED").await;
    assert_eq!(t["stopCode"], "TaskFailedToStart");
    let reason = t["stoppedReason"].as_str().unwrap().to_owned();
    assert!(reason.starts_with("CannotPullContainerError:"), "{reason}");
    assert!(!reason.contains(WRONG_PASSWORD), "{reason}");

    // With the right credentials (a Secrets Manager ARN naming the secret).
    put_secret(
        &c,
        "registry/creds",
        &format!(r#"{{"username":"{REG_USER}","password":"{REG_PASSWORD}"}}"#),
    );
    let good = c.register(&def(
        "good",
        Some("arn:aws:secretsmanager:eu-west-1:123456789012:secret:registry/creds"),
    ));
    let id = c.start(&good);
    let t = c.until_status(&id, "RUNNING").await;
    assert!(t["containers"][0]["imageDigest"]
        .as_str()
        .is_some_and(|d| d.starts_with("sha256:")));

    let sources = vec![
        ("scheduler log".to_owned(), c.sched.log_text()),
        ("agent log".to_owned(), c.agent.log_text()),
        (
            "task ls".to_owned(),
            text(
                &c.sched
                    .ctl(&["task", "ls", "--desired-status", "stopped", "-o", "json"]),
            ),
        ),
        (
            "task describe".to_owned(),
            text(&c.sched.ctl(&["task", "describe", &id, "-o", "json"])),
        ),
        (
            "audit ls".to_owned(),
            ok_stdout(&c.sched.ctl(&["audit", "ls", "-o", "json"])),
        ),
    ];
    let agent_dir = c.dir.path().join("agent");
    let sched_dir = c.dir.path().join("sched");
    assert_nowhere(
        &[REG_PASSWORD, WRONG_PASSWORD],
        &sources,
        &[&agent_dir, &sched_dir],
    );
}
