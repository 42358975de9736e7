//! `berthctl` against a real scheduler: what an operator types and sees.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::time::Duration;

use berth_tests::{ctl, eventually, json, ok_stdout, Agent, Scheduler};

const WRAPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/describe-web.json");

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn taskdef_lifecycle_through_berthctl() {
    let dir = tempfile::tempdir().unwrap();
    let s = Scheduler::start(&dir.path().join("data")).await;

    // The aws CLI's describe output registers as revision 1, then 2.
    let out = s.ctl(&["taskdef", "register", "-f", WRAPPED]);
    assert_eq!(ok_stdout(&out).lines().next(), Some("web:1"));
    let warnings = stderr(&out);
    assert!(warnings.contains("warning: taskRoleArn:"), "{warnings}");
    assert!(
        warnings.contains("warning: executionRoleArn:"),
        "{warnings}"
    );
    let text = std::fs::read_to_string(WRAPPED).unwrap();
    let out = s.ctl_stdin(&["taskdef", "register", "-f", "-"], &text);
    assert_eq!(ok_stdout(&out).lines().next(), Some("web:2"));

    // describe -o json has the aws CLI's shape.
    let d = json(&s.ctl(&["taskdef", "describe", "web", "-o", "json"]));
    let td = &d["taskDefinition"];
    assert_eq!(td["family"], "web");
    assert_eq!(td["revision"], 2);
    assert_eq!(td["status"], "ACTIVE");
    assert_eq!(
        td["containerDefinitions"][0]["portMappings"][0]["containerPort"],
        8080
    );
    assert_eq!(td["taskRoleArn"], "arn:aws:iam::123456789012:role/web-task");

    // Deregister; INACTIVE stays describable; latest ACTIVE falls back.
    ok_stdout(&s.ctl(&["taskdef", "deregister", "web:2"]));
    let d = json(&s.ctl(&["taskdef", "describe", "web:2", "-o", "json"]));
    assert_eq!(d["taskDefinition"]["status"], "INACTIVE");
    let d = json(&s.ctl(&["taskdef", "describe", "web", "-o", "json"]));
    assert_eq!(d["taskDefinition"]["revision"], 1);
    let ls = ok_stdout(&s.ctl(&["taskdef", "ls", "--family", "web", "--status", "INACTIVE"]));
    assert!(ls.contains("web:2") && !ls.contains("web:1"), "{ls}");
    let ls = json(&s.ctl(&["taskdef", "ls", "-o", "json"]));
    assert_eq!(ls["taskDefinitionArns"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn bad_input_gets_paths_and_a_nonzero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let s = Scheduler::start(&dir.path().join("data")).await;
    let bad = r#"{"family":"web","containerDefinitions":[
        {"name":"a","image":"busybox","memory":64,"portMapings":[]}
    ]}"#;
    let out = s.ctl_stdin(&["taskdef", "register", "-f", "-"], bad);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("containerDefinitions[0].portMapings"), "{err}");
    assert!(!err.contains("Status {"), "no Debug dumps: {err}");

    let out = s.ctl(&["taskdef", "register", "-f", "/nonexistent/x.json"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("/nonexistent/x.json"),
        "{}",
        stderr(&out)
    );

    let out = s.ctl(&["taskdef", "describe", "ghost"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not found"), "{}", stderr(&out));

    // Nothing listens here: exit 3 and a sentence naming the endpoint.
    let port = berth_tests::free_port();
    let out = ctl(
        &format!("https://127.0.0.1:{port}"),
        &s.ca_path(),
        &["cluster", "ls"],
        None,
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("127.0.0.1:{port}")),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn clusters_and_instances_through_berthctl() {
    let dir = tempfile::tempdir().unwrap();
    let s = Scheduler::start(&dir.path().join("data")).await;
    ok_stdout(&s.ctl(&["cluster", "create", "prod"]));
    let ls = ok_stdout(&s.ctl(&["cluster", "ls"]));
    assert!(ls.contains("prod") && ls.contains("default"), "{ls}");

    let _agent = Agent::start(&s, "prod", &dir.path().join("agent"));
    let d = eventually(
        Duration::from_secs(15),
        "the agent in instance ls",
        || async {
            let out = s.ctl(&["instance", "ls", "--cluster", "prod", "-o", "json"]);
            let v: serde_json::Value = serde_json::from_slice(&out.stdout)
                .map_err(|e| format!("{e}: {}", stderr(&out)))?;
            let first = v["containerInstances"][0].clone();
            if first["agentConnected"] == true {
                Ok(first)
            } else {
                Err(v.to_string())
            }
        },
    )
    .await;
    assert_eq!(d["status"], "ACTIVE");
    let cpu = d["registeredResources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "CPU")
        .unwrap()["integerValue"]
        .as_i64()
        .unwrap();
    assert_eq!(cpu, berth_tests::host_cpus() * 1024);
    let id = berth_proto::arn::short_id(d["containerInstanceArn"].as_str().unwrap()).to_owned();
    let one = json(&s.ctl(&[
        "instance",
        "describe",
        &id,
        "--cluster",
        "prod",
        "-o",
        "json",
    ]));
    assert_eq!(
        one["containerInstances"][0]["containerInstanceArn"],
        d["containerInstanceArn"]
    );

    // A cluster with a registered instance cannot be deleted.
    let out = s.ctl(&["cluster", "delete", "prod"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("container instance"),
        "{}",
        stderr(&out)
    );
    let d = json(&s.ctl(&["cluster", "describe", "prod", "-o", "json"]));
    assert_eq!(d["clusters"][0]["registeredContainerInstancesCount"], 1);
}
